"""Write renders to files: MP4 (H.264 at the run's fps) for moving kinds, PNG for stills and contact sheets,
and mattes for compositing (grayscale MP4, 16-bit PNG sequences, RGBA overlays; :mod:`attnscope.render.matte`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..errors import SelectionError
from ..store import Run, open_run
from ..video import write_mp4
from .frames import heatmap_frames, load_video_path, overlay_frames, segmentation_frames, timeline_frames
from .geometry import fit, geometry
from .grid import grid_image
from .matte import write_matte
from .selection import Spec
from .upscale import TIME_MODES
from .view import file_stem, resolve_view

KINDS = ("overlay", "heatmap", "timeline", "segmentation", "grid", "matte")
MULTI_WORD = ("segmentation", "grid")  # the kinds that show several words; the others show one
VIDEO_KINDS = ("overlay", "heatmap", "timeline", "segmentation")  # carry a colour bar (legend) unless told not to
STRIP = 6  # steps in a timeline still


def timeline_strip(steps: np.ndarray, panel_width: int, columns: int = STRIP) -> np.ndarray:
    """Evenly spaced steps side by side, each a column of (x0 estimate above map): uint8 [1, H', W', 3]."""
    chosen = np.unique(np.linspace(0, len(steps) - 1, min(columns, len(steps))).round().astype(int))
    panels = steps[chosen]  # [n, H, k·W, 3], k = 2 with previews
    k = panels.shape[2] // panel_width
    stacked = np.concatenate([panels[:, :, i * panel_width:(i + 1) * panel_width] for i in range(k)], axis=1)
    return np.concatenate(list(stacked), axis=1)[None]  # [1, k·H, n·W, 3]


def default_output(run: Run, words: Sequence[str], kind: str, rgba: bool = False) -> Path:
    """``RUN/renders/<words>_<kind>.mp4`` (``.png`` for grids; the folder ``<word>_rgba`` for RGBA mattes)."""
    if kind == "matte" and rgba:
        return run.path / "renders" / f"{file_stem(words)}_rgba"
    return run.path / "renders" / f"{file_stem(words)}_{kind}.{'png' if kind == 'grid' else 'mp4'}"


def _check_options(kind: str, time: str, colorbar: bool, rgba: bool) -> None:
    """Reject option combinations that would be silently ignored."""
    if kind not in KINDS:
        raise SelectionError(f"unknown --kind '{kind}'; choose one of {', '.join(KINDS)}")
    if time not in TIME_MODES:
        raise SelectionError(f"unknown --time '{time}'; choose one of {', '.join(TIME_MODES)}")
    if rgba and kind != "matte":
        raise SelectionError(f"--rgba writes RGBA PNG overlays of --kind matte, not of --kind {kind}; add "
                             "--kind matte")
    if not colorbar and kind == "grid":
        raise SelectionError(f"--no-colorbar is for the video kinds ({', '.join(VIDEO_KINDS)}; a matte never "
                             "has one); a grid keeps the colour bar its panels share")


def render(run: Run | str | Path, word: str | Sequence[str] | None = None, kind: str = "overlay", *,
           step: Spec = None, layer: Spec = None, head: Spec = "mean", out: str | Path | None = None, alpha: float = 0.6,
           cmap: str = "inferno", norm: str | None = None, clip: float | None = None, estimator: str | None = None,
           preset: str = "recommended", frames_in_steps: bool = False, threshold: float | None = None,
           frame: int | None = None, time: str = "hold", colorbar: bool = True, rgba: bool = False,
           progress: bool = False, device=None) -> Path:
    """Render ``kind`` for ``word`` and write it; returns the path written.

    ``step``, ``layer`` and ``estimator`` left as None come from ``preset``: ``recommended`` is the aggregation
    ``attnscope eval`` measured best for the run's model (see :mod:`attnscope.render.preset`), ``none`` the
    plain mean over everything. ``norm`` left as None is the preset's too (the toy model's: per frame, the
    normalization its maps were measured with), except for the timeline, which keeps one range over all its steps
    (``global``) so that a word's strength is comparable across the denoising. The segmentation's ``threshold``
    left as None is the preset's measured cut when its estimator and normalization are in use, else 0.3. The
    timeline shows every step unless ``step`` says otherwise.
    ``out`` ending in ``.png`` writes one frame (``frame``, default the middle one) instead of a video; for the
    timeline, a strip of up to six evenly spaced steps.
    Segmentation and grid accept several words; the other kinds take one word and reject more. ``word`` None
    shows the words the user marked or passed at capture, else the prompt's content words (the single-word kinds:
    the first of them); see :func:`attnscope.render.view.resolve_view`, the resolution the viewer and
    ``attnscope export`` share.
    ``colorbar=False`` leaves the colour bar (the segmentation's legend and caption) off the video kinds.
    ``kind="matte"`` writes the view's map alone for compositing (see :func:`attnscope.render.matte.write_matte`):
    ``out`` ``.mp4`` (default) a grayscale video, a folder a 16-bit PNG sequence, ``.png`` one 16-bit frame;
    ``rgba`` RGBA PNG overlays (the colormap, the map as alpha) instead.
    """
    run = run if isinstance(run, Run) else open_run(run)
    _check_options(kind, time, colorbar, rgba)
    if word is not None and not isinstance(word, str) and len(word) > 1 and kind not in MULTI_WORD:
        raise SelectionError(f"--kind {kind} shows one word, got {len(word)}; use --kind segmentation or grid "
                             "to compare words")
    view = resolve_view(run, word, step, layer, head, estimator, norm, preset, threshold, kind)  # checks input
    words = list(view.words) if kind in MULTI_WORD else [view.word]
    step, layer, head, estimator, norm, threshold = (view.step, view.layer, view.head, view.estimator, view.norm,
                                                     view.threshold)
    path = Path(out) if out is not None else default_output(run, words, kind, rgba)
    if kind == "matte":
        return write_matte(run, view, path, as_rgba=rgba, cmap=cmap, clip=clip, time=time, frame=frame)
    still = path.suffix.lower() == ".png"
    if kind == "grid" and not still:
        raise SelectionError(f"--kind grid writes a PNG contact sheet; give -o with .png, not {path.name}")
    if path.suffix.lower() not in (".png", ".mp4"):
        raise SelectionError(f"output must end in .mp4 or .png, got {path.name}")
    if kind == "overlay":
        load_video_path(run, kind)
    sel = dict(step=step, layer=layer, head=head, estimator=estimator, norm=norm, clip=clip, device=device)
    bar = dict(colorbar=colorbar)
    stages = tqdm(total=2, desc=f"render {kind}", unit="stage", disable=not progress, leave=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "grid":
        grid_image(run, words if len(words) > 1 else words[0], cmap=cmap, frame=frame, **sel).save(path)
        stages.close()
        return path
    geo = geometry(run)
    pick = [geo.middle if frame is None else frame] if still else None
    if kind == "heatmap":
        video = heatmap_frames(run, words[0], cmap=cmap, frames=pick, time=time, maps=view.map(run), **bar, **sel)
    elif kind == "overlay":
        video = overlay_frames(run, words[0], alpha=alpha, cmap=cmap, frames=pick, time=time, maps=view.map(run),
                               **bar, **sel)
    elif kind == "segmentation":
        video = segmentation_frames(run, words, threshold=threshold, alpha=alpha, frames=pick, time=time,
                                    legend=colorbar, **sel)
    elif still:  # one frame per step, laid out as a strip of up to STRIP steps
        video = timeline_strip(timeline_frames(run, words[0], cmap=cmap, frame=frame, step_seconds=0, **bar,
                                               **sel),
                               panel_width=fit(geo.height, geo.width, min(480, max(geo.height, geo.width)))[1])
    else:
        video = timeline_frames(run, words[0], cmap=cmap, frame=frame, frames_in_steps=frames_in_steps, **bar,
                                **sel)
    stages.update(1)
    stages.set_description(f"encode {len(video)} frames")
    if still:
        Image.fromarray(np.ascontiguousarray(video[0])).save(path)
    else:
        write_mp4(path, video, fps=geo.fps)
    stages.update(1)
    stages.close()
    return path
