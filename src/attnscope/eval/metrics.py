"""IoU of attention maps against object masks, as DAAM measured it (binarize at 0.4 of the map's maximum)."""

from __future__ import annotations

import numpy as np

DAAM_THRESHOLD = 0.4
THRESHOLDS = np.round(np.arange(0.1, 0.95, 0.05), 2)
DAAM_INDEX = int(np.flatnonzero(THRESHOLDS == DAAM_THRESHOLD)[0])  # the curve's point that thresholded_iou gives


NORMALIZATIONS = ("video", "frame")


def normalize(heat: np.ndarray, per: str = "video") -> np.ndarray:
    """Scale a map [F, ...] to [0, 1] by its min and max: over the whole video (``per="video"``: frames stay
    comparable), or each frame by its own (``"frame"``: a video frame plays the part of DAAM's image, so a frame
    where the word is attended less overall still gets its own 0.4 threshold)."""
    if per not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {per!r}; use one of {', '.join(NORMALIZATIONS)}")
    heat = np.asarray(heat, dtype=np.float64)
    if per == "frame":
        return np.stack([normalize(frame) for frame in heat])
    lo, hi = np.nanmin(heat), np.nanmax(heat)
    if not np.isfinite(hi) or hi <= lo:
        return np.zeros_like(heat)
    return (heat - lo) / (hi - lo)


def iou(pred: np.ndarray, mask: np.ndarray) -> float:
    """Intersection over union of two boolean arrays of the same shape; 1.0 when both are empty."""
    pred, mask = np.asarray(pred, bool), np.asarray(mask, bool)
    if pred.shape != mask.shape:
        raise ValueError(f"prediction {pred.shape} and mask {mask.shape} differ in shape")
    union = np.logical_or(pred, mask).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(pred, mask).sum() / union)


def thresholded_iou(heat: np.ndarray, mask: np.ndarray, threshold: float = DAAM_THRESHOLD,
                    per: str = "video") -> float:
    """IoU of ``normalize(heat, per) >= threshold`` against ``mask``."""
    return iou(normalize(heat, per) >= threshold, mask)


def iou_curve(heat: np.ndarray, mask: np.ndarray, thresholds: np.ndarray = THRESHOLDS,
              per: str = "video") -> np.ndarray:
    """IoU at every threshold (to pick the best threshold over a whole data split, not per map)."""
    norm = normalize(heat, per)
    return np.array([iou(norm >= t, mask) for t in thresholds])


def latent_mask(mask: np.ndarray, grid: tuple[int, int, int], temporal: int = 4, coverage: float = 0.5) -> np.ndarray:
    """Pixel mask [T, H, W] → token-grid mask [F', H', W'].

    Time follows Wan's causal VAE: latent frame 0 is pixel frame 0, latent frame i covers pixel frames
    4i-3 … 4i. A token is on when at least ``coverage`` of its pixels (over its frames) are on.
    """
    mask = np.asarray(mask, dtype=np.float64)
    f, y, x = grid
    t, h, w = mask.shape
    if h % y or w % x:
        raise ValueError(f"mask {h}x{w} does not divide into a {y}x{x} token grid")
    spatial = mask.reshape(t, y, h // y, x, w // x).mean(axis=(2, 4))  # [T, Y, X] token coverage per frame
    out = np.empty((f, y, x))
    for i in range(f):
        frames = [0] if i == 0 else list(range(max(0, temporal * i - temporal + 1), min(t, temporal * i + 1)))
        out[i] = spatial[frames].mean(axis=0)
    return out >= coverage


def pixel_heat(heat: np.ndarray, shape: tuple[int, int, int], temporal: int = 4) -> np.ndarray:
    """Token-grid map [F', H', W'] → pixel map [T, H, W]: causal time hold, bilinear space."""
    import torch

    t, h, w = shape
    latent_index = np.array([0] + [(i + temporal - 1) // temporal for i in range(1, t)])
    frames = torch.from_numpy(np.asarray(heat, dtype=np.float32)[latent_index])[:, None]  # [T, 1, Y, X]
    up = torch.nn.functional.interpolate(frames, size=(h, w), mode="bilinear", align_corners=False)
    return up[:, 0].numpy()
