"""The Bend tab: build a recipe with a form (``bendform``), see it as YAML, download or load it, and Apply: the
run picked above is the baseline, the bent run is generated at its seed and settings, and the two videos are
shown with their difference, one frame slider for all three and one side-by-side video.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import gradio as gr
import numpy as np

from ..bend.recipe import BendRecipeError
from ..errors import AttnscopeError
from ..render.geometry import geometry
from ..video import write_mp4
from . import bendform as bf
from .cards import error_card
from .gen_tab import QUIET, TICK_S, Shared
from .handlers import Handlers, failure
from .live import progress_html
from .region import draw_box, region_of_strokes
from .session import Viewer
from .studio import DONE, Settings, Studio

PARAMS = bf.all_params()
DIFF_GAIN = 4  # |bent - baseline| is faint; amplified so small changes show


def baseline_settings(viewer: Viewer, rel: str) -> Settings:
    """The generation that made ``rel`` (its marked prompt, model, seed, steps, size, guidance, capture, and the
    probe points the Generate tab was given, so the bent run has the same rows to compare)."""
    run = viewer.run(rel)
    meta = run.meta
    if meta.get("bends"):
        raise AttnscopeError(f"{rel} is itself bent; pick its baseline (an unbent run) in the run list")
    studio = meta.get("studio") or {}
    model = meta.get("model")
    model_id = studio.get("model") or (model.get("id") if isinstance(model, dict) else model) or "toy"
    pixel, capture = meta.get("pixel") or {}, meta.get("capture") or {}
    marked = studio.get("prompt_marked")
    words = studio.get("words") if marked else [w for w in (capture.get("words") or []) if isinstance(w, str)]
    return Settings(prompt=marked or meta.get("prompt", ""), model=model_id, seed=int(meta.get("seed") or 0),
                    steps=int(meta["num_steps"]), frames=pixel.get("frames"), height=pixel.get("height"),
                    width=pixel.get("width"), guidance=meta.get("guidance_scale"),
                    self_prop=bool(capture.get("self_prop")), value_norm=bool(capture.get("value_norm")),
                    previews=False, words=tuple(words or ()),
                    probe=tuple(tuple(p) for p in studio.get("probe") or ()))


def _videos(viewer: Viewer, base: str, bent: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = viewer.video(viewer.run(base)), viewer.video(viewer.run(bent))
    if a is None or b is None:
        raise AttnscopeError("one of the runs has no video (cancelled?); apply the recipe again")
    n = min(len(a), len(b))
    if a.shape[1:] != b.shape[1:]:
        raise AttnscopeError(f"{base} and {bent} have different video sizes; they are not a bent/baseline pair")
    return a[:n], b[:n]


def difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|b - a| per pixel, amplified ``DIFF_GAIN`` times, uint8."""
    d = np.abs(b.astype(np.int16) - a.astype(np.int16)) * DIFF_GAIN
    return np.clip(d, 0, 255).astype(np.uint8)


class BendHandlers:
    def __init__(self, studio: Studio, viewer: Viewer, handlers: Handlers) -> None:
        self.studio, self.viewer, self.h = studio, viewer, handlers

    def pick_op(self, label: str) -> tuple:
        """Show the op's own controls (at their defaults) and the shared ones it uses."""
        target, op = bf.parse_op(label)
        own = {p.key: p for p in bf.op_params(target, op)}
        uses = bf.takes(target, op)
        updates = [gr.update(visible=p.key in own, value=bf.start_value(target, op, own[p.key]))
                   if p.key in own else gr.update(visible=False) for p in PARAMS]
        heads_label = "heads (required)" if uses["heads_required"] else "heads"
        return (gr.update(visible=uses["word"]), gr.update(visible=uses["word"]),
                gr.update(visible=uses["heads"], label=heads_label), gr.update(visible=uses["region"]), *updates)

    def add(self, recipe: list, label: str, word: str, as_object: bool, heads: str, layers: str, step_from: float,
            step_to: float, branch: str, *values: Any) -> tuple:
        try:
            bend = bf.build_bend(label, word, as_object, heads, layers, step_from, step_to, branch,
                                 dict(zip([p.key for p in PARAMS], values, strict=True)))
        except (AttnscopeError, ValueError) as exc:
            return gr.skip(), gr.skip(), gr.skip(), error_card(str(exc))
        return self._shown([*recipe, bend])

    def _shown(self, bends: list) -> tuple:
        """(recipe, YAML, download file, status) for a new recipe."""
        text = bf.to_yaml(bends)
        path = self.viewer.new_file(".yaml")
        path.write_text(text)
        return bends, text, gr.DownloadButton(value=str(path)), ""

    def clear(self) -> tuple:
        return self._shown([])

    def use_yaml(self, text: str) -> tuple:
        try:
            return self._shown(bf.from_yaml(text))
        except (AttnscopeError, ValueError) as exc:
            return gr.skip(), gr.skip(), gr.skip(), error_card(str(exc))

    def load(self, file: str | None) -> tuple:
        if not file:
            return gr.skip(), gr.skip(), gr.skip(), ""
        with open(file, encoding="utf-8") as f:
            return self.use_yaml(f.read())

    def fit(self, rel: str | None) -> tuple:
        """The run picked above becomes the baseline: its words for the word box, its middle frame for regions."""
        if not rel:
            return gr.skip(), None, None, None, ""
        try:
            run = self.viewer.run(rel)
            video = self.viewer.video(run)
            frame = video[len(video) // 2] if video is not None else None
            words = gr.Dropdown(choices=run.words, value=run.words[0] if run.words else None)
            return words, frame, frame, frame, ""
        except Exception as exc:  # a damaged run: one card, the form still works
            return gr.skip(), None, None, None, failure(exc, rel)

    def click_box(self, frame: np.ndarray | None, corner: list | None, evt: gr.SelectData) -> tuple:
        """Two clicks on the frame: the region's corners (normalized, as the mask op takes them)."""
        if frame is None:
            return (corner, gr.skip(), *[gr.skip()] * 4)
        h, w = frame.shape[:2]
        point = (evt.index[0] / w, evt.index[1] / h)
        if not corner:
            return [point], draw_box(frame, point, point), *[gr.skip()] * 4
        (xa, ya), (xb, yb) = corner[0], point
        box = (min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb))
        return None, draw_box(frame, box[:2], box[2:]), *[round(v, 3) for v in box]

    def brush(self, edited: dict | None) -> tuple:
        """The bounding box of the strokes painted on the frame."""
        box = region_of_strokes(edited)
        return tuple(gr.skip() for _ in range(4)) if box is None else tuple(round(v, 3) for v in box)

    def apply(self, rel: str | None, recipe: list) -> tuple:
        try:
            if not recipe:
                raise BendRecipeError("the recipe is empty: add a bend first (or load a YAML recipe)")
            s = baseline_settings(self.viewer, rel)
            job = self.studio.submit(s.with_(bends=tuple(recipe), baseline=rel))
        except Exception as exc:  # one card in the page
            return gr.skip(), failure(exc, rel), gr.skip(), gr.skip(), gr.skip()
        return job.id, "", progress_html(job, self.studio.position(job), 0, job.settings.steps), \
            gr.Timer(active=True), (None, rel)

    def tick(self, job_id: int | None, pair: tuple | None, current: str | None) -> tuple:
        """Poll the bent job; when it is done, draw the comparison and list the new run."""
        job = self.studio.job(job_id)
        skip = [gr.skip()] * 9  # pair, frame, the three stills, video, the three run lists
        if job is None:
            return (gr.skip(), gr.Timer(active=False), *skip)
        done = 0
        if (self.studio.root / job.rel / "meta.json").is_file():
            done = len(self.viewer.run(job.rel).steps_done)
        state = progress_html(job, self.studio.position(job), done, job.settings.steps)
        if not job.done:
            return (state, gr.Timer(active=True), *skip)
        if job.state != DONE:
            return (state, gr.Timer(active=False), *skip[:6], *self.h.refresh(current))
        base = pair[1] if pair else job.settings.baseline
        new_pair = (job.rel, base)
        try:
            stills = self.compare(new_pair, None)
            video = self.video(new_pair)
            total = len(_videos(self.viewer, base, job.rel)[0])
            slider = gr.Slider(0, max(total - 1, 1), value=total // 2, step=1)
        except Exception as exc:  # shown as the card; the runs still list
            return (failure(exc, job.rel), gr.Timer(active=False), *skip[:6], *self.h.refresh(current))
        return (state, gr.Timer(active=False), new_pair, slider, *stills, video, *self.h.refresh(current))

    def compare(self, pair: tuple | None, frame: Any) -> tuple:
        """(baseline, bent, difference) at one frame."""
        if not pair or not pair[0]:
            return gr.skip(), gr.skip(), gr.skip()
        a, b = _videos(self.viewer, pair[1], pair[0])
        f = len(a) // 2 if frame is None else min(max(int(frame), 0), len(a) - 1)
        return a[f], b[f], difference(a[f], b[f])

    def video(self, pair: tuple) -> str:
        a, b = _videos(self.viewer, pair[1], pair[0])
        both = np.concatenate([a, b, difference(a, b)], axis=2)
        fps = geometry(self.viewer.run(pair[0])).fps
        return str(write_mp4(self.viewer.new_file(".mp4"), both, fps=fps))


def _elem(key: str) -> str:
    return "bend_p_" + re.sub(r"[^a-z0-9]+", "_", key.lower()).strip("_")


FIRST_OP = ("attention", "translate")


def _control(p: bf.Param) -> gr.components.Component:
    """The control for ``p``, shown (at its start value) when it belongs to the op the form opens with."""
    own = {q.key: q for q in bf.op_params(*FIRST_OP)}
    value = bf.start_value(*FIRST_OP, own[p.key]) if p.key in own else None
    common = dict(label=p.name, visible=p.key in own, elem_id=_elem(p.key))
    if p.kind in ("slider", "int"):
        return gr.Slider(p.low, p.high, value=min(max(0, p.low), p.high) if value is None else value, step=p.step,
                         **common)
    if p.kind == "check":
        return gr.Checkbox(bool(value), **common)
    if p.kind == "choice":
        return gr.Dropdown(list(p.choices), value=p.choices[0] if value is None else value, **common)
    return gr.Textbox(value or "", max_lines=3, placeholder="YAML value", **common)


def build_bend_tab(studio: Studio, viewer: Viewer, handlers: Handlers) -> Callable[[Shared], None]:
    """The Bend tab (call inside ``gr.Tabs``); returns the function that wires it to the shared components."""
    b = BendHandlers(studio, viewer, handlers)
    with gr.Tab("Bend", id="bend"):
        gr.Markdown("Build a recipe for the run picked above (the baseline); **Apply** generates it bent at the "
                    "same seed and settings and shows baseline | bent | difference.")
        with gr.Row():
            with gr.Column(scale=1, min_width=330):
                op = gr.Dropdown(bf.OP_CHOICES, value=bf.op_label(*FIRST_OP), label="op",
                                 elem_id="bend_op")
                word = gr.Dropdown(label="word or phrase", choices=[], allow_custom_value=True, elem_id="bend_word")
                as_object = gr.Checkbox(False, label="as an object (with the end-of-sequence token)")
                heads = gr.Textbox("", label="heads", placeholder="all, or e.g. 0-3, 5", max_lines=1)
                with gr.Group():
                    controls = [_control(p) for p in PARAMS]
                layers = gr.Textbox("", label="layers", placeholder="all, or e.g. 0-3, 6", max_lines=1)
                with gr.Row():
                    step_from = gr.Slider(0, 1, value=0, step=0.05, label="from (fraction of the steps)")
                    step_to = gr.Slider(0, 1, value=1, step=0.05, label="to")
                branch = gr.Radio(bf.BRANCHES, value=bf.DEFAULT_BRANCH, label="guidance branch")
                with gr.Row():
                    add = gr.Button("Add bend", elem_id="bend_add")
                    clear = gr.Button("Clear recipe")
            with gr.Column(scale=1, min_width=330):
                with gr.Group(visible=False) as region:
                    box_img = gr.Image(label="region: click two corners (a box)", type="numpy", interactive=False,
                                       elem_id="bend_box")
                    painter = gr.ImageEditor(label="…or paint it (its bounding box)", type="numpy", sources=(),
                                             layers=False, transforms=(), elem_id="bend_brush", height=300, format="png")
                yaml_box = gr.Code("bends: []\n", language="yaml", label="recipe (YAML; edit and press Use)",
                                   interactive=True, elem_id="bend_yaml")
                with gr.Row():
                    use = gr.Button("Use the YAML")
                    upload = gr.UploadButton("Load YAML…", file_types=[".yaml", ".yml", ".json"])
                    download = gr.DownloadButton("Download YAML", elem_id="bend_download")
                apply = gr.Button("Apply", variant="primary", elem_id="bend_apply")
                status = gr.HTML(elem_id="bend_status")
                state = gr.HTML(elem_id="bend_state")
        frame = gr.Slider(0, 1, value=0, step=1, label="frame (all three)", elem_id="bend_frame")
        with gr.Row():
            base_img = gr.Image(label="baseline", type="numpy", interactive=False, elem_id="bend_baseline")
            bent_img = gr.Image(label="bent", type="numpy", interactive=False, elem_id="bend_bent")
            diff_img = gr.Image(label=f"difference ×{DIFF_GAIN}", type="numpy", interactive=False,
                                elem_id="bend_diff")
        video = gr.Video(label="baseline | bent | difference", interactive=False, autoplay=True, loop=True)

    def wire(shared: Shared) -> None:
        recipe, job, pair, corner, clean = gr.State([]), gr.State(None), gr.State(None), gr.State(None), gr.State(None)
        timer = gr.Timer(TICK_S, active=False)
        region_sliders = [controls[[p.key for p in PARAMS].index(k)] for k in bf.REGION]
        shown = [recipe, yaml_box, download, status]
        op.change(b.pick_op, [op], [word, as_object, heads, region, *controls], api_name=False, **QUIET)
        shared.run.change(b.fit, [shared.run], [word, box_img, painter, clean, status], api_name=False, **QUIET)
        add.click(b.add, [recipe, op, word, as_object, heads, layers, step_from, step_to, branch, *controls], shown,
                  api_name="bend_add")
        clear.click(b.clear, None, shown, api_name=False)
        use.click(b.use_yaml, [yaml_box], shown, api_name=False)
        upload.upload(b.load, [upload], shown, api_name=False)
        box_img.select(b.click_box, [clean, corner], [corner, box_img, *region_sliders], api_name=False)
        painter.change(b.brush, [painter], region_sliders, api_name=False, **QUIET)
        apply.click(b.apply, [shared.run, recipe], [job, status, state, timer, pair], api_name="bend_apply")
        timer.tick(b.tick, [job, pair, shared.run], [state, timer, pair, frame, base_img, bent_img, diff_img, video,
                                                     shared.cards, shared.run, shared.baseline], api_name=False, **QUIET)
        frame.change(b.compare, [pair, frame], [base_img, bent_img, diff_img], api_name=False, trigger_mode="always_last",
                     **QUIET)

    return wire
