"""The studio's job queue: generations run one at a time in a worker thread the server owns.

Why one worker: a generation takes every core (or the GPU) and a loaded pipeline; two at once would only make
both slower and double the memory. Browsers submit jobs; each sees its position in the queue until its turn.
A job is cancelled between denoising steps: a forward pre-hook on the transformer raises :class:`Cancelled` at the
first call of the next step, ``attnscope.generate``'s trace closes the store with ``complete: false`` and every
finished step stays readable.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import names
from ..capture.spec import ProbePoint
from ..errors import AttnscopeError
from ..options import GenerationOptions
from .probe_pixels import PixelPoint

log = logging.getLogger("attnscope.app")

QUEUED, RUNNING, DONE, CANCELLED, FAILED = "queued", "running", "done", "cancelled", "failed"
FINISHED = (DONE, CANCELLED, FAILED)


class Cancelled(AttnscopeError):
    """Raised inside the pipeline between steps when the user pressed Cancel."""


@dataclass(frozen=True)
class Settings:
    """One generation as the Generate tab describes it (None: the model's default)."""

    prompt: str
    model: str = "toy"
    seed: int = 0
    steps: int | None = None
    frames: int | None = None
    height: int | None = None
    width: int | None = None
    guidance: float | None = None
    self_prop: bool = False
    value_norm: bool = False
    previews: bool = True
    words: tuple[str, ...] = ()
    bends: tuple[dict[str, Any], ...] = ()
    baseline: str | None = None  # the run (relative to the runs folder) a bent generation is compared with
    probe: tuple[PixelPoint, ...] = ()  # probe points (frame, y, x) in video pixels; probe_tokens converts them

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def options(self, probe: Sequence[ProbePoint] = ()) -> GenerationOptions:
        """These settings as the one options model the CLI, sweeps and ``generate`` share (its checks included:
        a bad value is one :class:`~attnscope.errors.OptionsError` naming the option). ``probe`` is the probe
        points on the token grid: converting ``self.probe`` needs the pipeline (:func:`probe_tokens`)."""
        return GenerationOptions.from_cli(steps=self.steps, frames=self.frames, height=self.height,
                                          width=self.width, guidance=self.guidance, words=prompt_words(self)[1],
                                          value_norm=self.value_norm, self_prop=self.self_prop,
                                          previews=self.previews, probe=list(probe) or None)


@dataclass
class Job:
    """A queued or running generation; ``rel`` is its run folder under the runs folder."""

    id: int
    settings: Settings
    rel: str
    state: str = QUEUED
    error: str = ""
    started: float | None = None
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def done(self) -> bool:
        return self.state in FINISHED


def prompt_words(settings: Settings) -> tuple[str, list[str] | None]:
    """(prompt without markers, words to capture): the ``(word)`` markers, then the extra words box; None
    (every word of the prompt) when neither names one."""
    from ..capture.words import strip_markers

    clean, marked = strip_markers(settings.prompt)
    words = list(dict.fromkeys([*marked, *(w.strip() for w in settings.words if w.strip())]))
    return clean, words or None


def probe_tokens(pipe, settings: Settings) -> tuple[ProbePoint, ...]:
    """The settings' pixel probe points as latent tokens of the video ``pipe`` will generate (its VAE factors and
    patch, the settings' size or the model's); raises the user's error for a size the model cannot take or a
    point outside the video."""
    from ..models.info import model_info
    from .probe_pixels import pixel_tokens, video_geometry

    defaults = model_info(pipe).defaults
    geo = video_geometry(pipe, settings.frames or defaults["num_frames"], settings.height or defaults["height"],
                         settings.width or defaults["width"])
    return pixel_tokens(geo, settings.probe)


def check(pipe, settings: Settings) -> None:
    """Refuse what would fail inside the generation, before anything is written: an empty prompt, a word not in
    it, a prompt over the text encoder's 512 tokens, a video size the model cannot take, a probe point outside
    the video, a bad recipe."""
    from ..capture.words import resolve_words
    from ..models import wan

    clean, words = prompt_words(settings)
    settings.options()  # the option checks the CLI applies
    if not clean.strip():
        raise AttnscopeError("the prompt is empty; type one, and mark the words to watch like (this)")
    resolve_words(wan.clean_prompt(clean), words, pipe.tokenizer)
    settings.options(probe_tokens(pipe, settings))  # the video's size, then the points on its token grid
    if settings.bends:
        from ..bend import load_recipe

        load_recipe(list(settings.bends))


def slug(text: str, limit: int = 40) -> str:
    """A folder-name-safe short form of a prompt."""
    return names.slug(text, limit)


class Studio:
    """The server's generation queue over one runs folder."""

    def __init__(self, root: str | Path, loader: Callable[[str], Any] | None = None) -> None:
        self.root = Path(root).resolve()
        self._loader = loader
        self._pipes: dict[str, Any] = {}
        self._pipe_lock = threading.Lock()
        self._lock = threading.Condition()
        self._jobs: dict[int, Job] = {}
        self._pending: list[int] = []
        self._ids = itertools.count(1)
        self._worker = threading.Thread(target=self._work, name="attnscope-studio", daemon=True)
        self._worker.start()

    # ---- the pipeline ------------------------------------------------------------------------------------------
    def pipeline(self, model: str):
        """The loaded pipeline for ``model`` (kept: loading takes seconds, and the worker reuses it)."""
        with self._pipe_lock:
            if model not in self._pipes:
                if self._loader is None:
                    from ..models.loading import load_pipeline

                    self._pipes[model] = load_pipeline(model)
                else:
                    self._pipes[model] = self._loader(model)
            return self._pipes[model]

    # ---- jobs ----------------------------------------------------------------------------------------------------
    def submit(self, settings: Settings) -> Job:
        """Check ``settings`` (raises the user's error, starting nothing) and queue the generation."""
        check(self.pipeline(settings.model), settings)
        with self._lock:
            job_id = next(self._ids)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            suffix = "-bent" if settings.bends else ""
            rel = f"studio/{stamp}-{job_id:03d}-{slug(prompt_words(settings)[0])}{suffix}"
            job = Job(job_id, settings, rel)
            self._jobs[job_id] = job
            self._pending.append(job_id)
            self._lock.notify_all()
        return job

    def job(self, job_id: int | None) -> Job | None:
        return self._jobs.get(job_id) if job_id is not None else None

    def position(self, job: Job) -> int:
        """1 for the next job to run, 2 for the one after...; 0 when it is not waiting."""
        with self._lock:
            return self._pending.index(job.id) + 1 if job.id in self._pending else 0

    def cancel(self, job_id: int | None) -> Job | None:
        """Cancel a job: a waiting one never starts; a running one stops after the step it is in."""
        job = self.job(job_id)
        if job is None or job.done:
            return job
        with self._lock:
            job.cancel.set()
            if job.id in self._pending:
                self._pending.remove(job.id)
                job.state, job.finished = CANCELLED, time.time()
        return job

    def wait(self, job_id: int, timeout: float | None = None) -> Job:
        """Block until the job is finished (tests and scripts; the app polls instead)."""
        job = self._jobs[job_id]
        with self._lock:
            self._lock.wait_for(lambda: job.done, timeout=timeout)
        return job

    # ---- the worker ------------------------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: bool(self._pending))
                job = self._jobs[self._pending.pop(0)]
                job.state, job.started = RUNNING, time.time()
            try:
                self._generate(job)
                state, error = DONE, ""
            except Cancelled:
                state, error = CANCELLED, ""
            except AttnscopeError as exc:
                state, error = FAILED, str(exc)
            except Exception as exc:  # the worker must survive a failed generation; the log keeps the traceback
                log.exception("studio: generation %s failed", job.rel)
                state, error = FAILED, f"{type(exc).__name__}: {exc} (the server log has the details)"
            with self._lock:
                job.state, job.error, job.finished = state, error, time.time()
                self._lock.notify_all()

    def _generate(self, job: Job) -> None:
        from ..generation import generate
        from ..models import wan

        s = job.settings
        pipe = self.pipeline(s.model)
        out = self.root / job.rel
        out.parent.mkdir(parents=True, exist_ok=True)
        # what Bend needs to generate this run again with a recipe (the marked prompt, the extra words, the model
        # name as typed, the probe points in pixels)
        meta: dict[str, Any] = {"studio": {"job": job.id, "prompt_marked": s.prompt, "words": list(s.words),
                                           "model": s.model, "probe": [list(p) for p in s.probe]}}
        if s.baseline:
            meta["baseline"] = os.path.relpath(self.root / s.baseline, out)
        hooks = [t.register_forward_pre_hook(_cancel_hook(job.cancel), with_kwargs=True)
                 for t in wan.transformers_of(pipe).values()]
        try:
            if job.cancel.is_set():
                raise Cancelled("cancelled before it started")
            generate(pipe, s.prompt, out, seed=s.seed, bends=list(s.bends) or None, quiet=True, meta=meta,
                     **s.options(probe_tokens(pipe, s)).generate_kwargs())
        finally:
            for hook in hooks:
                hook.remove()


def _cancel_hook(event: threading.Event) -> Callable:
    """A transformer pre-hook that raises :class:`Cancelled` at the first call of a new step once ``event`` is
    set, so the step in flight (both guidance branches) finishes and is stored."""
    last: list[Any] = []

    def hook(module, args, kwargs):
        timestep = kwargs.get("timestep", args[1] if len(args) > 1 else None)
        key = float(timestep.flatten()[0]) if hasattr(timestep, "flatten") else timestep
        new_step = not last or last[-1] != key
        last[:] = [key]
        if event.is_set() and new_step:
            raise Cancelled("cancelled by the user")
        return None

    return hook
