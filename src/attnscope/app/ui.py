"""The viewer's layout and wiring (Gradio 6 Blocks): Runs, Generate (with the live view), Explore, Timeline,
Segmentation, Grid, Charts, Compare, Bend, Probe. The studio tabs (Generate, Bend, Probe) live in their own
modules and share the run list, the Runs cards and Compare's baseline list with the rest.

Explore redraws on every control change and draws only the current frame, so it stays interactive on large runs;
everything that draws whole videos or many chunks (overlay video, timeline, grid, charts) waits for a button.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from ..render import NORM_MODES
from ..render.selection import ESTIMATORS
from ..render.view import SEGMENT_THRESHOLD
from .bend_tab import build_bend_tab
from .gen_tab import Shared, build_generate_tab
from .handlers import COLORMAPS, Handlers
from .probe_tab import build_probe_tab
from .session import Viewer
from .studio import Studio

LIVE = dict(trigger_mode="always_last", show_progress="hidden")


def _axis_controls(axis: str, mean: bool, example: str) -> dict[str, gr.components.Component]:
    """Slider, "mean over" switch and range box for one of step / layer / head."""
    with gr.Group():
        slider = gr.Slider(0, 1, value=0, step=1, label=axis, elem_id=axis)
        with gr.Row():
            use_mean = gr.Checkbox(mean, label=f"mean over {axis}s", elem_id=f"{axis}_mean")
            span = gr.Textbox("", label=f"{axis} range", placeholder=f"all, or e.g. {example}", max_lines=1)
    return {axis: slider, f"{axis}_mean": use_mean, f"{axis}_range": span}


def _explore_controls() -> dict[str, gr.components.Component]:
    c: dict[str, gr.components.Component] = {}
    c["word"] = gr.Dropdown(label="word", choices=[], elem_id="word", allow_custom_value=True)
    for axis, mean, example in (("step", False, "10-30"), ("layer", False, "0-9"), ("head", True, "0,3")):
        c.update(_axis_controls(axis, mean, example))
    with gr.Row():
        c["cmap"] = gr.Dropdown(list(COLORMAPS), value="inferno", label="colormap", elem_id="cmap")
        c["norm"] = gr.Dropdown(list(NORM_MODES), value="global", label="normalization", elem_id="norm")
    c["alpha"] = gr.Slider(0, 1, value=0.6, step=0.05, label="opacity", elem_id="alpha")
    c["frame"] = gr.Slider(0, 1, value=0, step=1, label="frame", elem_id="frame")
    with gr.Row():
        c["estimator"] = gr.Radio(list(ESTIMATORS), value="raw", label="estimator",
                                  info="renorm divides by the mass on real prompt tokens (removes the padding sink); "
                                  "value-norm is the size of the word's contribution to the attention output, "
                                  "value-proj its length along that output (runs made with --value-norm); self-prop the map "
                                  "spread through the block's self-attention (runs made with --self-prop)")
        c["colorbar"] = gr.Checkbox(True, label="colour bar")
    return c


def build_app(runs_dir: str | Path, viewer: Viewer | None = None, studio: Studio | None = None) -> gr.Blocks:
    """The viewer for the runs under ``runs_dir`` (launch it with ``attnscope.app.server.serve``); ``studio``
    is the server's generation queue (one is made over the runs folder when not given)."""
    viewer = viewer or Viewer(runs_dir)
    studio = studio or Studio(viewer.root)
    h = Handlers(viewer)
    # delete_cache: rendered videos pile up in Gradio's cache; drop those older than a day, checked hourly
    with gr.Blocks(title="attnscope viewer", analytics_enabled=False, delete_cache=(3600, 86400)) as demo:
        gr.Markdown(f"### attnscope viewer · `{viewer.root}`")
        with gr.Row():
            # choices come from Refresh (on page load too); custom values are allowed so API clients can name a
            # run directly: every name is checked to stay inside the runs folder anyway
            run = gr.Dropdown(label="run", choices=[], scale=4, elem_id="run", allow_custom_value=True)
            refresh = gr.Button("Refresh", scale=1, elem_id="refresh")
        info = gr.Markdown()
        status = gr.HTML(elem_id="status")
        with gr.Tabs():
            with gr.Tab("Runs", id="runs"):
                cards = gr.HTML(elem_id="cards")
            wire_generate = build_generate_tab(studio, viewer, h)
            with gr.Tab("Explore", id="explore"), gr.Row():
                with gr.Column(scale=1, min_width=300):
                    ctl = _explore_controls()
                with gr.Column(scale=2):
                    still = gr.Image(label="overlay (current frame)", type="numpy", format="jpeg",
                                     interactive=False, elem_id="still", height=460)
                    caption = gr.Markdown(elem_id="caption")
                    with gr.Row():
                        render_btn = gr.Button("Render overlay video", elem_id="render_video")
                        matte_btn = gr.Button("Matte for compositing (grey MP4)", elem_id="matte")
                    matte_file = gr.File(label="matte: the map alone, the run's frames and size", interactive=False,
                                         elem_id="matte_file")
                    with gr.Row():
                        overlay = gr.Video(label="overlay video", interactive=False, autoplay=True, loop=True,
                                           height=260)
                        original = gr.Video(label="generated video", interactive=False, loop=True, height=260)
            with gr.Tab("Timeline", id="timeline"):
                gr.Markdown("The word's map at every denoising step (beside the model's x0 estimate when the run "
                            "stored previews), at the Explore tab's layer, head and frame.")
                timeline_btn = gr.Button("Render timeline")
                timeline = gr.Video(label="timeline", interactive=False, autoplay=True, loop=True)
            with gr.Tab("Segmentation", id="segmentation"):
                threshold = gr.Slider(0, 1, value=SEGMENT_THRESHOLD, step=0.05, label="clear below (normalized)",
                                      info="a run of a measured model opens at the cut its eval chose")
                seg_btn = gr.Button("Segment current frame")
                seg = gr.Image(label="which word owns each pixel", type="numpy", interactive=False)
            with gr.Tab("Grid", id="grid"):
                grid_btn = gr.Button("Draw layers × heads")
                grid = gr.Image(label="layers × heads", type="pil", interactive=False)
            with gr.Tab("Charts", id="charts"):
                charts_btn = gr.Button("Draw charts")
                mass = gr.Plot(label="attention mass over steps")
                entropy = gr.Plot(label="concentration per layer × head")
            with gr.Tab("Compare", id="compare"):
                gr.Markdown("A bent run (pick it above) beside its baseline, same controls, one frame slider.")
                baseline = gr.Dropdown(label="baseline", choices=[], allow_custom_value=True)
                cmp_frame = gr.Slider(0, 1, value=0, step=1, label="frame (both sides)", elem_id="cmp_frame")
                cmp_status = gr.HTML(elem_id="cmp_status")
                with gr.Row():
                    bent_img = gr.Image(label="bent", type="numpy", interactive=False)
                    base_img = gr.Image(label="baseline", type="numpy", interactive=False)
                cmp_btn = gr.Button("Render side-by-side video (baseline | bent)")
                cmp_video = gr.Video(label="baseline | bent", interactive=False, autoplay=True, loop=True)
            wire_bend = build_bend_tab(studio, viewer, h)
            wire_probe = build_probe_tab(viewer)
            with gr.Tab("Run info", id="meta"):
                meta = gr.HTML()

        inputs = list(ctl.values())
        refresh.click(h.refresh, [run], [cards, run, baseline], api_name="refresh")
        demo.load(h.refresh, [run], [cards, run, baseline], api_name=False)
        opened = run.change(h.open, [run], [ctl["word"], ctl["step"], ctl["layer"], ctl["head"], ctl["frame"],
                                            cmp_frame, original, info, meta, baseline, ctl["step_mean"],
                                            ctl["step_range"], ctl["layer_mean"], ctl["layer_range"],
                                            ctl["estimator"], ctl["norm"], threshold, status], api_name="open")
        opened.then(h.live_still, [run, *inputs], [still, caption, status], **LIVE, api_name=False)
        for comp in inputs:
            comp.change(h.live_still, [run, *inputs], [still, caption, status], **LIVE,
                        api_name="still" if comp is ctl["word"] else False)
        render_btn.click(h.overlay_video, [run, *inputs], [overlay, status], api_name="overlay_video")
        matte_btn.click(h.matte, [run, *inputs], [matte_file, status], api_name="matte")
        timeline_btn.click(h.timeline, [run, *inputs], [timeline, status], api_name="timeline")
        seg_btn.click(h.segmentation, [run, threshold, *inputs], [seg, status], api_name="segmentation")
        grid_btn.click(h.grid, [run, *inputs], [grid, status], api_name="grid")
        charts_btn.click(h.charts, [run, *inputs], [mass, entropy, status], api_name="charts")
        compared = dict(fn=h.compare, inputs=[run, baseline, cmp_frame, *inputs],
                        outputs=[bent_img, base_img, cmp_status], **LIVE)
        cmp_frame.change(**compared, api_name="compare")
        baseline.change(**compared, api_name=False)
        shared = Shared(run=run, cards=cards, baseline=baseline)
        for wire in (wire_generate, wire_bend, wire_probe):
            wire(shared)
        cmp_btn.click(h.compare_video, [run, baseline, *inputs], [cmp_video, cmp_status], api_name="compare_video")
    return demo
