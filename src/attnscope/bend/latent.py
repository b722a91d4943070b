"""Moving an object's hidden states with its maps: ``translate`` with ``latent: true``.

An attention translate says "draw the object there", but where the early latent holds no object the model may
draw it nowhere (docs/sections/bend.md). With ``latent: true`` the block whose cross-attention was bent also moves
what it computed for the object: its output inside the target's map (relative to the map's peak, per frame) is
cut out, the hole filled with the frame's mean background, and the cut pasted at the moved place.
"""

from __future__ import annotations

import torch

from . import maps
from .reweight import over_peak

__all__ = ["move_region", "region_of"]


def region_of(word: torch.Tensor, frames: int) -> torch.Tensor:
    """The target's region (B, F, Y*X) in [0, 1] from its columns ``word`` (B, h, S, T): the head mean of its
    tokens' summed probabilities over that map's peak in each frame."""
    return over_peak(word.sum(-1).mean(1), frames)


def move_region(hidden: torch.Tensor, region: torch.Tensor, dx: float, dy: float) -> torch.Tensor:
    """hidden (B, F, Y, X, C) with the part inside ``region`` (B, F, Y, X) moved by dx, dy (fractions of the
    grid, as :func:`attnscope.bend.maps.translate`); the place it left takes the frame's mean outside the region."""
    h = hidden.float()
    w = region.to(h.dtype).unsqueeze(-1)  # (B, F, Y, X, 1)
    outside = 1.0 - w
    background = (h * outside).sum((2, 3), keepdim=True) / outside.sum((2, 3), keepdim=True).clamp_min(1e-6)
    cut = h * outside + background * w
    pasted = maps.translate((h * w).movedim(-1, 1), dx, dy).movedim(1, -1)  # the object's part, moved
    arrived = maps.translate(region.to(h.dtype), dx, dy).unsqueeze(-1)
    return (cut * (1.0 - arrived) + pasted).to(hidden.dtype)
