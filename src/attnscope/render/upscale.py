"""From the latent token grid to video pixels, in time (Wan's causal VAE) and space (smooth interpolation).

Time. Wan's VAE is causal with a temporal factor of 4: latent frame 0 encodes pixel frame 0 alone, latent frame
``i >= 1`` encodes pixel frames ``4i-3 .. 4i``. The default, ``time="hold"``, shows each latent frame's map on
exactly the pixel frames it encodes: that is what the model attended for those frames, nothing invented.
``time="linear"`` interpolates between the centres of the latent frames (0, 2.5, 6.5, ...) for smoother motion,
at the price of showing values that no query had.

Space. A token covers ``patch x vae_spatial`` pixels (2 x 8 = 16 at Wan2.1). Bilinear interpolation with
``align_corners=False`` puts each token's value at the centre of its pixel block and blends between centres;
bicubic is sharper and is clamped to the input's range so it never invents values outside it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

TIME_MODES = ("hold", "linear")
SPACE_MODES = ("bilinear", "bicubic", "nearest")


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def latent_frame_index(pixel_frames: int, latent_frames: int, temporal: int = 4) -> np.ndarray:
    """For each pixel frame, the latent frame that encodes it (0 -> 0; 4i-3..4i -> i), clamped to the grid."""
    t = np.arange(pixel_frames)
    return np.minimum((t + temporal - 1) // temporal, latent_frames - 1)


def time_weights(pixel_frames: int, latent_frames: int, temporal: int = 4,
                 time: str = "hold") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel frame: (latent index a, latent index b, weight of b); the map is ``(1-w)·a + w·b``."""
    if time not in TIME_MODES:
        raise ValueError(f"time must be one of {TIME_MODES}, got {time!r}")
    if time == "hold" or latent_frames == 1:
        idx = latent_frame_index(pixel_frames, latent_frames, temporal)
        return idx, idx, np.zeros(pixel_frames, dtype=np.float32)
    centres = np.array([0.0] + [temporal * i - (temporal - 1) / 2 for i in range(1, latent_frames)])
    u = np.interp(np.arange(pixel_frames), centres, np.arange(latent_frames, dtype=np.float64))
    a = np.floor(u).astype(np.int64)
    b = np.minimum(a + 1, latent_frames - 1)
    return a, b, (u - a).astype(np.float32)


def as_tensor(maps, device: torch.device | str | None = None) -> torch.Tensor:
    """numpy / xarray / torch -> float32 tensor on ``device`` (default: CUDA when available)."""
    device = torch.device(device) if device is not None else default_device()
    if isinstance(maps, torch.Tensor):
        return maps.to(device=device, dtype=torch.float32)
    values = getattr(maps, "values", maps)
    return torch.as_tensor(np.asarray(values, dtype=np.float32), device=device)


def upscale_space(maps, size: tuple[int, int], mode: str = "bilinear",
                  device: torch.device | str | None = None) -> torch.Tensor:
    """Resize the last two dims (y, x) to ``size`` = (H, W); leading dims are kept."""
    if mode not in SPACE_MODES:
        raise ValueError(f"mode must be one of {SPACE_MODES}, got {mode!r}")
    x = as_tensor(maps, device)
    lead, (ys, xs) = x.shape[:-2], x.shape[-2:]
    flat = x.reshape(-1, 1, ys, xs)  # [N, 1, Y, X]
    kwargs = {} if mode == "nearest" else {"align_corners": False}
    out = F.interpolate(flat, size=tuple(size), mode=mode, **kwargs)  # [N, 1, H, W]
    if mode == "bicubic":
        lo = flat.amin(dim=(-2, -1), keepdim=True)
        hi = flat.amax(dim=(-2, -1), keepdim=True)
        out = torch.maximum(torch.minimum(out, hi), lo)
    return out.reshape(*lead, *size)


def upscale_time(maps: torch.Tensor, pixel_frames: int, temporal: int = 4, time: str = "hold",
                 frames: Sequence[int] | None = None) -> torch.Tensor:
    """Map the frame axis (third from last) from latent frames to pixel frames (or only ``frames``)."""
    a, b, w = time_weights(pixel_frames, maps.shape[-3], temporal, time)
    if frames is not None:
        a, b, w = a[list(frames)], b[list(frames)], w[list(frames)]
    ia = torch.as_tensor(a, device=maps.device)
    out = maps.index_select(-3, ia)
    if time == "hold" or not np.any(w):
        return out
    ib = torch.as_tensor(b, device=maps.device)
    wb = torch.as_tensor(w, device=maps.device).view(-1, 1, 1)
    return out * (1 - wb) + maps.index_select(-3, ib) * wb


def upscale(maps, size: tuple[int, int], pixel_frames: int | None = None, *, temporal: int = 4,
            time: str = "hold", mode: str = "bilinear", frames: Sequence[int] | None = None,
            device: torch.device | str | None = None) -> torch.Tensor:
    """Latent maps (..., frame, y, x) -> pixel maps (..., T, H, W) float32, on CUDA when available.

    ``pixel_frames`` defaults to ``temporal·(F'-1)+1``, Wan's frame count for F' latent frames; ``frames``
    restricts the output to some pixel frames (a viewer showing one frame upsamples only what it needs).
    """
    x = as_tensor(maps, device)
    pixel_frames = pixel_frames or temporal * (x.shape[-3] - 1) + 1
    if time == "hold":  # resize only the latent frames that are shown, then repeat them
        needed = latent_frame_index(pixel_frames, x.shape[-3], temporal)
        if frames is not None:
            needed = needed[list(frames)]
        used, inverse = np.unique(needed, return_inverse=True)
        small = upscale_space(x.index_select(-3, torch.as_tensor(used, device=x.device)), size, mode)
        return small.index_select(-3, torch.as_tensor(inverse, device=x.device))
    return upscale_time(upscale_space(x, size, mode), pixel_frames, temporal, time, frames)
