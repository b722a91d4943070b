"""The Explore tab's work: turn the controls into a selection, draw one frame, or render the overlay video.

Every slider is a position into what the run has (captured steps, layers, heads), so runs that captured a subset
(``layers=[0, 5, 10]``) or are still being written work the same. A "mean" box swaps the slider for a range.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SelectionError
from ..render import heatmap_frames, overlay_frames
from ..render.geometry import geometry
from ..render.selection import describe
from ..store import Run
from ..video import write_mp4
from .session import Viewer


@dataclass(frozen=True)
class Controls:
    """Everything the Explore tab's controls say, in one value (positions are indices into the run's lists)."""

    word: str
    step: int = 0
    step_mean: bool = False
    step_range: str = ""
    layer: int = 0
    layer_mean: bool = False
    layer_range: str = ""
    head: int = 0
    head_mean: bool = True
    head_range: str = ""
    cmap: str = "inferno"
    norm: str = "global"
    alpha: float = 0.6
    frame: int = 0
    estimator: str = "raw"
    colorbar: bool = True

    def with_(self, **changes: Any) -> Controls:
        return replace(self, **changes)


def spec(position: int, mean: bool, span: str, available: Sequence[Any], dim: str) -> Any:
    """The ``render.select`` spec for one dim: a range (or everything) when averaging, else one coordinate."""
    if not available:
        raise SelectionError(f"this run has no {dim} to show yet (no step finished?)")
    if mean or list(available) == ["mean"]:
        return span.strip() or "mean"
    index = int(position)
    if not 0 <= index < len(available):
        raise SelectionError(f"{dim} position {index} is out of range; this run has {len(available)} {dim}s "
                             f"({describe(available)})")
    return available[index]


def specs(run: Run, c: Controls) -> tuple[Any, Any, Any]:
    """(step, layer, head) specs for ``render.select``."""
    return (spec(c.step, c.step_mean, c.step_range, run.steps_done, "step"),
            spec(c.layer, c.layer_mean, c.layer_range, run.meta["layers"], "layer"),
            spec(c.head, c.head_mean, c.head_range, run.meta["heads"], "head"))


def frame_count(viewer: Viewer, run: Run) -> int:
    """Pixel frames of what the Explore tab draws on: the video when there is one, else the run's geometry."""
    video = viewer.video(run)
    return len(video) if video is not None else geometry(run).frames


def caption(run: Run, c: Controls) -> str:
    step, layer, head = specs(run, c)
    return (f"{c.word} · step {step} · layer {layer} · head {head} · {c.norm} · {c.cmap} · "
            f"{'overlay' if run.video_path else 'heatmap (no video)'}")


def draw(viewer: Viewer, run: Run, c: Controls, frames: Sequence[int] | None, preview: bool = False) -> np.ndarray:
    """uint8 [T, H, W, 3]: the word's map over the video (heatmap alone when the run has no video); ``preview``
    draws ``Viewer.preview``'s approximate map instead of the exact selection."""
    step, layer, head = specs(run, c)
    pick = viewer.preview if preview else viewer.selection
    maps = pick(run, c.word, step, layer, head, c.estimator)
    video = viewer.video(run)
    common = dict(norm=c.norm, cmap=c.cmap, frames=frames, colorbar=c.colorbar, maps=maps)
    if video is None:
        return heatmap_frames(run, c.word, **common)
    return overlay_frames(run, c.word, alpha=c.alpha, video=video, **common)


def still(viewer: Viewer, rel: str, c: Controls, preview: bool = False) -> np.ndarray:
    """One frame (``c.frame``) of the overlay: uint8 [H, W, 3]. Reads only the chunks of the selection (of the
    preview's few slabs with ``preview``)."""
    run = viewer.run(rel)
    total = frame_count(viewer, run)
    if not 0 <= c.frame < total:
        raise SelectionError(f"frame {c.frame} is out of range; this video has frames 0-{total - 1}")
    return draw(viewer, run, c, [c.frame], preview=preview)[0]


def slow_slabs(viewer: Viewer, run: Run, c: Controls) -> int:
    """Slabs the exact picture still has to read when a preview should come first (see ``Viewer.preview``)."""
    return viewer.slow_slabs(run, c.word, *specs(run, c), c.estimator)


def overlay_video(viewer: Viewer, rel: str, c: Controls) -> Path:
    """The whole overlay as an H.264 file in the viewer's output folder (on demand: it draws every frame)."""
    run = viewer.run(rel)
    frames = draw(viewer, run, c, None)
    return write_mp4(viewer.new_file(".mp4"), frames, fps=geometry(run).fps)


def matte_video(viewer: Viewer, rel: str, c: Controls) -> Path:
    """The word's map alone as a grayscale H.264 matte for compositing (no colour bar, the run's frame count,
    size and fps), for the Explore tab's current selection and normalization."""
    from ..render.matte import matte_frames, write_matte_mp4

    run = viewer.run(rel)
    step, layer, head = specs(run, c)
    maps = viewer.selection(run, c.word, step, layer, head, c.estimator)
    matte = matte_frames(run, c.word, norm=c.norm, maps=maps)
    return write_matte_mp4(viewer.new_file(".mp4"), matte, geometry(run).fps)

