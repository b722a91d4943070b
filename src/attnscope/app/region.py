"""Regions for the mask bends, drawn on a frame: a box from two clicks, or the bounding box of brush strokes.

The mask op takes a box in fractions of the frame (x0, y0, x1, y1), so both ways end as one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BOX_COLOUR = np.array([0, 255, 120], np.uint8)


def draw_box(frame: np.ndarray, a: tuple[float, float], b: tuple[float, float],
             colour: np.ndarray = BOX_COLOUR) -> np.ndarray:
    """``frame`` with the box from corner ``a`` to ``b`` (fractions) outlined; a point when a == b."""
    out = np.array(frame, copy=True)
    h, w = out.shape[:2]
    x0, x1 = sorted((int(a[0] * (w - 1)), int(b[0] * (w - 1))))
    y0, y1 = sorted((int(a[1] * (h - 1)), int(b[1] * (h - 1))))
    t = max(1, min(h, w) // 128)
    out[max(y0 - t, 0):y1 + t + 1, max(x0 - t, 0):x0 + t + 1] = colour
    out[max(y0 - t, 0):y1 + t + 1, max(x1 - t, 0):x1 + t + 1] = colour
    out[max(y0 - t, 0):y0 + t + 1, max(x0 - t, 0):x1 + t + 1] = colour
    out[max(y1 - t, 0):y1 + t + 1, max(x0 - t, 0):x1 + t + 1] = colour
    return out


def region_of_strokes(edited: dict[str, Any] | None) -> tuple[float, float, float, float] | None:
    """The bounding box (fractions) of what was painted in a ``gr.ImageEditor`` value; None when nothing was."""
    if not edited:
        return None
    layers = [np.asarray(layer) for layer in edited.get("layers") or [] if layer is not None]
    painted = [layer[..., 3] > 0 for layer in layers if layer.ndim == 3 and layer.shape[2] == 4]
    if not painted or not any(p.any() for p in painted):
        return None
    mask = np.logical_or.reduce(painted)
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    return xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h
