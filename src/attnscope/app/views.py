"""Timeline, segmentation and grid views: thin calls into ``attnscope.render`` with the Explore selection."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import SelectionError
from ..render import grid_image, segmentation_frames, timeline_frames
from ..render.geometry import geometry
from ..video import write_mp4
from .explore import Controls, frame_count, specs
from .session import Viewer


def timeline_video(viewer: Viewer, rel: str, c: Controls) -> Path:
    """The word's map at every captured step (beside the x0 previews when the run has them), as an MP4.

    Steps are the time axis here, so the step control's own choice is ignored: it uses every finished step (or
    the step range when "mean" is ticked), at the chosen layers and heads and the current frame.
    """
    run = viewer.run(rel)
    _, layer, head = specs(run, c)
    steps = (c.step_range.strip() or "all") if c.step_mean else "all"
    frame = min(c.frame, geometry(run).frames - 1)
    frames = timeline_frames(run, c.word, step=steps, layer=layer, head=head, estimator=c.estimator, norm=c.norm,
                             cmap=c.cmap, frame=frame, colorbar=c.colorbar)
    return write_mp4(viewer.new_file(".mp4"), frames, fps=geometry(run).fps)


def segmentation_still(viewer: Viewer, rel: str, c: Controls, words: Sequence[str] | None = None,
                       threshold: float = 0.3) -> np.ndarray:
    """Each pixel coloured by the word that attends it most (clear below ``threshold``): uint8 [H, W, 3]."""
    run = viewer.run(rel)
    words = list(words) if words else run.words
    if not words:
        raise SelectionError("this run captured no words; nothing to segment")
    step, layer, head = specs(run, c)
    total = frame_count(viewer, run)
    frame = min(max(c.frame, 0), total - 1)
    return segmentation_frames(run, words, threshold=threshold, alpha=c.alpha, step=step, layer=layer, head=head,
                               estimator=c.estimator, norm=c.norm, frames=[frame], video=viewer.video(run),
                               legend=c.colorbar)[0]


def grid_sheet(viewer: Viewer, rel: str, c: Controls) -> Image.Image:
    """Layers x heads for the word at the chosen steps and the current frame: one labelled contact sheet.

    Layers and heads are the sheet's axes, so their sliders are ignored; the step choice applies.
    """
    run = viewer.run(rel)
    step, _, _ = specs(run, c)
    frame = min(max(c.frame, 0), geometry(run).frames - 1)
    return grid_image(run, c.word, step=step, layer="all", head="all", estimator=c.estimator, norm=c.norm,
                      cmap=c.cmap, frame=frame)
