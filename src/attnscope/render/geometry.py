"""The pixel geometry of a run (frames, size, fps, VAE factors), from meta.json with Wan's defaults as fallback."""

from __future__ import annotations

from dataclasses import dataclass

from ..store import Run


@dataclass(frozen=True)
class Geometry:
    frames: int  # pixel frames T
    height: int
    width: int
    fps: float
    temporal: int  # VAE temporal factor (4 for Wan)
    latent: tuple[int, int, int]  # token grid (F', H', W')

    @property
    def middle(self) -> int:
        """The middle pixel frame, the default still."""
        return self.frames // 2


def geometry(run: Run) -> Geometry:
    meta = run.meta
    grid = meta["grid"]
    latent = (int(grid["frames"]), int(grid["height"]), int(grid["width"]))
    temporal = int(meta.get("vae", {}).get("temporal", 4))
    spatial = int(meta.get("vae", {}).get("spatial", 8))
    patch = meta.get("patch", [1, 2, 2])
    pixel = meta.get("pixel") or {}
    return Geometry(
        frames=int(pixel.get("frames") or temporal * (latent[0] - 1) + 1),
        height=int(pixel.get("height") or latent[1] * patch[1] * spatial),
        width=int(pixel.get("width") or latent[2] * patch[2] * spatial),
        fps=float(pixel.get("fps") or 16),
        temporal=temporal,
        latent=latent,
    )


def fit(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(height, width) scaled so the long side is ``long_side``, even numbers (H.264 needs them)."""
    scale = long_side / max(height, width)
    return max(2, round(height * scale / 2) * 2), max(2, round(width * scale / 2) * 2)
