"""Pick a word's map out of a run: which steps, layers and heads, averaged how, with which estimator.

Only the chunks a selection needs are read. One word's mean (the viewer's case) indexes the zarr arrays
directly, reading its (step, layer) slabs of ``maps`` in concurrent batches; given a loader of the word's
head-mean summary (the viewer keeps one in memory), a mean over all heads is a sum over that summary instead.
Kept dims and word lists go through the lazy, dask-backed ``run.maps``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dask
import numpy as np
import xarray as xr

from ..errors import SelectionError
from ..selection import SelectionSyntaxError, Span, parse_items
from ..store import Run
from ..store.layout import EPS

ESTIMATORS = ("raw", "renorm", "value-norm", "value-proj", "self-prop")
# the stored array each estimator averages; the value-* arrays exist in runs captured with value_norm=True,
# self_prop in runs captured with self_prop=True
SOURCES = {"raw": "maps", "renorm": "maps", "value-norm": "value_norm", "value-proj": "value_proj",
           "self-prop": "self_prop"}
CAPTURE_FLAG = {"value_norm": "--value-norm", "value_proj": "--value-norm", "self_prop": "--self-prop"}
AGG_DIMS = ("step", "layer", "head")


def missing_source(run: Run, estimator: str) -> str | None:
    """The optional array ``estimator`` reads when ``run`` lacks it (runs captured without value_norm=True), else
    None. Unknown estimators read ``maps``."""
    source = SOURCES.get(estimator, "maps")
    return None if source == "maps" or getattr(run, source) is not None else source
BATCH_SLABS = 32  # (step, layer) slabs read per zarr call: enough chunks to decode in parallel, bounded memory
Spec = str | int | Sequence[Any] | None
Index = slice | list[int]
# (word, estimator) -> the word's head-mean summary of every step and layer (step, layer, frame, y, x)
SummaryLoader = Callable[[str, str], np.ndarray | None]


def describe(values: Sequence[Any]) -> str:
    """Short human list: contiguous integers as a range ("0-29"), otherwise comma separated."""
    values = list(values)
    if not values:
        return "none"
    if all(isinstance(v, int) for v in values) and len(values) > 2 and values == list(
            range(values[0], values[0] + len(values))):
        return f"{values[0]}-{values[-1]}"
    return ", ".join(str(v) for v in values)


def parse_spec(spec: Spec, available: Sequence[Any], dim: str) -> list[Any]:
    """Turn a CLI/API selection into the list of ``dim`` coordinates it names (the syntax is
    :func:`attnscope.selection.parse_items`', shared with ``trace()`` and sweep files).

    ``None``, ``"mean"`` and ``"all"`` name every available value; ``3`` or ``"3"`` one value; ``"2-5"`` the
    available values from 2 to 5 inclusive; ``"0,3,7"`` or a list several (ranges may be mixed in). Anything
    outside ``available`` is a :class:`SelectionError` that lists what the run has.
    """
    available = list(available)
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("mean", "all", "")):
        if not available:
            raise SelectionError(f"this run has no {dim}s to select from (no step finished yet?)")
        return available
    if isinstance(spec, str) and available == ["mean"]:
        raise SelectionError(f"{dim} '{spec}' is not in this run: heads were averaged during capture "
                             f"(heads='mean'); use --{dim} mean")
    if isinstance(spec, (list, tuple)) and spec and all(v in available for v in spec):
        return list(spec)  # coordinates as they are (the "mean" head of a run averaged at capture)
    try:
        items = parse_items(spec, dim, allow_mean=True)
    except SelectionSyntaxError as exc:
        raise SelectionError(f"{exc}; {dim}s in this run: {describe(available)}") from None
    wanted: list[Any] = []
    for item in items:
        if isinstance(item, Span):  # a range names the run's values inside it
            chosen = [v for v in available if isinstance(v, int) and item.lo <= v <= item.hi]
            if not chosen:
                raise SelectionError(f"{dim} range {item.lo}-{item.hi} holds no {dim} of this run; {dim}s: "
                                     f"{describe(available)}")
            wanted.extend(chosen)
        else:
            wanted.append(item)
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
    steps = run.steps_of(SOURCES[estimator])
    if not steps:
        raise SelectionError(f"{run.path} holds no finished step with {SOURCES[estimator]} yet")
    try:
        chosen_steps = parse_spec(step, steps, "step")
    except SelectionError as exc:
        if steps == run.steps_done:
            raise
        raise SelectionError(f"{exc} with {SOURCES[estimator]}: the capture kept it at steps {describe(steps)} only "
                             "(self_prop_steps); choose steps there, or another estimator") from None
    return words, {
        "step": chosen_steps,
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
    summary: SummaryLoader | None = None,
) -> xr.DataArray:
    """A word's map on the latent grid, float32 (frame, y, x), averaged over the chosen steps/layers/heads.

    ``word`` may be a list: the result then keeps a ``word`` dim. Dims named in ``keep`` (any of step, layer,
    head) are kept instead of averaged, first and in that order. ``estimator="renorm"`` divides every query's
    probabilities by its mass on the real prompt tokens before averaging, which removes Wan's padding sink
    (unmasked zero padding takes much of the attention) and makes maps of different steps/layers comparable.
    ``estimator="value-norm"`` averages ‖p·v·W_o‖, each word's contribution to the attention output, and
    ``"value-proj"`` that contribution's length along the query's whole attention output (both sharper on the
    toy world; both need a run captured with ``value_norm=True``). ``"self-prop"`` averages the maps propagated
    through each block's self-attention (a run captured with ``self_prop=True``). ``summary`` loads a word's
    head-mean summary (the viewer passes a cached one; see :func:`mean_map`); without it the mean is taken over
    the stored maps.
    """
    bad_keep = [d for d in keep if d not in AGG_DIMS]
    if bad_keep:
        raise SelectionError(f"cannot keep {bad_keep}; keep is a subset of {AGG_DIMS}")
    words, where = resolve(run, word, step, layer, head, estimator)
    steps, layers, heads = where["step"], where["layer"], where["head"]
    missing = missing_source(run, estimator)
    if missing:
        raise SelectionError(f"{run.path} has no {missing} array; generate with {CAPTURE_FLAG[missing]}, or "
                             "choose estimator raw or renorm")
    if not keep and isinstance(word, str):
        values = mean_map(run, word, where, estimator, summary)
        out = xr.DataArray(values, dims=("frame", "y", "x"), coords={"word": word}, name="maps")
    elif tuple(keep) == ("head",) and isinstance(word, str):
        values = head_means(run, run.words.index(word), positions(run, where), estimator)
        out = xr.DataArray(values, dims=("head", "frame", "y", "x"), coords={"head": heads, "word": word},
                           name="maps")
    else:
        out = _select_lazy(run, word, words, where, estimator, keep)
    out.attrs.update(word=word if isinstance(word, str) else list(words), estimator=estimator,
                     step=describe(steps), layer=describe(layers), head=describe(heads))
    return out


def _select_lazy(run: Run, word: str | Sequence[str], words: list[str], where: dict[str, list[Any]],
                 estimator: str, keep: Sequence[str]) -> xr.DataArray:
    """Through dask: keeps dims and word lists; reads the chosen (step, layer) chunks on two threads."""
    source = getattr(run, SOURCES[estimator])
    maps = source.sel(word=words if not isinstance(word, str) else word, **where).astype("float32")
    if estimator == "renorm":
        maps = maps / (run.prompt_mass.sel(**where).astype("float32") + EPS)
    reduced = maps.mean([d for d in AGG_DIMS if d not in keep])
    order = [*keep, *(["word"] if "word" in reduced.dims else []), "frame", "y", "x"]
    with dask.config.set(scheduler="threads"):
        return reduced.transpose(*order).compute()


def _index(positions: list[int]) -> Index:
    """A slice when the positions are contiguous (numpy then takes a view, zarr a plain region), else the list."""
    if positions == list(range(positions[0], positions[0] + len(positions))):
        return slice(positions[0], positions[0] + len(positions))
    return positions


def positions(run: Run, where: dict[str, list[Any]]) -> dict[str, list[int]]:
    """Array positions of the selected steps (steps are their own index), layers and heads."""
    return {"step": [int(s) for s in where["step"]],
            "layer": [run.meta["layers"].index(v) for v in where["layer"]],
            "head": [run.meta["heads"].index(v) for v in where["head"]]}


def summary_block(run: Run, word: str, estimator: str) -> np.ndarray | None:
    """The word's head-mean summary of every step and layer, fp16 (step, layer, frame, y, x), or None when the
    run has no summary. The viewer keeps it in memory (fp16 halves that memory; sums accumulate in float32): any
    step x layer range is then one sum."""
    array = run.summary(estimator)
    if array is None:
        return None
    return array[:, :, run.words.index(word)]


def mean_map(run: Run, word: str, where: dict[str, list[Any]], estimator: str,
             summary: SummaryLoader | None = None) -> np.ndarray:
    """One word's mean over the selected steps, layers and heads, float32 (frame, y, x), read straight from zarr.

    Over all heads and more than one slab, when ``summary`` gives the word's head-mean summary, it averages that
    (in memory: a sum, whatever the range; exact up to the summary's fp16 rounding, ~5e-4 relative). Otherwise,
    and for runs written without a summary, it reads the selected slabs of ``maps``.
    """
    pos = positions(run, where)
    all_heads = len(pos["head"]) == len(run.meta["heads"])
    if summary is not None and all_heads and len(pos["step"]) * len(pos["layer"]) > 1:
        block = summary(word, estimator)
        if block is not None:
            return block[_index(pos["step"])][:, _index(pos["layer"])].mean((0, 1), dtype=np.float32)
    return head_means(run, run.words.index(word), pos, estimator).mean(0)


def head_means(run: Run, word: int, pos: dict[str, list[int]], estimator: str) -> np.ndarray:
    """Mean of ``maps`` (the value-* estimators: their arrays) over the selected slabs, per selected head, float32
    (head, frame, y, x). Read in batches of about ``BATCH_SLABS`` slabs: zarr decodes a batch's chunks
    concurrently, and memory stays bounded for long ranges."""
    maps = run.array(SOURCES[estimator])
    mass = run.array("prompt_mass")
    steps, layers, heads = pos["step"], _index(pos["layer"]), _index(pos["head"])
    per = max(1, BATCH_SLABS // len(pos["layer"]))
    total = np.zeros((len(pos["head"]), *maps.shape[-3:]), np.float32)
    for start in range(0, len(steps), per):
        batch = _index(steps[start:start + per])
        values = maps.oindex[batch, layers, heads, word].astype(np.float32)  # (step, layer, head, F, Y, X)
        if estimator == "renorm":
            values /= mass.oindex[batch, layers, heads].astype(np.float32) + EPS
        total += values.sum((0, 1))
    return total / (len(steps) * len(pos["layer"]))
