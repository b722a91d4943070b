"""Gradio event handlers: UI values in, pictures or error cards out.

A handler never lets a damaged run take the app down: bad input (``AttnscopeError``) becomes an error card with
the message; anything else (a corrupt chunk, a half-written file) becomes an error card too, and its traceback
goes to the server log so it can still be fixed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import wraps
from typing import Any

import gradio as gr

from ..errors import AttnscopeError
from ..render.colors import CMAPS
from ..render.preset import NO_PRESET
from ..render.selection import Spec, describe
from ..render.view import SEGMENT_THRESHOLD, View, resolve_view
from ..store import Run
from . import charts, compare, explore, views
from .cards import error_card, meta_table, run_cards
from .explore import Controls
from .runs import list_runs
from .session import PREVIEW_SLABS, Viewer

log = logging.getLogger("attnscope.app")

CONTROL_NAMES = ("word", "step", "step_mean", "step_range", "layer", "layer_mean", "layer_range", "head",
                 "head_mean", "head_range", "cmap", "norm", "alpha", "frame", "estimator", "colorbar")
COLORMAPS = (*CMAPS, "plasma", "gray")
# after a preview, let the browser fetch and draw it before the exact map's chunk reads take the CPU (on a 2-core
# machine they otherwise delay the preview's arrival by ~60 ms)
PREVIEW_PAUSE_S = 0.1


def controls(values: tuple[Any, ...]) -> Controls:
    """The Explore controls' values, in ``CONTROL_NAMES`` order, as one ``Controls``."""
    raw = dict(zip(CONTROL_NAMES, values, strict=True))
    for name in ("step", "layer", "head", "frame"):
        raw[name] = int(raw[name] or 0)
    for name in ("step_range", "layer_range", "head_range"):
        raw[name] = raw[name] or ""
    raw["alpha"] = float(raw["alpha"])
    if not raw["word"]:
        raise AttnscopeError("no word selected; pick a run first (its words fill the word list)")
    return Controls(**raw)


def failure(exc: Exception, rel: str | None) -> str:
    """The error card for ``exc``; unexpected errors keep their traceback in the log."""
    if isinstance(exc, AttnscopeError):
        return error_card(str(exc))
    log.exception("viewer: cannot draw %s", rel)
    return error_card(f"{type(exc).__name__}: {exc}. The run may be damaged or still being written; the "
                      "server log has the details.", title=f"Cannot read {rel}")


def guarded(n_outputs: int) -> Callable:
    """Wrap a handler method returning ``n_outputs - 1`` values so it also returns a status card (empty on
    success); on error it returns empty outputs and the error card."""

    def wrap(fn: Callable) -> Callable:
        @wraps(fn)
        def run(self: Handlers, rel: str | None, *args: Any) -> tuple:
            try:
                return (*fn(self, rel, *args), "")
            except Exception as exc:  # shown to the user as a card (see module doc)
                return (*([None] * (n_outputs - 1)), failure(exc, rel))

        return run

    return wrap


def opening_view(run: Run) -> View | None:
    """The view a run opens at: :func:`resolve_view` with no arguments, the one ``attnscope render`` and
    ``attnscope export`` show by default, so the three agree. None for a run with no words to show."""
    return resolve_view(run) if run.words else None


def preset_controls(view: View | None) -> tuple[tuple[bool, str, bool, str, str, str, float], str]:
    """(step_mean, step_range, layer_mean, layer_range, estimator, norm, segmentation threshold) for a run's
    opening view (:func:`opening_view`), and a line saying where it comes from. A measured model's run opens at
    its recommended view; a model nobody measured at the plain mean over every step and layer, as ``attnscope
    render`` shows it (the head-mean summaries make that a few chunk reads)."""
    if view is None:
        return (False, "", False, "", "raw", "global", SEGMENT_THRESHOLD), ""
    if view.preset is NO_PRESET:
        return (True, "", True, "", view.estimator, view.norm, view.threshold), ""

    def span(value: Spec) -> str:
        return "" if isinstance(value, str) else describe(value)

    controls = (True, span(view.step), True, span(view.layer), view.estimator, view.norm, view.threshold)
    return controls, f" · recommended view: {view.preset.source}"


def _slider(count: int, value: int, label: str) -> gr.Slider:
    """A position slider over ``count`` items; with one item it stays at 0 (Gradio needs minimum < maximum)."""
    return gr.Slider(minimum=0, maximum=max(count - 1, 1), value=value, interactive=count > 1, label=label)


class Handlers:
    """The app's event functions over one ``Viewer``."""

    def __init__(self, viewer: Viewer) -> None:
        self.viewer = viewer

    # Runs
    def refresh(self, current: str | None) -> tuple[str, Any, Any]:
        summaries = list_runs(self.viewer.root)
        items = []
        for s in summaries:
            try:
                thumb = None if s.error else self.viewer.thumbnail(s.rel)
            except Exception as exc:  # a broken video still lists the run; the card says why
                log.exception("viewer: no thumbnail for %s", s.rel)
                s = replace(s, error=f"cannot read its video ({type(exc).__name__}: {exc})")
                thumb = None
            items.append((s, thumb))
        choices = [(s.label, s.rel) for s in summaries]
        rels = [s.rel for s in summaries]
        readable = [s.rel for s in summaries if not s.error]
        value = current if current in rels else next(iter(readable or rels), None)
        return (run_cards(items, str(self.viewer.root)), gr.Dropdown(choices=choices, value=value),
                gr.Dropdown(choices=rels))

    def open(self, rel: str | None) -> tuple:
        """Fit the controls to the chosen run: its words, steps, layers, heads, frames; its video and meta; and the
        recommended view (step and layer ranges, estimator) when the run's model has one. No run picked (an
        empty runs folder, before the first generation) is not an error: nothing changes."""
        if not rel:
            return (*([gr.skip()] * 17), "")
        try:
            run = self.viewer.run(rel)
            steps, layers, heads = run.steps_done, run.meta["layers"], run.meta["heads"]
            if not steps:
                raise AttnscopeError(f"{rel} has no finished step yet; wait for the capture and press Refresh")
            total = explore.frame_count(self.viewer, run)
            averaged = heads == ["mean"]
            baseline = compare.find_baseline(self.viewer, rel) if run.meta.get("bends") else None
            opening = opening_view(run)
            view, source = preset_controls(opening)
            word = opening.word if opening is not None else None
            if word is not None:
                self.viewer.prefetch(run, word)
            info = (f"**{run.meta.get('prompt', '')}** · steps {describe(steps)} of {run.meta['num_steps']} · "
                    f"layers {describe(layers)} · heads {describe(heads)}"
                    + ("" if run.complete else " · *incomplete run*") + source)
            return (
                gr.Dropdown(choices=run.words, value=word),
                _slider(len(steps), len(steps) - 1, f"step (of {describe(steps)})"),
                _slider(len(layers), len(layers) // 2, f"layer (position in {describe(layers)})"),
                _slider(1 if averaged else len(heads), 0,
                        "head (averaged at capture)" if averaged else f"head (of {describe(heads)})"),
                _slider(total, total // 2, "frame"),
                _slider(total, total // 2, "frame (both sides)"),
                str(run.video_path) if run.video_path else None,
                info, meta_table(run.meta), baseline, *view, "",
            )
        except Exception as exc:  # shown as a card; the controls keep their state
            return (*([gr.skip()] * 17), failure(exc, rel))

    # Explore
    def still(self, rel: str, *values: Any) -> tuple:
        """The current frame; before any run is open (no word yet) it leaves the status card alone."""
        if not values or not values[0]:
            return None, "", gr.skip()
        return self._still(rel, *values)

    def live_still(self, rel: str, *values: Any) -> Iterator[tuple]:
        """``still`` for the Explore tab: when the exact map needs many slabs read (a mean over one head across
        a long range), first a preview from a few of them, marked as such in the caption, then the exact map."""
        if values and values[0]:
            first = self._preview_still(rel, *values)
            if first[0] is not None:
                yield first
                time.sleep(PREVIEW_PAUSE_S)
        yield self.still(rel, *values)

    @guarded(3)
    def _preview_still(self, rel: str, *values: Any) -> tuple:
        c = controls(values)
        run = self.viewer.run(rel)
        slabs = explore.slow_slabs(self.viewer, run, c)
        if not slabs:
            return None, ""
        return (explore.still(self.viewer, rel, c, preview=True),
                f"{explore.caption(run, c)} · preview from {PREVIEW_SLABS} of {slabs} slabs; the exact map follows")

    @guarded(3)
    def _still(self, rel: str, *values: Any) -> tuple:
        c = controls(values)
        run = self.viewer.run(rel)
        return explore.still(self.viewer, rel, c), explore.caption(run, c)

    @guarded(2)
    def overlay_video(self, rel: str, *values: Any) -> tuple:
        return (str(explore.overlay_video(self.viewer, rel, controls(values))),)

    @guarded(2)
    def matte(self, rel: str, *values: Any) -> tuple:
        return (str(explore.matte_video(self.viewer, rel, controls(values))),)

    # Views
    @guarded(2)
    def timeline(self, rel: str, *values: Any) -> tuple:
        return (str(views.timeline_video(self.viewer, rel, controls(values))),)

    @guarded(2)
    def segmentation(self, rel: str, threshold: float, *values: Any) -> tuple:
        return (views.segmentation_still(self.viewer, rel, controls(values), threshold=float(threshold)),)

    @guarded(2)
    def grid(self, rel: str, *values: Any) -> tuple:
        return (views.grid_sheet(self.viewer, rel, controls(values)),)

    @guarded(3)
    def charts(self, rel: str, *values: Any) -> tuple:
        c = controls(values)
        return charts.mass_figure(self.viewer, rel, c), charts.entropy_figure(self.viewer, rel, c)

    # Compare
    @guarded(3)
    def compare(self, rel: str, base_rel: str | None, frame: int, *values: Any) -> tuple:
        c = controls(values).with_(frame=int(frame or 0))
        return compare.compare_stills(self.viewer, rel, base_rel, c)

    @guarded(2)
    def compare_video(self, rel: str, base_rel: str | None, *values: Any) -> tuple:
        return (str(compare.compare_video(self.viewer, rel, base_rel, controls(values))),)
