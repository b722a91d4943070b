"""The Probe tab: click a point of the run's video (any frame) and read how much each captured word gets there
over the denoising steps (``probe``); "per layer" splits each word's line by layer. A run captured with probe
points (``--probe``) also shows where a probed point attends in space-time (``spacetime``), at the chosen step
and layer; the probed points are outlined on the picture."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr
import numpy as np

from ..render import heatmap_frames
from ..render.geometry import geometry
from . import probe, spacetime
from .gen_tab import QUIET, Shared
from .handlers import failure
from .region import draw_box
from .session import Viewer

SKIP_PROBE = 6  # outputs of a probe besides the status card: picture, point, chart, table, rows strip, rows note


class ProbeHandlers:
    def __init__(self, viewer: Viewer) -> None:
        self.viewer = viewer

    def picture(self, rel: str | None, frame: Any) -> np.ndarray:
        """The frame to click: the video's, else (a cancelled run has none) the first word's map; the probed
        points of that frame outlined."""
        run = self.viewer.run(rel)
        video = self.viewer.video(run)
        f = int(frame or 0)
        if video is not None:
            image = video[min(max(f, 0), len(video) - 1)]
        else:
            image = heatmap_frames(run, run.words[0], frames=[min(f, geometry(run).frames - 1)], colorbar=False)[0]
        return spacetime.mark_points(run, image, f)

    def fit(self, rel: str | None) -> tuple:
        """A new run: the frame slider over its frames, the frame to open at (the middle one, or one with a probed
        point), the step and layer pickers of its probe rows (hidden without them), and the chart cleared."""
        if not rel:
            return gr.skip(), None, None, None, "", None, "", gr.skip(), gr.skip(), ""
        try:
            run = self.viewer.run(rel)
            total, opening = geometry(run).frames, spacetime.opening_frame(run)
            slider = gr.Slider(0, max(total - 1, 1), value=opening, step=1, interactive=total > 1)
            steps, layers = spacetime.choices(run)
            shown = spacetime.has_rows(run)
            step = gr.Dropdown(choices=steps, value=steps[-1] if steps else None, visible=shown)
            layer = gr.Dropdown(choices=layers, value=spacetime.MEAN, visible=shown)
            note = "" if shown else ("This run has no probe rows (where a point attends in space-time); the "
                                     "Generate tab's probe points box (video pixels) or `attnscope generate ... "
                                     "--probe F,Y,X` (latent tokens) captures them.")
            return slider, self.picture(rel, opening), None, None, "", None, note, step, layer, ""
        except Exception as exc:  # one card; the tab waits for another run
            return (gr.skip(),) * 9 + (failure(exc, rel),)

    def frame(self, rel: str | None, frame: Any, point: tuple | None, per_layer: bool, step: Any,
              layer: Any) -> tuple:
        """Another frame (or the per-layer box): its picture, and the probe again when a point was probed (the
        token may differ)."""
        try:
            image = self.picture(rel, frame)
            if point is None:
                return (image, None) + (gr.skip(),) * (SKIP_PROBE - 2) + ("",)
            return self._probe(rel, image, int(frame or 0), point, per_layer, step, layer)
        except Exception as exc:  # one card
            return (gr.skip(),) * SKIP_PROBE + (failure(exc, rel),)

    def click(self, rel: str | None, frame: Any, per_layer: bool, step: Any, layer: Any,
              evt: gr.SelectData) -> tuple:
        try:
            image = self.picture(rel, frame)
            h, w = image.shape[:2]
            point = (evt.index[0] / w, evt.index[1] / h)
            return self._probe(rel, image, int(frame or 0), point, per_layer, step, layer)
        except Exception as exc:  # one card
            return (gr.skip(),) * SKIP_PROBE + (failure(exc, rel),)

    def rows(self, rel: str | None, frame: Any, point: tuple | None, step: Any, layer: Any) -> tuple:
        """Another step or layer: the space-time strip again (the word chart covers every step already)."""
        if point is None:
            return gr.skip(), gr.skip(), ""
        try:
            run = self.viewer.run(rel)
            return (*spacetime.view(run, self._token(rel, int(frame or 0), point), step, layer), "")
        except Exception as exc:  # one card
            return gr.skip(), gr.skip(), failure(exc, rel)

    def _token(self, rel: str, frame: int, point: tuple) -> tuple[int, int, int]:
        x, y = self._pixel(rel, point)
        return probe.token_at(self.viewer.run(rel), frame, x, y)

    def _pixel(self, rel: str, point: tuple) -> tuple[int, int]:
        geo = geometry(self.viewer.run(rel))
        return min(int(point[0] * geo.width), geo.width - 1), min(int(point[1] * geo.height), geo.height - 1)

    def _probe(self, rel: str, image: np.ndarray, frame: int, point: tuple, per_layer: bool, step: Any,
               layer: Any) -> tuple:
        """(marked picture, point, chart, table, rows strip, rows note, status) for a point given as fractions of
        the frame."""
        run = self.viewer.run(rel)
        x, y = self._pixel(rel, point)
        series = probe.point_series(run, frame, x, y, per_layer=bool(per_layer))
        where = f"pixel ({x}, {y}) of frame {frame}"
        marked = draw_box(image, (max(point[0] - 0.02, 0), max(point[1] - 0.02, 0)),
                          (min(point[0] + 0.02, 1), min(point[1] + 0.02, 1)))
        strip, note = spacetime.view(run, probe.token_at(run, frame, x, y), step, layer)
        return (marked, point, probe.figure(series, where), f"**{where}**\n\n{probe.table(series)}", strip, note,
                "")


def build_probe_tab(viewer: Viewer) -> Callable[[Shared], None]:
    """The Probe tab (call inside ``gr.Tabs``); returns the function that wires it to the shared components."""
    p = ProbeHandlers(viewer)
    with gr.Tab("Probe", id="probe"), gr.Row():
        with gr.Column(scale=1, min_width=330):
            gr.Markdown("Click a point of the video: each captured word's attention there, over the denoising "
                        "steps (mean over layers and heads); and, for a run made with `--probe`, where a probed "
                        "point (outlined in blue) attends in space-time.")
            frame = gr.Slider(0, 1, value=0, step=1, label="frame", elem_id="probe_frame")
            image = gr.Image(label="click a point", type="numpy", interactive=False, elem_id="probe_image")
            per_layer = gr.Checkbox(False, label="per layer", elem_id="probe_layers")
            with gr.Row():
                step = gr.Dropdown(label="step (space-time)", choices=[], elem_id="probe_rows_step")
                layer = gr.Dropdown(label="layer (space-time)", choices=[], elem_id="probe_rows_layer")
        with gr.Column(scale=1, min_width=330):
            chart = gr.Plot(label="each word at the point", show_label=False, elem_id="probe_chart")
            table = gr.Markdown(elem_id="probe_table")
            rows = gr.Image(label="where the point attends", show_label=False, type="numpy", interactive=False,
                            elem_id="probe_rows")
            note = gr.Markdown(elem_id="probe_rows_note")
            status = gr.HTML(elem_id="probe_status")

    def wire(shared: Shared) -> None:
        point = gr.State(None)
        probed = [image, point, chart, table, rows, note, status]
        shared.run.change(p.fit, [shared.run], [frame, image, point, chart, table, rows, note, step, layer, status],
                          api_name=False, **QUIET)
        frame.change(p.frame, [shared.run, frame, point, per_layer, step, layer], probed, api_name=False,
                     trigger_mode="always_last", **QUIET)
        per_layer.change(p.frame, [shared.run, frame, point, per_layer, step, layer], probed, api_name=False,
                         **QUIET)
        for picker in (step, layer):
            picker.change(p.rows, [shared.run, frame, point, step, layer], [rows, note, status], api_name=False,
                          **QUIET)
        image.select(p.click, [shared.run, frame, per_layer, step, layer], probed, api_name="probe")

    return wire
