"""The Probe tab: click a point of the run's video (any frame) and read how much each captured word gets there
over the denoising steps (``probe``); "per layer" splits each word's line by layer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr
import numpy as np

from ..render import heatmap_frames
from ..render.geometry import geometry
from . import probe
from .gen_tab import QUIET, Shared
from .handlers import failure
from .region import draw_box
from .session import Viewer


class ProbeHandlers:
    def __init__(self, viewer: Viewer) -> None:
        self.viewer = viewer

    def picture(self, rel: str | None, frame: Any) -> np.ndarray:
        """The frame to click: the video's, else (a cancelled run has none) the first word's map."""
        run = self.viewer.run(rel)
        video = self.viewer.video(run)
        f = int(frame or 0)
        if video is not None:
            return video[min(max(f, 0), len(video) - 1)]
        return heatmap_frames(run, run.words[0], frames=[min(f, geometry(run).frames - 1)], colorbar=False)[0]

    def fit(self, rel: str | None) -> tuple:
        """A new run: the frame slider over its frames, its middle frame, and the chart cleared."""
        if not rel:
            return gr.skip(), None, None, None, "", ""
        try:
            total = geometry(self.viewer.run(rel)).frames
            slider = gr.Slider(0, max(total - 1, 1), value=total // 2, step=1, interactive=total > 1)
            return slider, self.picture(rel, total // 2), None, None, "", ""
        except Exception as exc:  # one card; the tab waits for another run
            return gr.skip(), None, None, None, "", failure(exc, rel)

    def frame(self, rel: str | None, frame: Any, point: tuple | None, per_layer: bool) -> tuple:
        """Another frame: its picture, and the chart again when a point was probed (the token may differ)."""
        try:
            image = self.picture(rel, frame)
            if point is None:
                return image, None, gr.skip(), gr.skip(), ""
            return self._probe(rel, image, int(frame or 0), point, per_layer)
        except Exception as exc:  # one card
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), failure(exc, rel)

    def click(self, rel: str | None, frame: Any, per_layer: bool, evt: gr.SelectData) -> tuple:
        try:
            image = self.picture(rel, frame)
            h, w = image.shape[:2]
            point = (evt.index[0] / w, evt.index[1] / h)
            return self._probe(rel, image, int(frame or 0), point, per_layer)
        except Exception as exc:  # one card
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), failure(exc, rel)

    def _probe(self, rel: str, image: np.ndarray, frame: int, point: tuple, per_layer: bool) -> tuple:
        """(marked picture, point, chart, table, status) for a point given as fractions of the frame."""
        run = self.viewer.run(rel)
        geo = geometry(run)
        x, y = min(int(point[0] * geo.width), geo.width - 1), min(int(point[1] * geo.height), geo.height - 1)
        series = probe.point_series(run, frame, x, y, per_layer=bool(per_layer))
        where = f"pixel ({x}, {y}) of frame {frame}"
        marked = draw_box(image, (max(point[0] - 0.02, 0), max(point[1] - 0.02, 0)),
                          (min(point[0] + 0.02, 1), min(point[1] + 0.02, 1)))
        return marked, point, probe.figure(series, where), f"**{where}**\n\n{probe.table(series)}", ""


def build_probe_tab(viewer: Viewer) -> Callable[[Shared], None]:
    """The Probe tab (call inside ``gr.Tabs``); returns the function that wires it to the shared components."""
    p = ProbeHandlers(viewer)
    with gr.Tab("Probe", id="probe"), gr.Row():
        with gr.Column(scale=1, min_width=330):
            gr.Markdown("Click a point of the video: each captured word's attention there, over the denoising "
                        "steps (mean over layers and heads).")
            frame = gr.Slider(0, 1, value=0, step=1, label="frame", elem_id="probe_frame")
            image = gr.Image(label="click a point", type="numpy", interactive=False, elem_id="probe_image")
            per_layer = gr.Checkbox(False, label="per layer", elem_id="probe_layers")
        with gr.Column(scale=1, min_width=330):
            chart = gr.Plot(label="each word at the point", show_label=False, elem_id="probe_chart")
            table = gr.Markdown(elem_id="probe_table")
            status = gr.HTML(elem_id="probe_status")

    def wire(shared: Shared) -> None:
        point = gr.State(None)
        shared.run.change(p.fit, [shared.run], [frame, image, point, chart, table, status], api_name=False, **QUIET)
        frame.change(p.frame, [shared.run, frame, point, per_layer], [image, point, chart, table, status],
                     api_name=False, trigger_mode="always_last", **QUIET)
        per_layer.change(p.frame, [shared.run, frame, point, per_layer], [image, point, chart, table, status],
                         api_name=False, **QUIET)
        image.select(p.click, [shared.run, frame, per_layer], [image, point, chart, table, status],
                     api_name="probe")

    return wire
