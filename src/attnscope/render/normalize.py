"""Map attention values to [0, 1] for a colormap, and keep the value range so the colour bar tells the truth.

Modes (the range is computed on the latent token grid, the data itself, before any upscaling):

- ``global``: one range (min..max) over everything shown; colours compare across frames and steps.
- ``frame``: one range per frame (and per step when a step axis is shown); shape within a frame, not strength.
- ``step``: one range per denoising step (timeline); a single averaged map has one step, so it equals global.
- ``absolute``: the fixed range 0..1, i.e. the raw probability (or, with the renorm estimator, the share of
  the prompt's attention); nothing is stretched, so weak attention looks weak.

``clip=p`` (percent) replaces min..max by the (100-p)..p percentiles, so a few hot tokens do not wash out the
rest. Renormalization over the prompt tokens is an estimator choice (``select(..., estimator="renorm")``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from ..errors import SelectionError

NORM_MODES = ("global", "frame", "step", "absolute")


@dataclass(frozen=True)
class Normalized:
    """Values in [0, 1] and the range each value was mapped from (``lo``/``hi`` broadcast against values)."""

    values: xr.DataArray
    lo: xr.DataArray
    hi: xr.DataArray
    mode: str
    clip: float | None = None

    @property
    def label(self) -> str:
        """The mode as the colour bar prints it, e.g. ``global, clip 1-99%``."""
        if self.clip is None or self.mode == "absolute":
            return self.mode
        return f"{self.mode}, clip {100 - self.clip:g}-{self.clip:g}%"

    def range_at(self, **index: int) -> tuple[float, float]:
        """The (lo, hi) used at a position, e.g. ``range_at(frame=3)``; dims the range does not vary over are
        ignored."""
        pick = {d: i for d, i in index.items() if d in self.lo.dims}
        return float(self.lo.isel(pick).max()), float(self.hi.isel(pick).max())


def range_dims(dims: Sequence[str], mode: str) -> tuple[str, ...]:
    """The dims that get their own range under ``mode``."""
    if mode == "frame":
        return tuple(d for d in dims if d in ("step", "frame"))
    if mode == "step":
        return tuple(d for d in dims if d == "step")
    return ()


def normalize(maps: xr.DataArray, mode: str = "global", clip: float | None = None,
              per: Sequence[str] = ()) -> Normalized:
    """Scale ``maps`` to [0, 1] by ``mode``; dims in ``per`` (e.g. ``word``, a grid's panels) always get their
    own range. Returns the values with the ranges used."""
    if mode not in NORM_MODES:
        raise SelectionError(f"unknown normalization '{mode}'; choose one of {', '.join(NORM_MODES)}")
    if clip is not None and not 50 < clip <= 100:
        raise SelectionError(f"--clip is a percentile between 50 and 100 (e.g. 99), got {clip}")
    maps = maps.astype("float32")
    keep = [d for d in maps.dims if d in per or d in range_dims(maps.dims, mode)]
    reduce = [d for d in maps.dims if d not in keep]
    if mode == "absolute":
        lo = xr.zeros_like(maps.isel({d: 0 for d in reduce}, drop=True))
        hi = lo + 1.0
    elif clip is None or clip == 100:
        lo, hi = maps.min(reduce), maps.max(reduce)
    else:
        lo = maps.quantile(1 - clip / 100, dim=reduce).drop_vars("quantile")
        hi = maps.quantile(clip / 100, dim=reduce).drop_vars("quantile")
    span = (hi - lo).where(hi - lo > 0, np.float32(1e-12))
    values = ((maps - lo) / span).clip(0.0, 1.0).astype("float32")
    return Normalized(values=values.transpose(*maps.dims), lo=lo.astype("float32"), hi=hi.astype("float32"),
                      mode=mode, clip=clip)
