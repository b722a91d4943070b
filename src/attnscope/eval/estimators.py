"""Estimators: ways to turn a run's captured data into one map per word, to be judged against object masks.

- ``raw``: mean probability over steps, layers and heads — what most tools show.
- ``renorm``: each query's probabilities divided by its mass on the real prompt tokens before averaging;
  removes the padding sink (Wan does not mask its 512-token padding, which takes much of the attention).
- ``share``: the word's share of the attention among the captured words (p_w / Σ_words p) — a per-query
  competition between the words of the prompt, cancelling what all words get alike.
- ``value-norm``: ‖Σ_t p_t v_t W_o‖, the word's contribution to the attention *output* (ConceptAttention's
  observation that output-space maps are sharper), averaged like ``raw``.
- ``value-proj``: ⟨Σ_{t∈w} p_t v_t W_o, y⟩ / ‖y‖, the word's contribution measured along the query's whole
  attention output y: where the word is attended but the output points elsewhere (at the padding, say), it
  counts little. Heads sum to the exact projection; averaged over steps and layers.
- ``self-prop``: the maps propagated through the same block's self-attention, Ā·m (Ā the head-mean self-attention
  of the block whose cross-attention made m): tokens that attend to each other — one object — share their map,
  which fills the ring a shape word leaves on its object's edges. The refinement of training-free segmentation
  from diffusion models (DiffSegmenter); captured exactly during generation with ``self_prop=True``.
- ``best-layers``: the base estimator (by default the one that scores best on the selection split) restricted to
  the layers and steps that localize best there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import xarray as xr

from ..render.selection import CAPTURE_FLAG, SOURCES, missing_source
from ..store import Run

AGG = ("step", "layer", "head")
EPS = 1e-8


def _select(arr: xr.DataArray, layers: Sequence[int] | None, steps: Sequence[int] | None) -> xr.DataArray:
    if layers is not None:
        arr = arr.sel(layer=list(layers))
    if steps is not None:
        arr = arr.sel(step=list(steps))
    return arr


def raw(run: Run, word: str, layers=None, steps=None) -> np.ndarray:
    return _select(run.maps.sel(word=word), layers, steps).astype("float32").mean(AGG).values


def renorm(run: Run, word: str, layers=None, steps=None) -> np.ndarray:
    maps = _select(run.maps.sel(word=word), layers, steps).astype("float32")
    mass = _select(run.prompt_mass, layers, steps).astype("float32")
    return (maps / (mass + EPS)).mean(AGG).values


def share(run: Run, word: str, layers=None, steps=None) -> np.ndarray:
    maps = _select(run.maps, layers, steps).astype("float32")
    return (maps.sel(word=word) / (maps.sum("word") + EPS)).mean(AGG).values


def _stored(run: Run, estimator: str, word: str, layers, steps) -> np.ndarray:
    """Mean of the optional Run array an estimator reads (value_norm, value_proj, self_prop), or a clear error."""
    missing = missing_source(run, estimator)
    if missing:
        raise ValueError(f"{run.path} has no {missing}; generate with {CAPTURE_FLAG[missing]}")
    kept = run.steps_of(SOURCES[estimator])  # self_prop may be kept at fewer steps than the maps
    steps = kept if steps is None else [s for s in steps if s in kept] or list(steps)
    return _select(getattr(run, SOURCES[estimator]).sel(word=word), layers, steps).astype("float32").mean(AGG).values


def value_norm(run: Run, word: str, layers=None, steps=None) -> np.ndarray:
    return _stored(run, "value-norm", word, layers, steps)


def value_proj(run: Run, word: str, layers=None, steps=None) -> np.ndarray:
    return _stored(run, "value-proj", word, layers, steps)


def self_prop(run: Run, word: str, layers=None, steps=None) -> np.ndarray:
    return _stored(run, "self-prop", word, layers, steps)


ESTIMATORS: dict[str, Callable[..., np.ndarray]] = {
    "raw": raw,
    "renorm": renorm,
    "share": share,
    "value-norm": value_norm,
    "value-proj": value_proj,
    "self-prop": self_prop,
}


def per_layer_step(run: Run, word: str, base: str = "renorm") -> xr.DataArray:
    """The ``base`` estimator for every (layer, step) separately: (layer, step, frame, y, x)."""
    return _base_maps(run, word, base).mean("head").transpose("layer", "step", "frame", "y", "x").compute()


def _base_maps(run: Run, word: str, base: str) -> xr.DataArray:
    """Per (step, layer, head) maps of a base estimator, before any averaging."""
    if SOURCES.get(base, "maps") != "maps":  # the value-* estimators: their own stored array
        return getattr(run, SOURCES[base]).sel(word=word).astype("float32")
    maps = run.maps.sel(word=word).astype("float32")
    if base == "renorm":
        maps = maps / (run.prompt_mass.astype("float32") + EPS)
    elif base == "share":
        maps = maps / (run.maps.astype("float32").sum("word") + EPS)
    return maps


def per_head(run: Run, word: str, base: str = "renorm") -> xr.DataArray:
    """The ``base`` estimator per (layer, head), averaged over steps: (layer, head, frame, y, x)."""
    return _base_maps(run, word, base).mean("step").transpose("layer", "head", "frame", "y", "x").compute()
