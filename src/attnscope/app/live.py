"""The Live view: the map of the step just written, the model's x0 estimate at that step, and the strip of every
finished step's map, redrawn by a timer while a generation runs.

Why a strip: watching the denoising form the layout (the diffuse first steps, the object found around a third of
the way in) is the point of watching live; one picture at a time shows only the last state. Each finished step's
map is drawn once and kept, so a tick redraws only the new step.
"""

from __future__ import annotations

import html

import numpy as np
from PIL import Image

from ..errors import SelectionError
from ..render import heatmap_frames, select
from ..render.geometry import geometry
from ..store import Run
from .cache import LRU
from .session import Viewer
from .studio import CANCELLED, DONE, FAILED, QUEUED, RUNNING, Job

STRIP_SIDE = 96  # px per step in the strip
_tiles: LRU[np.ndarray] = LRU(512)


def step_map(run: Run, word: str, step: int, side: int | None = None) -> np.ndarray:
    """The word's map at one finished step (mean over every layer and head), middle frame, own normalization:
    uint8 [H, W, 3]; ``side`` draws it that many pixels square (the strip)."""
    if word not in run.words:
        raise SelectionError(f"{word!r} is not captured in this run; its words: {', '.join(run.words)}")
    geo = geometry(run)
    maps = select(run, word, step, "mean", "mean")
    size = (side, side) if side else None
    return heatmap_frames(run, word, maps=maps, frames=[geo.middle], norm="frame", colorbar=False, size=size)[0]


def preview_step(run: Run, step: int) -> int | None:
    """The newest step up to ``step`` whose x0 estimate is written; None when none is (or the run stores none).
    Why search back: a step's preview is written after its maps (one VAE decode later), and a preview not
    written yet reads as zeros, a black frame."""
    if run.previews is None:
        return None
    for s in range(min(step, run.previews.sizes["step"] - 1), -1, -1):
        if _middle(run, s).any():
            return s
    return None


def _middle(run: Run, step: int) -> np.ndarray:
    return np.asarray(run.previews.isel(step=step, frame=run.previews.sizes["frame"] // 2).values)


def preview_frame(run: Run, step: int) -> tuple[np.ndarray, int] | None:
    """The newest x0 estimate written up to ``step`` (middle frame, at the video's size: previews are stored
    downscaled) and its step; None when there is none yet."""
    s = preview_step(run, step)
    if s is None:
        return None
    geo = geometry(run)
    return np.asarray(Image.fromarray(_middle(run, s)).resize((geo.width, geo.height), Image.BILINEAR)), s


def strip(run: Run, word: str) -> np.ndarray:
    """Every finished step's map side by side, a gap between them: the timeline as it forms."""
    tiles = [_tiles.get((run.path, word, s), lambda s=s: step_map(run, word, s, STRIP_SIDE)) for s in run.steps_done]
    gap = np.full((STRIP_SIDE, 4, 3), 255, np.uint8)
    parts: list[np.ndarray] = []
    for tile in tiles:
        parts.extend([tile, gap])
    return np.concatenate(parts[:-1], axis=1)


def pictures(viewer: Viewer, rel: str, word: str | None) -> tuple[np.ndarray | None, np.ndarray | None,
                                                                      np.ndarray | None, str]:
    """(map, x0 preview, strip, caption) of the run's last finished step; Nones before the first step."""
    run = viewer.run(rel)
    done = run.steps_done
    if not done:
        return None, None, None, "waiting for the first step…"
    word = word if word in run.words else run.words[0]
    last = done[-1]
    tile = _tiles.get((run.path, word, last, "full"), lambda: step_map(run, word, last))
    preview = preview_frame(run, last)
    x0 = "" if preview is None else f" · x0 of step {preview[1] + 1}"
    return (tile, None if preview is None else preview[0], strip(run, word),
            f"**{word}** · step {last + 1} of {run.meta['num_steps']} · mean over layers and heads · middle "
            f"frame{x0}")


def progress_html(job: Job | None, position: int, steps_done: int, total: int | None) -> str:
    """The job's state line and progress bar (HTML)."""
    if job is None:
        return ""
    rel = html.escape(job.rel)
    if job.state == QUEUED:
        return (f'<div id="job_state" class="as-queued">queued · position {position} in the queue · '
                f"{rel}</div>")
    if job.state == CANCELLED and job.started is None:
        return '<div id="job_state" class="as-cancelled">cancelled before it started; nothing was written</div>'
    share = steps_done / total if total else 0.0
    label = {RUNNING: f"generating · step {steps_done} of {total or '?'}",
             DONE: f"done · {steps_done} steps", CANCELLED: f"cancelled · {steps_done} finished steps kept "
             "(incomplete run, still viewable)",
             FAILED: f"failed: {html.escape(job.error)}"}[job.state]
    return (f'<div id="job_state" class="as-{job.state}">{label} · {rel}</div>'
            f'<progress id="job_progress" max="1" value="{share:.3f}" style="width:100%"></progress>')
