"""The Generate tab: the generation form, the job's place in the queue and progress, Cancel, and the Live view.

A ``gr.Timer`` (one per browser, on while its job is queued or running) polls the job and the run folder: the
store lists each finished step in meta.json, so each tick that finds a new step draws its map, the x0 estimate and
the growing strip (``live``), and the Runs tab is refreshed when the run starts and when it ends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from .cards import error_card
from .handlers import Handlers, failure
from .live import pictures, preview_step, progress_html
from .probe_pixels import EXAMPLE, parse_pixel_points
from .session import Viewer
from .studio import CANCELLED, DONE, Job, Settings, Studio, prompt_words

TICK_S = 0.5
MODELS = ["toy", "tiny", "wan2.1-t2v-1.3b"]
QUIET = dict(show_progress="hidden")


@dataclass
class Shared:
    """Components of the viewer the studio tabs update: the run list, the Runs cards, Compare's baseline list."""

    run: gr.Dropdown
    cards: gr.HTML
    baseline: gr.Dropdown


def _number(value: Any) -> int | None:
    """An empty (or 0: what Gradio sends for an empty number box) size or step count means the model's default."""
    return None if value in (None, "") or int(value) == 0 else int(value)


def settings(prompt: str, words: str, model: str, seed: Any, steps: Any, guidance: Any, frames: Any, height: Any,
             width: Any, self_prop: bool, value_norm: bool, previews: bool, probe: str | None = None) -> Settings:
    """The form's values as one ``Settings`` (empty boxes: the model's defaults); a probe box that does not read
    as points raises the user's error."""
    return Settings(prompt=prompt or "", model=(model or "toy").strip(), seed=int(seed or 0), steps=_number(steps),
                    frames=_number(frames), height=_number(height), width=_number(width),
                    guidance=None if guidance in (None, "", 0) else float(guidance), self_prop=bool(self_prop),
                    value_norm=bool(value_norm), previews=bool(previews),
                    words=tuple(w for w in (words or "").split(",") if w.strip()),
                    probe=parse_pixel_points(probe))


class GenerateHandlers:
    """Event functions of the Generate tab over the server's ``Studio``."""

    def __init__(self, studio: Studio, viewer: Viewer, handlers: Handlers) -> None:
        self.studio, self.viewer, self.h = studio, viewer, handlers

    def submit(self, *values: Any) -> tuple:
        """Queue the generation; a bad prompt (or size, model, probe point) is one error card and nothing
        starts."""
        try:
            s = settings(*values)
            job = self.studio.submit(s)
        except Exception as exc:  # shown as one card in the page (handlers.failure logs unexpected ones)
            return gr.skip(), failure(exc, "the prompt"), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        words = prompt_words(s)[1] or []
        return (job.id, "", self._state(job), gr.Timer(active=True),
                gr.Dropdown(choices=words, value=words[0] if words else None), "")

    def cancel(self, job_id: int | None) -> str:
        job = self.studio.cancel(job_id)
        return self._state(job) if job is not None else error_card("no generation of yours to cancel")

    def _progress(self, job: Job) -> tuple[int, int | None, bool]:
        """(finished steps, total steps, whether the run folder exists yet)."""
        if not (self.studio.root / job.rel / "meta.json").is_file():
            return 0, job.settings.steps, False
        run = self.viewer.run(job.rel)
        return len(run.steps_done), int(run.meta.get("num_steps") or 0) or None, True

    def _x0(self, job: Job, done: int) -> int | None:
        """The newest step with its x0 estimate written (it lands a VAE decode after the step's maps)."""
        return preview_step(self.viewer.run(job.rel), done - 1) if done else None

    def _state(self, job: Job | None) -> str:
        if job is None:
            return ""
        done, total, _ = self._progress(job)
        return progress_html(job, self.studio.position(job), done, total)

    def tick(self, job_id: int | None, word: str | None, phase: str, current: str | None) -> tuple:
        """One poll: the state line always; the pictures when a step was added; Runs when the run starts/ends."""
        job = self.studio.job(job_id)
        if job is None:
            return (*[gr.skip()] * 5, gr.Timer(active=False), phase, *[gr.skip()] * 4)
        try:
            done, total, exists = self._progress(job)
            state = progress_html(job, self.studio.position(job), done, total)
            now = f"{job.state}:{exists}:{done}:{word}:{self._x0(job, done) if job.settings.previews else ''}"
            stopped = job.done
            timer = gr.Timer(active=not stopped)
            if now == phase:
                return (state, *[gr.skip()] * 4, timer, phase, *[gr.skip()] * 4)
            shown = pictures(self.viewer, job.rel, word) if exists else (None, None, None, "waiting for the model…")
            words = gr.skip()
            if exists and not word:
                run_words = self.viewer.run(job.rel).words
                words = gr.Dropdown(choices=run_words, value=run_words[0] if run_words else None)
            listed = gr.skip(), gr.skip(), gr.skip()
            if phase.split(":")[:2] != now.split(":")[:2]:  # the run appeared, or the job ended
                listed = self._listed(job, done, current)
            return (state, *shown, timer, now, words, *listed)
        except Exception as exc:  # a half-written step: say so, keep polling
            return (failure(exc, job.rel), *[gr.skip()] * 4, gr.Timer(active=not job.done), phase,
                    *[gr.skip()] * 4)

    def _listed(self, job: Job, done: int, current: str | None) -> tuple:
        """(cards, run list, baseline list): the new run listed; picked above once it ended with steps to show
        (picking it earlier would open a run with nothing to show yet)."""
        if job.state in (DONE, CANCELLED) and done:
            return self.h.refresh(job.rel)
        cards, run, baseline = self.h.refresh(current)
        return cards, gr.Dropdown(choices=run.choices, value=current), baseline

    def redraw(self, job_id: int | None, word: str | None) -> tuple:
        """The live pictures again for another word."""
        job = self.studio.job(job_id)
        if job is None or not (self.studio.root / job.rel / "meta.json").is_file():
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return pictures(self.viewer, job.rel, word)


def build_generate_tab(studio: Studio, viewer: Viewer, handlers: Handlers) -> Callable[[Shared], None]:
    """The Generate tab (call inside ``gr.Tabs``); returns the function that wires it once the viewer's shared
    components exist."""
    g = GenerateHandlers(studio, viewer, handlers)
    with gr.Tab("Generate", id="generate"), gr.Row():
        with gr.Column(scale=1, min_width=330):
            prompt = gr.Textbox(label="prompt", lines=2, elem_id="gen_prompt",
                                placeholder="a (red circle) moving right and a blue square standing still",
                                info="mark the words to watch like (this); unmarked: every word")
            words = gr.Textbox(label="more words or phrases to watch", placeholder="comma-separated, optional",
                               elem_id="gen_words", max_lines=1)
            model = gr.Dropdown(MODELS, value="toy", label="model", allow_custom_value=True, elem_id="gen_model",
                                info="toy (shipped), or anything load_pipeline accepts: an alias, a hub id, "
                                "a local diffusers folder")
            with gr.Row():
                seed = gr.Number(0, precision=0, label="seed", elem_id="gen_seed")
                steps = gr.Number(20, precision=0, minimum=1, label="steps", elem_id="gen_steps")
                guidance = gr.Number(None, label="guidance (0: the model's)", elem_id="gen_guidance")
            with gr.Row():
                frames = gr.Number(None, precision=0, label="frames (0: the model's)", elem_id="gen_frames")
                height = gr.Number(None, precision=0, label="height (0: the model's)")
                width = gr.Number(None, precision=0, label="width (0: the model's)")
            with gr.Row():
                self_prop = gr.Checkbox(False, label="self-prop")
                value_norm = gr.Checkbox(False, label="value-norm")
                previews = gr.Checkbox(True, label="x0 previews", elem_id="gen_previews",
                                       info="one VAE decode per step")
            probe = gr.Textbox(label="probe points (frame, y, x in video pixels; ';' between points)",
                               placeholder=f"optional, e.g. {EXAMPLE}", elem_id="gen_probe", max_lines=1,
                               info="also store where each point attends in space-time (the Probe tab draws it)")
            with gr.Row():
                go = gr.Button("Generate", variant="primary", elem_id="gen_go")
                cancel = gr.Button("Cancel", elem_id="gen_cancel")
            status = gr.HTML(elem_id="gen_status")
            state = gr.HTML(elem_id="gen_state")
        with gr.Column(scale=2):
            word = gr.Dropdown(label="word to watch", choices=[], allow_custom_value=True, elem_id="live_word")
            with gr.Row():
                live_map = gr.Image(label="attention at the last finished step", type="numpy", interactive=False,
                                    elem_id="live_map", height=300, format="png")
                live_x0 = gr.Image(label="the model's x0 estimate (the newest written)", type="numpy",
                                   interactive=False, elem_id="live_x0", height=300)
            caption = gr.Markdown(elem_id="live_caption")
            strip = gr.Image(label="every finished step: the timeline forming", type="numpy", interactive=False,
                             elem_id="live_strip", format="png")

    def wire(shared: Shared) -> None:
        job, phase = gr.State(None), gr.State("")
        timer = gr.Timer(TICK_S, active=False)
        form = [prompt, words, model, seed, steps, guidance, frames, height, width, self_prop, value_norm, previews,
                probe]
        go.click(g.submit, form, [job, status, state, timer, word, phase], api_name="generate")
        cancel.click(g.cancel, [job], [state], api_name="cancel")
        timer.tick(g.tick, [job, word, phase, shared.run],
                   [state, live_map, live_x0, strip, caption, timer, phase, word, shared.cards, shared.run,
                    shared.baseline], api_name=False, **QUIET)
        word.change(g.redraw, [job, word], [live_map, live_x0, strip, caption], api_name=False, **QUIET)

    return wire
