"""Stored precision of the maps: lossless float16 (the default) or compact uint8 with one scale per map.

Compact (``precision="uint8"``): every (head, word) map of a slab — and every head's prompt-mass map, every word's
head-mean summary — is stored as ``q = round(x / s)`` in uint8 with ``s = max(x) / 255`` over that map's
(frame, y, x) values, and ``s`` in a float32 array beside it (``<name>_scale``, the map's dims without frame, y,
x). Reading gives back ``q · s`` as float16, so the largest absolute error against the lossless store is
``MAX_ABS_ERROR`` (half a quantization step, plus the float16 rounding of the decoded value) times the map's
maximum, which is at most the slab's maximum. The per-(step, layer) codes are stored as differences from the
step before (:mod:`.chain`, exact), which consecutive denoising steps make mostly 0 and ±1: on the Wan2.1-1.3B
benchmark a compact store is 938 MB for 20 steps against 3,844 MB lossless, whose float16 mantissas barely
compress (1.27x).

What it is for: long captures where the disk (or the writer's CPU time) is the limit and per-pixel precision below
0.25 % of a map's peak does not matter (heatmaps, overlays, segmentation at a threshold). Arrays that can be
negative (``value_proj``) stay float16 in either precision.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .chain import CHAINED, GROUP, full_selection

PRECISIONS = ("fp16", "uint8")
SCALE = "_scale"  # suffix of the float32 array of per-map scales beside each quantized array
QUANTIZED = ("maps", "prompt_mass", "head_mean", "head_mean_renorm", "value_norm", "self_prop")
MAP_DIMS = 3  # (frame, y, x): a scale covers one map
LEVELS = 255
MAX_ABS_ERROR = 0.5 / LEVELS + 2.0 ** -11  # relative to the map's maximum: half a step + fp16 rounding on decode


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    return precision


def quantized(name: str, precision: str) -> bool:
    """Whether array ``name`` is stored as uint8 + scale under ``precision``."""
    return precision == "uint8" and name in QUANTIZED


def precision_meta(precision: str) -> dict[str, Any]:
    """meta.json's ``precision`` record: what is stored and the largest error of a read value."""
    if precision == "fp16":
        return {"dtype": "float16", "max_abs_error": 0.0,
                "about": "lossless: the captured float16 values"}
    return {"dtype": "uint8", "arrays": list(QUANTIZED), "scale": "one float32 per (frame, y, x) map: max / 255",
            "step_chain": {"arrays": list(CHAINED), "group": GROUP,
                           "about": "codes stored as differences from the step before (mod 256), restarting every "
                                    "`group` steps: exact (attnscope.store.chain)"},
            "max_abs_error": MAX_ABS_ERROR,
            "about": "largest |read - float16 capture| relative to the map's maximum (so to the slab's): half a "
                     "quantization step (1/510) plus the float16 rounding of the decoded value (2^-11)"}


def quantize(x):
    """uint8 codes and float32 scales of ``x`` [..., F, Y, X] (torch tensor on any device, or numpy), one scale
    per map over its last three dims: returns (q [..., F, Y, X] uint8, scale [...] float32).

    ``x`` is rounded to float16 first, so the codes are those of exactly what the lossless store would hold and
    the error bound holds against it."""
    import torch  # here: the reading side needs no torch

    t = torch.as_tensor(x).to(torch.float16)
    flat = t.flatten(-MAP_DIMS)
    peak = flat.amax(-1).float()  # [...]
    scale = peak / LEVELS
    inv = torch.where(peak > 0, LEVELS / torch.where(peak > 0, peak, 1.0), 0.0)
    q = (flat.float() * inv.unsqueeze(-1)).round_().clamp_(0, LEVELS).to(torch.uint8)
    return q.view(t.shape), scale


def encode_slabs(tensors: dict[str, Any], precision: str) -> dict[str, Any]:
    """``tensors`` (array name -> float slab) as the store keeps them: under "uint8", each quantized array becomes
    uint8 codes plus ``<name>_scale``; other arrays and precisions pass through. Device-agnostic (torch): call it
    on the capture's device before the host copy, so only a byte per value crosses to the host."""
    if precision != "uint8":
        return tensors
    out: dict[str, Any] = {}
    for name, value in tensors.items():
        if quantized(name, precision) and getattr(value, "dtype", None) is not None and _is_float(value):
            out[name], out[name + SCALE] = quantize(value)
        else:
            out[name] = value
    return out


def _is_float(value) -> bool:
    dtype = value.dtype
    return dtype.is_floating_point if hasattr(dtype, "is_floating_point") else np.issubdtype(dtype, np.floating)


def dequantize(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """float16 values of codes ``q`` [..., F?, Y?, X?] with ``scale`` broadcast over the trailing map dims."""
    extra = q.ndim - scale.ndim
    s = np.asarray(scale, np.float32).reshape(scale.shape + (1,) * extra)
    return (q.astype(np.float32) * s).astype(np.float16)


class Dequantized:
    """Read view of a compact array: indexing (basic, and ``.oindex`` orthogonal) returns float16 values like the
    lossless array would (NaN where a step was never written: its scale is NaN), so readers need not know the
    precision. ``shape``, ``chunks``, ``ndim``, ``dtype`` are the zarr array's, with dtype float16."""

    dtype = np.dtype(np.float16)

    def __init__(self, codes, scale) -> None:
        self.codes, self.scale = codes, scale
        self.shape, self.chunks, self.ndim = codes.shape, codes.chunks, codes.ndim
        self.oindex = _Orthogonal(self)

    def _split(self, selection) -> tuple[tuple, tuple]:
        """The full selection, and its part for the scale array (all but the map dims)."""
        sel = full_selection(selection, self.ndim)
        return sel, sel[: self.ndim - MAP_DIMS]

    def _read(self, selection, orthogonal: bool) -> np.ndarray:
        sel, head = self._split(selection)
        if orthogonal:
            codes, scale = self.codes.oindex[sel], self.scale.oindex[head]
        else:
            codes, scale = self.codes[sel], self.scale[head]
        return dequantize(np.asarray(codes), np.asarray(scale))

    def __getitem__(self, selection) -> np.ndarray:
        return self._read(selection, orthogonal=False)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        values = self[...]
        return values if dtype is None else values.astype(dtype)


class _Orthogonal:
    def __init__(self, parent: Dequantized) -> None:
        self.parent = parent

    def __getitem__(self, selection) -> np.ndarray:
        return self.parent._read(selection, orthogonal=True)
