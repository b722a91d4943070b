"""Spatial and temporal transforms of maps shaped (..., F, Y, X): the latent token grid, frame by frame.

Shared by attention bends (a word's probability maps) and activation bends (channel maps). Conventions:
x grows to the right, y grows downwards (image coordinates); token (x, y) has its centre at ((x + .5) / X,
(y + .5) / Y) in fractions of the grid. Everything that moves content (translate, rotate, scale, shift) lets
**zeros** come in where no source exists and drops what leaves the grid. Sub-token moves are bilinear; moves by
whole tokens (and rotations by multiples of 90 degrees that land on tokens) copy values exactly. A transform that
is an identity returns its input object unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["MAP_TRANSFORMS", "blur", "flip", "freeze", "invert", "mask", "reverse", "rotate", "scale", "sharpen",
           "shift", "threshold", "transform", "translate"]

_SNAP = 1e-6  # source coordinates this close to a token centre are taken as exactly on it


def _grid(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-centre coordinates (Y, X) of the last two dims, in float64 for exact integer arithmetic."""
    ny, nx = x.shape[-2:]
    ys = torch.arange(ny, dtype=torch.float64, device=x.device)
    xs = torch.arange(nx, dtype=torch.float64, device=x.device)
    return torch.meshgrid(ys, xs, indexing="ij")


def _sample(x: torch.Tensor, src_y: torch.Tensor, src_x: torch.Tensor) -> torch.Tensor:
    """Bilinear read of x (..., Y, X) at source coordinates (Y, X); zeros outside the grid."""
    ny, nx = x.shape[-2:]
    src_y = torch.where((src_y - src_y.round()).abs() < _SNAP, src_y.round(), src_y)
    src_x = torch.where((src_x - src_x.round()).abs() < _SNAP, src_x.round(), src_x)
    y0, x0 = src_y.floor(), src_x.floor()
    wy, wx = src_y - y0, src_x - x0
    flat = x.flatten(-2)  # (..., Y*X)
    out = torch.zeros_like(flat)
    for cy, w_y in ((y0, 1.0 - wy), (y0 + 1.0, wy)):
        for cx, w_x in ((x0, 1.0 - wx), (x0 + 1.0, wx)):
            weight = w_y * w_x * ((cy >= 0) & (cy < ny) & (cx >= 0) & (cx < nx))
            if not bool(weight.any()):
                continue
            index = (cy.clamp(0, ny - 1) * nx + cx.clamp(0, nx - 1)).long().flatten()
            out = out + flat[..., index] * weight.flatten().to(x.dtype)
    return out.unflatten(-1, (ny, nx))


def translate(x: torch.Tensor, dx: float = 0.0, dy: float = 0.0) -> torch.Tensor:
    """Move content by dx of the width (right) and dy of the height (down)."""
    if dx == 0.0 and dy == 0.0:
        return x
    ys, xs = _grid(x)
    ny, nx = x.shape[-2:]
    return _sample(x, ys - dy * ny, xs - dx * nx)


def rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate counter-clockwise on screen by ``degrees`` about the grid's centre."""
    if degrees % 360.0 == 0.0:
        return x
    ys, xs = _grid(x)
    cy, cx = (x.shape[-2] - 1) / 2, (x.shape[-1] - 1) / 2
    theta = math.radians(degrees)
    cos, sin = math.cos(theta), math.sin(theta)
    # output (x', y') reads the source point that the on-screen counter-clockwise rotation brings there
    src_x = cx + (xs - cx) * cos - (ys - cy) * sin
    src_y = cy + (xs - cx) * sin + (ys - cy) * cos
    return _sample(x, src_y, src_x)


def scale(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Zoom about the grid's centre: factor 2 doubles sizes (edges leave), 0.5 halves them (zeros come in)."""
    if factor == 1.0:
        return x
    ys, xs = _grid(x)
    cy, cx = (x.shape[-2] - 1) / 2, (x.shape[-1] - 1) / 2
    return _sample(x, cy + (ys - cy) / factor, cx + (xs - cx) / factor)


def flip(x: torch.Tensor, axis: str = "x") -> torch.Tensor:
    """Mirror left-right (``x``), top-bottom (``y``) or both."""
    dims = {"x": (-1,), "y": (-2,), "both": (-2, -1)}[axis]
    return torch.flip(x, dims)


def _gaussian(sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    radius = max(1, math.ceil(3.0 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-(taps**2) / (2.0 * sigma**2))
    return (kernel / kernel.sum()).to(dtype=dtype, device=device)


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of each frame, sigma in tokens; zeros beyond the border, so edge mass leaks out."""
    if sigma == 0.0:
        return x
    kernel = _gaussian(sigma, x.dtype, x.device)
    radius = kernel.numel() // 2
    planes = x.reshape(-1, 1, *x.shape[-2:])  # (N, 1, Y, X): every frame of every map
    planes = F.conv2d(planes, kernel.view(1, 1, 1, -1), padding=(0, radius))
    planes = F.conv2d(planes, kernel.view(1, 1, -1, 1), padding=(radius, 0))
    return planes.reshape(x.shape)


def sharpen(x: torch.Tensor, amount: float, sigma: float = 1.0) -> torch.Tensor:
    """Unsharp mask: x + amount * (x - blur(x, sigma))."""
    if amount == 0.0:
        return x
    return x + amount * (x - blur(x, sigma))


def mask(x: torch.Tensor, x0: float = 0.0, y0: float = 0.0, x1: float = 1.0, y1: float = 1.0,
         keep: str = "inside") -> torch.Tensor:
    """Zero every token outside (``keep: inside``) or inside the region; a token is in when its centre is."""
    ys, xs = _grid(x)
    cy, cx = (ys + 0.5) / x.shape[-2], (xs + 0.5) / x.shape[-1]
    inside = (cx >= x0) & (cx < x1) & (cy >= y0) & (cy < y1)
    kept = inside if keep == "inside" else ~inside
    if bool(kept.all()):
        return x
    return torch.where(kept, x, torch.zeros((), dtype=x.dtype, device=x.device))


def invert(x: torch.Tensor) -> torch.Tensor:
    """Reflect each frame within its own range: max + min - x (the peak becomes the floor; signs are kept)."""
    top = x.amax(dim=(-2, -1), keepdim=True)
    bottom = x.amin(dim=(-2, -1), keepdim=True)
    return top + bottom - x


def threshold(x: torch.Tensor, level: float, magnitude: bool = False) -> torch.Tensor:
    """Zero values below ``level`` times the frame's maximum (of |x| when ``magnitude``); keep the rest."""
    if level == 0.0:
        return x
    ref = x.abs() if magnitude else x
    keep = ref >= level * ref.amax(dim=(-2, -1), keepdim=True)
    return torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device))


def reverse(x: torch.Tensor) -> torch.Tensor:
    """Play the frames backwards."""
    return torch.flip(x, (-3,))


def shift(x: torch.Tensor, frames: int) -> torch.Tensor:
    """Delay by ``frames`` (frame f shows frame f - frames); zeros come in, what runs off the end is dropped."""
    if frames == 0:
        return x
    out = torch.zeros_like(x)
    n = x.shape[-3]
    if abs(frames) < n:
        if frames > 0:
            out[..., frames:, :, :] = x[..., : n - frames, :, :]
        else:
            out[..., : n + frames, :, :] = x[..., -frames:, :, :]
    return out


def freeze(x: torch.Tensor, frame: int = 0) -> torch.Tensor:
    """Every frame shows frame ``frame`` (negative counts from the end)."""
    n = x.shape[-3]
    if not -n <= frame < n:
        raise IndexError(f"frame {frame} does not exist: the latent grid has {n} frames (0-{n - 1})")
    return x[..., frame : frame + 1 if frame != -1 else None, :, :].expand_as(x).clone()


MAP_TRANSFORMS: dict[str, Callable[..., torch.Tensor]] = {
    "translate": translate, "rotate": rotate, "scale": scale, "flip": flip, "blur": blur, "sharpen": sharpen,
    "mask": mask, "invert": invert, "threshold": threshold, "reverse": reverse, "shift": shift, "freeze": freeze,
}


def transform(x: torch.Tensor, op: str, **params) -> torch.Tensor:
    """Apply the map transform ``op`` with its parameters to maps shaped (..., F, Y, X)."""
    return MAP_TRANSFORMS[op](x, **params)
