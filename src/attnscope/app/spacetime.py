"""Where a probed point attends in space-time: its self-attention row (mean over heads) as a strip of heatmaps,
one per latent frame, for runs captured with probe points (``attnscope generate --probe F,Y,X``).

A click names a token (:func:`attnscope.app.probe.token_at`); the row shown is that of the probed point nearest
it, when one is within :data:`REACH` tokens in frame, row and column, since a run stores rows for a few points
only. All panels share one colour scale (0 to the row's maximum), so frames compare: a row sums to one over the
whole video, and how it splits between frames is the point's temporal reach.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..errors import SelectionError
from ..render.colors import colorbar_image, colorize, font_size, paste, text_image
from ..render.geometry import Geometry, fit, geometry
from ..render.upscale import latent_frame_index, upscale_space
from ..store import Run
from .region import draw_box

REACH = 1  # tokens (in frame, y and x) between a click and the probed point whose row it shows
PANEL_SIDE = 160  # px, the long side of one frame's heatmap
COLUMNS = 7  # panels per row of the strip (Wan2.1 at 81 frames has 21 latent frames: three rows)
GAP = 4  # px between panels
BACKGROUND = 16
MEAN = "mean"
POINT_COLOUR = np.array([0, 190, 255], np.uint8)  # the probed points on the picture (the click's box is green)

Token = tuple[int, int, int]


def has_rows(run: Run) -> bool:
    return bool(run.probe_points) and run.probe is not None


def nearest_point(run: Run, token: Token, reach: int = REACH) -> int | None:
    """Index of the probed point nearest ``token`` (largest of the frame, row and column distances), if it is
    within ``reach``; None otherwise or when the run has no probe rows."""
    if not has_rows(run):
        return None
    distance = [max(abs(a - b) for a, b in zip(p, token, strict=True)) for p in run.probe_points]
    best = int(np.argmin(distance))
    return best if distance[best] <= reach else None


def mark_points(run: Run, image: np.ndarray, frame: int) -> np.ndarray:
    """``image`` (pixel frame ``frame``) with the cells of the probed points of its latent frame outlined, so
    the user sees where a click shows a row."""
    if not has_rows(run):
        return image
    geo = geometry(run)
    t = int(latent_frame_index(geo.frames, geo.latent[0], geo.temporal)[min(max(frame, 0), geo.frames - 1)])
    _, lh, lw = geo.latent
    for f, i, j in run.probe_points:
        if f == t:
            image = draw_box(image, (j / lw, i / lh), ((j + 1) / lw, (i + 1) / lh), POINT_COLOUR)
    return image


def pixel_frames(geo: Geometry, frame: int) -> tuple[int, int]:
    """The first and last pixel frame latent frame ``frame`` encodes."""
    shown = np.flatnonzero(latent_frame_index(geo.frames, geo.latent[0], geo.temporal) == frame)
    return (int(shown[0]), int(shown[-1])) if shown.size else (frame, frame)


def opening_frame(run: Run) -> int:
    """The pixel frame the Probe tab opens at: the middle one, unless no probed point lies on it; then the last
    pixel frame of the first probed point's latent frame, so a probed run opens with a point outlined to click."""
    geo = geometry(run)
    if not has_rows(run):
        return geo.middle
    middle = int(latent_frame_index(geo.frames, geo.latent[0], geo.temporal)[geo.middle])
    if any(f == middle for f, _, _ in run.probe_points):
        return geo.middle
    return pixel_frames(geo, run.probe_points[0][0])[1]


def token_pixel(geo: Geometry, token: Token) -> tuple[int, int, int]:
    """(first pixel frame, y, x) of the token's centre: the pixel the Generate tab's probe box takes for it."""
    t, i, j = token
    y = int((i + 0.5) * geo.height / geo.latent[1])
    x = int((j + 0.5) * geo.width / geo.latent[2])
    return pixel_frames(geo, t)[0], y, x


def describe(run: Run, token: Token) -> str:
    """A token in words: its grid position, its pixel centre and the pixel frames it covers."""
    geo = geometry(run)
    lo, hi = pixel_frames(geo, token[0])
    _, y, x = token_pixel(geo, token)
    frames = f"frame {lo}" if lo == hi else f"frames {lo}–{hi}"
    return f"token {tuple(token)} (pixel ({x}, {y}), {frames})"


def choices(run: Run) -> tuple[list[int], list[int | str]]:
    """What the step and layer pickers offer: the finished steps, and "mean" then the captured layers."""
    return list(run.steps_done), [MEAN, *run.meta["layers"]]


def row_at(run: Run, point: int, step: int, layer: int | str) -> xr.DataArray:
    """The point's row (frame, y, x) float32 at ``step`` and ``layer`` ("mean": over the captured layers)."""
    if layer == MEAN:
        return run.probe_rows(point=point, step=step).mean("layer")
    return run.probe_rows(point=point, step=step, layer=int(layer))


def strip(run: Run, row: xr.DataArray, token: Token, label: str, cmap: str = "inferno") -> np.ndarray:
    """uint8 [H, W, 3]: one heatmap per latent frame (upscaled bilinearly, as the renders do), the probed token
    boxed in its own frame, the pixel frames each panel covers, and one colour bar for all panels."""
    geo = geometry(run)
    ph, pw = fit(geo.height, geo.width, PANEL_SIDE)
    values = np.asarray(row.values, np.float32)
    peak = float(np.nanmax(values)) if np.isfinite(values).any() else 0.0
    scaled = values / peak if peak > 0 else np.zeros_like(values)
    panels = colorize(upscale_space(scaled, (ph, pw), device="cpu").numpy(), cmap)  # [F', ph, pw, 3]
    size = max(11, font_size(ph, pw))  # the renders' size for a whole video is too small on a 160 px panel
    n = len(panels)
    columns = min(n, COLUMNS)
    rows = -(-n // columns)
    bar = colorbar_image(0.0, peak, cmap, label, min(columns * (pw + GAP) - GAP, 360), size)
    height = rows * (ph + GAP) + bar.height + GAP
    canvas = np.full((height, columns * (pw + GAP) - GAP, 3), BACKGROUND, np.uint8)
    t, i, j = token
    _, lh, lw = geo.latent
    for f, panel in enumerate(panels):
        if f == t:
            panel = draw_box(panel, (j / lw, i / lh), ((j + 1) / lw, (i + 1) / lh))
        lo, hi = pixel_frames(geo, f)
        panel = paste(panel[None].copy(), text_image(f"{lo}" if lo == hi else f"{lo}-{hi}", size), "top-left")[0]
        y0, x0 = (f // columns) * (ph + GAP), (f % columns) * (pw + GAP)
        canvas[y0:y0 + ph, x0:x0 + pw] = panel
    return paste(canvas[None], bar, "bottom-left", margin=0)[0]


def view(run: Run, token: Token, step: int | None, layer: int | str | None) -> tuple[np.ndarray | None, str]:
    """(strip or None, note in Markdown) for a click on ``token``: the nearest probed point's row, else why
    there is none and what to do."""
    if not has_rows(run):
        pixel = ", ".join(map(str, token_pixel(geometry(run), token)))
        return None, (f"This run has no probe rows, so where {describe(run, token)} attends in space-time is not "
                      f"stored. Capture it by generating again with `{pixel}` in the Generate tab's probe points "
                      f"box (video pixels: frame, y, x), `attnscope generate ... --probe "
                      f"{','.join(map(str, token))}` (latent token grid: frame, y, x; repeatable) or "
                      "`attnscope.trace(..., probe_points=[...])`.")
    point = nearest_point(run, token)
    probed = ", ".join(describe(run, p) for p in run.probe_points)
    if point is None:
        return None, (f"No probed point within {REACH} token of {describe(run, token)}; this run probed {probed}. "
                      "Click near one of those to see where it attends.")
    steps, _ = choices(run)
    if not steps:
        raise SelectionError("this run has no finished step yet; probe it once a step is written")
    step = steps[-1] if step is None or int(step) not in steps else int(step)
    layer = MEAN if layer in (None, MEAN) else int(layer)
    where = describe(run, run.probe_points[point])
    layers = "mean over layers" if layer == MEAN else f"layer {layer}"
    image = strip(run, row_at(run, point, step, layer), run.probe_points[point], "self-attention, head mean")
    return image, (f"**Where {where} attends** at step {step}, {layers}: its self-attention row (mean over "
                   "heads, summing to one over the whole video), one panel per latent frame (the pixel frames it "
                   "covers in the corner), one colour scale; the box is the point itself.")
