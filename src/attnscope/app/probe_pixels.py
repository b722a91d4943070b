"""Probe points typed in the Generate tab: (frame, y, x) in video pixels, turned into latent tokens.

Why pixels: a user picks a point of the video they are about to see, not of the latent token grid (a token is
16 px square at Wan2.1, a latent frame covers 4 pixel frames). The video does not exist yet, so its geometry comes
from the pipeline (VAE factors, patch) and the form's size; each pixel then goes through the same
:func:`attnscope.app.probe.pixel_token` as a click in the Probe tab, so a click on that pixel of the finished
video finds the probed point.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..capture.spec import ProbePoint
from ..errors import SelectionError
from ..render.geometry import Geometry
from .probe import pixel_token

PixelPoint = tuple[int, int, int]  # (pixel frame, y, x) of the video
EXAMPLE = "8, 120, 64; 0, 40, 200"
FORMAT = (f"frame, y, x in video pixels, three whole numbers ≥ 0 per point and ';' between points, "
          f"e.g. \"{EXAMPLE}\"")


def _whole(item: str) -> bool:
    return item.isascii() and item.isdigit()


def parse_pixel_points(text: str | None) -> tuple[PixelPoint, ...]:
    """The box's points in the order typed (an empty box: none); a part that is not three whole numbers raises
    one :class:`SelectionError` quoting it, so the page can say which point to fix."""
    points: list[PixelPoint] = []
    for part in (text or "").split(";"):
        part = part.strip().removeprefix("(").removesuffix(")").strip()
        if not part:
            continue
        items = [item.strip() for item in part.split(",")]
        if len(items) != 3 or not all(_whole(item) for item in items):
            raise SelectionError(f"probe point {part!r}: expected {FORMAT}")
        frame, y, x = (int(item) for item in items)
        points.append((frame, y, x))
    return tuple(points)


def video_geometry(pipe, frames: int, height: int, width: int) -> Geometry:
    """The geometry of the video ``pipe`` will generate at this size, before it exists (a size the model cannot
    take raises the same ShapeError a generation would)."""
    from ..models import wan
    from ..models.info import model_info

    shape = wan.geometry(pipe)
    return Geometry(frames=frames, height=height, width=width, fps=float(model_info(pipe).fps),
                    temporal=shape.vae_temporal, latent=shape.grid(frames, height, width))


def pixel_tokens(geo: Geometry, points: Sequence[PixelPoint]) -> tuple[ProbePoint, ...]:
    """Each (frame, y, x) pixel's latent token, in order; a pixel outside the video raises a SelectionError that
    gives the video's bounds."""
    fix = (f"probe points are frame, y, x in video pixels, with frame < {geo.frames}, y < {geo.height} and "
           f"x < {geo.width}")
    return tuple(pixel_token(geo, frame, x, y, fix) for frame, y, x in points)
