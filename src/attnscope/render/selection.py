"""Pick a word's map out of a run: which steps, layers and heads, averaged how, with which estimator.

Selections are lazy until the end: ``run.maps`` is dask-backed with one chunk per (step, layer) slab, so only the
slabs of the chosen steps and layers are read from disk.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import dask
import xarray as xr

from ..errors import SelectionError
from ..store import Run

ESTIMATORS = ("raw", "renorm", "value-norm")
AGG_DIMS = ("step", "layer", "head")
EPS = 1e-8
RANGE = re.compile(r"(\d+)\s*-\s*(\d+)")
Spec = str | int | Sequence[Any] | None


def describe(values: Sequence[Any]) -> str:
    """Short human list: contiguous integers as a range ("0-29"), otherwise comma separated."""
    values = list(values)
    if not values:
        return "none"
    if all(isinstance(v, int) for v in values) and len(values) > 2 and values == list(
            range(values[0], values[0] + len(values))):
        return f"{values[0]}-{values[-1]}"
    return ", ".join(str(v) for v in values)


def _as_int(text: str, dim: str, available: Sequence[Any]) -> int:
    try:
        return int(text)
    except ValueError:
        raise SelectionError(f"cannot read {dim} '{text}': use an index like 3, a range like 2-5, or 'mean'; "
                             f"{dim}s in this run: {describe(available)}") from None


def parse_spec(spec: Spec, available: Sequence[Any], dim: str) -> list[Any]:
    """Turn a CLI/API selection into the list of ``dim`` coordinates it names.

    ``None``, ``"mean"`` and ``"all"`` name every available value; ``3`` or ``"3"`` one value; ``"2-5"`` the
    available values from 2 to 5 inclusive; ``"0,3,7"`` or a list several. Anything outside ``available`` is a
    :class:`SelectionError` that lists what the run has.
    """
    available = list(available)
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("mean", "all", "")):
        if not available:
            raise SelectionError(f"this run has no {dim}s to select from (no step finished yet?)")
        return available
    if isinstance(spec, str) and available == ["mean"]:
        raise SelectionError(f"{dim} '{spec}' is not in this run: heads were averaged during capture "
                             f"(heads='mean'); use --{dim} mean")
    if isinstance(spec, int):
        wanted: list[Any] = [spec]
    elif isinstance(spec, str) and "," in spec:
        wanted = [_as_int(p.strip(), dim, available) for p in spec.split(",") if p.strip()]
    elif isinstance(spec, str) and (span := RANGE.fullmatch(spec.strip())):
        lo, hi = int(span[1]), int(span[2])
        if lo > hi:
            raise SelectionError(f"{dim} range '{spec}' is empty (start after end)")
        chosen = [v for v in available if isinstance(v, int) and lo <= v <= hi]
        if not chosen:
            raise SelectionError(f"{dim} range {lo}-{hi} holds no {dim} of this run; {dim}s: {describe(available)}")
        return chosen
    elif isinstance(spec, str):
        wanted = [_as_int(spec.strip(), dim, available)]
    else:
        wanted = [int(v) if isinstance(v, str) and v.lstrip("-").isdigit() else v for v in spec]
    missing = [v for v in wanted if v not in available]
    if missing:
        raise SelectionError(f"{dim} {describe(missing)} is not in this run; {dim}s: {describe(available)}")
    return wanted


def check_words(run: Run, words: str | Sequence[str]) -> list[str]:
    """The requested word labels, or a :class:`SelectionError` listing the run's words."""
    requested = [words] if isinstance(words, str) else list(words)
    if not requested:
        raise SelectionError(f"name at least one word; words in this run: {', '.join(run.words)}")
    unknown = [w for w in requested if w not in run.words]
    if unknown:
        raise SelectionError(f"word {', '.join(repr(w) for w in unknown)} is not in this run; words captured: "
                             f"{', '.join(repr(w) for w in run.words) or 'none'}")
    return requested


def resolve(run: Run, word: str | Sequence[str], step: Spec = "mean", layer: Spec = "mean",
            head: Spec = "mean", estimator: str = "raw") -> tuple[list[str], dict[str, list[Any]]]:
    """Check a selection against the run without reading maps: (words, {step, layer, head: coordinates})."""
    if estimator not in ESTIMATORS:
        raise SelectionError(f"unknown estimator '{estimator}'; choose one of {', '.join(ESTIMATORS)}")
    words = check_words(run, word)
    if not run.steps_done:
        raise SelectionError(f"{run.path} has no finished step yet; wait for the capture or pick another run")
    return words, {
        "step": parse_spec(step, run.steps_done, "step"),
        "layer": parse_spec(layer, run.meta["layers"], "layer"),
        "head": parse_spec(head, run.meta["heads"], "head"),
    }


def select(
    run: Run,
    word: str | Sequence[str],
    step: Spec = "mean",
    layer: Spec = "mean",
    head: Spec = "mean",
    estimator: str = "raw",
    keep: Sequence[str] = (),
) -> xr.DataArray:
    """A word's map on the latent grid, float32 (frame, y, x), averaged over the chosen steps/layers/heads.

    ``word`` may be a list: the result then keeps a ``word`` dim. Dims named in ``keep`` (any of step, layer,
    head) are kept instead of averaged, first and in that order. ``estimator="renorm"`` divides every query's
    probabilities by its mass on the real prompt tokens before averaging, which removes Wan's padding sink
    (unmasked zero padding takes much of the attention) and makes maps of different steps/layers comparable.
    ``estimator="value-norm"`` averages ‖p·v·W_o‖, each word's contribution to the attention output (sharper on
    the toy world; needs a run captured with ``value_norm=True``).
    """
    bad_keep = [d for d in keep if d not in AGG_DIMS]
    if bad_keep:
        raise SelectionError(f"cannot keep {bad_keep}; keep is a subset of {AGG_DIMS}")
    words, where = resolve(run, word, step, layer, head, estimator)
    steps, layers, heads = where["step"], where["layer"], where["head"]
    if estimator == "value-norm" and run.value_norm is None:
        raise SelectionError(f"{run.path} has no value_norm array; generate with --value-norm, or choose estimator "
                             "raw or renorm")
    source = run.value_norm if estimator == "value-norm" else run.maps
    maps = source.sel(word=words if not isinstance(word, str) else word, **where).astype("float32")
    if estimator == "renorm":
        maps = maps / (run.prompt_mass.sel(**where).astype("float32") + EPS)
    reduced = maps.mean([d for d in AGG_DIMS if d not in keep])
    order = [*keep, *(["word"] if "word" in reduced.dims else []), "frame", "y", "x"]
    with dask.config.set(scheduler="threads"):
        out = reduced.transpose(*order).compute()
    out.attrs.update(word=word if isinstance(word, str) else list(words), estimator=estimator,
                     step=describe(steps), layer=describe(layers), head=describe(heads))
    return out
