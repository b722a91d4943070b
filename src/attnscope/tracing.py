"""``attnscope.trace``: capture (and bend) Wan cross-attention while a pipeline generates.

A trace wires four small parts together for one generation: the step tracker (:mod:`.capture.steps`, a named
diffusers hook that receives the pipeline's ``cache_context``), the recorder (:mod:`.capture.recorder`, which the
attention processors hand their tensors to), the store writer (:mod:`.store`), and, for a recipe, the Bender
(:mod:`.bend.apply`). The trace itself resolves the prompt's words when the text encoder sees the prompt, opens
the store at the first captured forward, and takes everything off the pipeline again on exit
(:mod:`.capture.install`), also when the generation fails.
"""

from __future__ import annotations

import tempfile
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .capture.install import Installation, install_capture
from .capture.parallel import SequenceShards
from .capture.probs import identical_padding
from .capture.recorder import Recorder
from .capture.spec import CaptureSpec
from .capture.steps import Forward, StepTracker
from .capture.words import WordEntry, resolve_words, strip_markers
from .errors import AttnscopeError
from .memory import release_freed_memory
from .models import wan
from .store import RunWriter, open_run
from .store.compact import check_precision
from .store.inline import open_writer
from .store.size import check_fits, estimate_store_bytes

TEXT_CONTEXT = 512  # Wan pads the prompt to 512 tokens (I2V: the image tokens come first)


class Trace(AbstractContextManager):
    """A capture session over one generation. Use through :func:`trace`."""

    def __init__(self, pipe, words: list[str] | None = None, store: str | Path | None = None,
                 heads="all", layers="all", steps="all", bends=None, value_norm: bool = False,
                 overwrite: bool = False, meta: dict[str, Any] | None = None, writer: str = "auto",
                 self_prop: bool = False, precision: str = "fp16", self_prop_steps="all",
                 probe_points=None) -> None:
        self.pipe = pipe
        self.precision = check_precision(precision)  # "fp16" lossless, "uint8" compact (attnscope.store.compact)
        self.writer_mode = writer  # "thread", "inline" or "auto" (attnscope.store.inline.open_writer)
        self.transformers = wan.transformers_of(pipe)
        self.words_requested = list(words) if words is not None else None
        self.store = Path(store) if store is not None else Path(tempfile.mkdtemp(prefix="attnscope-"))
        self.spec = CaptureSpec.make(heads, layers, steps, value_norm, self_prop, self_prop_steps, probe_points)
        self.overwrite = overwrite
        self.extra_meta = dict(meta or {})
        self.recipe = None
        if bends:
            from .bend.recipe import load_recipe

            self.recipe = load_recipe(bends)
        self.tracker = StepTracker(pipe.scheduler)
        self.recorder = Recorder(self.spec, self.tracker.state, precision=self.precision)
        self.recorder.shards = self._shards()
        self.entries: list[WordEntry] | None = None
        self.prompt_text: str | None = None
        self.keep_x0 = False  # generate() turns it on for the timeline's previews
        self.last_x0: torch.Tensor | None = None
        self._installed: Installation | None = None
        self._encodes = 0
        self._own_encode = False
        self._steps_seen: set[int] = set()
        self._cond_output: torch.Tensor | None = None
        self._x_t: torch.Tensor | None = None
        self._grid_checked = False

    def _shards(self) -> SequenceShards | None:
        """Under diffusers' context parallelism: this rank's place in it; refuses what needs the whole sequence."""
        found = [cp for t in self.transformers.values() if (cp := wan.context_parallel(t)) is not None]
        if not found:
            return None
        group, rank, world, layout = found[0]
        check_parallel(self.spec.grabs_self_attention, self.recipe)
        return SequenceShards(group, rank, world, layout)

    # ---- public -------------------------------------------------------------------------------------------
    def prompt(self, text: str) -> str:
        """Strip ``(word)`` markers from ``text``, remember the marked words, return what to pass to the pipeline.

        Also resolves the words now, so a word missing from the prompt fails before any generation.
        """
        clean, marked = strip_markers(text)
        if marked and self.words_requested is None:
            self.words_requested = marked
        self.prompt_text = wan.clean_prompt(clean)
        resolve_words(self.prompt_text, self.words_requested, self.pipe.tokenizer)
        return self.prompt_text

    def set_words(self, words: dict[str, list[int]], prompt_tokens: int) -> None:
        """Name the token indices to capture directly, for callers that pass ``prompt_embeds`` (benchmarks)."""
        self.entries = [WordEntry(label=k, text=k, char_span=(0, 0), token_indices=list(v)) for k, v in words.items()]
        self.recorder.words = dict(words)
        self.recorder.captured = dict(words)
        self.recorder.prompt_tokens = prompt_tokens

    @property
    def writer(self) -> RunWriter | None:
        return self.recorder.writer

    @property
    def bender(self):
        return self.recorder.bender

    @property
    def state(self):
        return self.tracker.state

    @property
    def run(self):
        """The Run folder written by this trace (readable while generating: finished steps only)."""
        return open_run(self.store)

    # ---- install / remove -----------------------------------------------------------------------------------
    def __enter__(self) -> Trace:
        self.install()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            self.uninstall()
        finally:
            self.finish(exc_type is None)
        return False

    def install(self) -> None:
        """Put the hooks and processors on the pipeline (``with trace(...)`` does this; benchmarks toggle it)."""
        if self._installed is not None:
            raise AttnscopeError("this trace is already installed on the pipeline")
        installed = install_capture(self.transformers, self.recorder, self.spec, self._begin_forward,
                                    self._end_forward)
        if getattr(self.pipe, "text_encoder", None) is not None:
            installed.handles([self.pipe.text_encoder.register_forward_pre_hook(self._on_encode)])
        self._installed = installed

    def uninstall(self) -> None:
        """Take everything off the pipeline again, leaving it as it was."""
        if self._installed is not None:
            installed, self._installed = self._installed, None
            installed.undo()

    def finish(self, ok: bool = True) -> None:
        """Close the store; complete when every selected step was captured."""
        writer = self.recorder.writer
        if writer is not None:
            expected = self.spec.steps_kept(self.tracker.state.num_steps)
            writer.flush()
            writer.close(complete=ok and writer.steps_recorded >= expected)
            self.recorder.writer = None
        if self.recorder.bender is not None:
            release_freed_memory()  # bent calls leave glibc arenas holding GBs (see attnscope.memory)

    # ---- the prompt ---------------------------------------------------------------------------------------------
    def _encode_text(self, text: str) -> torch.Tensor:
        """The pipeline's own text embeddings (L, C) of ``text`` (an edited prompt a bend asks for), not counted
        as one of the generation's prompts."""
        self._own_encode = True
        try:
            embeds, _ = self.pipe.encode_prompt(prompt=text, do_classifier_free_guidance=False,
                                                num_videos_per_prompt=1, max_sequence_length=TEXT_CONTEXT,
                                                device=self.pipe.device)
        finally:
            self._own_encode = False
        return embeds[0]

    def _on_encode(self, module, args):
        """First text-encoder call of a generation = the positive prompt: resolve the words to tokens."""
        if self._own_encode:
            return None
        self._encodes += 1
        if self._encodes > 1:
            if self.tracker.cond_forwards and self._encodes > 2:
                raise AttnscopeError("a trace records one generation; open a new `attnscope.trace` for each run")
            return None
        ids, mask = args[0][0], args[1][0]
        n_real = int(mask.sum())
        real_ids = ids[:n_real].tolist()
        tok = self.pipe.tokenizer
        candidates = [self.prompt_text] if self.prompt_text else []
        candidates.append(tok.decode(real_ids, skip_special_tokens=True))
        for text in candidates:
            if tok(text, add_special_tokens=True)["input_ids"][:n_real] == real_ids:
                self.prompt_text = text
                break
        else:
            raise AttnscopeError("could not align the prompt's tokens with its text; pass the prompt through "
                                 "`tr.prompt(text)` and give the pipeline what it returns")
        self.entries, prompt_tokens = resolve_words(self.prompt_text, self.words_requested, tok)
        every, _ = resolve_words(self.prompt_text, None, tok)
        rec = self.recorder
        rec.prompt_tokens = prompt_tokens
        rec.captured = {e.label: e.token_indices for e in self.entries}
        rec.words = {e.label: e.token_indices for e in every} | rec.captured
        if self.recipe is not None:
            from .bend.apply import Bender

            rec.bender = Bender(self.recipe, rec.words, run_dir=self.store, prompt=self.prompt_text, tokenizer=tok,
                                encode=self._encode_text)
            self._installed.handles(rec.bender.install_block_hooks(self.transformers, self.tracker.state))
        return None

    # ---- transformer forwards --------------------------------------------------------------------------------
    def _begin_forward(self, expert: str, forward: Forward, context, timestep) -> None:
        state = self.tracker.begin(expert, forward, context, timestep)
        if not self._grid_checked:  # the first forward: before the store opens and any step runs
            self.spec.check_probe_points(state.grid)
            self._grid_checked = True
        self._x_t = forward.hidden
        if state.branch == "cond" and self.spec.keeps_step(state.step):
            self._ensure_writer(forward.module)
            self.recorder.padding_identical = self._padding_identical(forward.context_states)

    def _padding_identical(self, states: torch.Tensor | None) -> bool | None:
        """Once per forward: are the text context's padding rows identical (so their keys are too)?"""
        prompt_tokens = self.recorder.prompt_tokens
        if states is None or prompt_tokens >= TEXT_CONTEXT - 1:
            return None
        return identical_padding(states[0, -TEXT_CONTEXT:], prompt_tokens)

    def _end_forward(self, output) -> None:
        s = self.tracker.end()
        prediction = output[0] if isinstance(output, tuple) else output.sample
        if s.branch == "cond":
            self._cond_output = prediction
            writer = self.recorder.writer
            if writer is not None and self.spec.keeps_step(s.step) and s.step not in self._steps_seen:
                self._steps_seen.add(s.step)
                writer.end_step(s.step, {"timestep": s.timestep, "sigma": s.sigma, "expert": s.expert})
        if self.keep_x0 and s.sigma is not None and self._cond_output is not None:
            guided = self._cond_output
            if s.branch == "uncond":
                guided = prediction + wan.guidance_scale(self.pipe, s.expert) * (self._cond_output - prediction)
            x_t = self._x_t[:, : guided.shape[1]]
            self.last_x0 = (x_t.float() - s.sigma * guided.float()).detach()  # flow matching: x0 = x_t - σ·v

    # ---- the store ---------------------------------------------------------------------------------------------
    def _ensure_writer(self, transformer) -> None:
        rec = self.recorder
        if rec.open:
            return
        if self.entries is None:
            raise AttnscopeError("attnscope.trace saw no prompt being encoded; call the pipeline with prompt=... "
                                 "(not prompt_embeds) so words can be mapped to tokens")
        layers = self.spec.layer_list(len(transformer.blocks))
        heads = self.spec.head_list(transformer.blocks[0].attn2.heads)
        rec.layers = set(layers)
        rec.open = True
        if rec.shards is not None and not rec.shards.writes:
            return  # rank 0 writes the whole grid; this rank hands it its slices
        state = self.tracker.state
        words = [e.label for e in self.entries]
        probes = len(self.spec.probe_points)
        needed = estimate_store_bytes(self.spec.steps_kept(state.num_steps), len(layers), len(heads), len(words),
                                      state.grid, self.spec.value_norm, self.spec.self_prop,
                                      self.precision, probes)
        check_fits(self.store.parent, needed)
        rec.writer = open_writer(self.store, self._meta(transformer), words=words, layers=layers, heads=heads,
                                 num_steps=state.num_steps, grid=state.grid, extras=rec.extras,
                                 overwrite=self.overwrite, release=rec.transfer.pool.give, mode=self.writer_mode,
                                 precision=self.precision, probes=probes)

    def _meta(self, transformer) -> dict[str, Any]:
        """Everything needed to reproduce the run, as far as the trace knows it (generate() adds the rest)."""
        from .models.info import model_info

        scheduler = self.pipe.scheduler
        meta = {
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "prompt": self.prompt_text,
            "pipeline": type(self.pipe).__name__,
            "model": {"id": model_info(self.pipe).id, "variant": wan.variant(self.pipe),
                      "config_hash": wan.config_hash(self.pipe)},
            "scheduler": {"class": type(scheduler).__name__, "config": dict(scheduler.config)},
            "words": [e.to_json() for e in self.entries],
            "prompt_tokens": self.recorder.prompt_tokens,
            "capture": {"words": self.words_requested, **self.spec.to_json()},
            # the bends as they acted (measured per-op defaults filled in), so the recipe replays exactly
            "bends": self.recorder.bender.applied() if self.recorder.bender is not None else [],
            "bend_defaults": self.recorder.bender.defaults_applied if self.recorder.bender is not None else None,
            "versions": _versions(),
            "runtime": runtime(self.pipe),
            "parallel": self.recorder.shards.layout if self.recorder.shards is not None else None,
            "patch": list(transformer.config.patch_size),
            "vae": {"temporal": wan.geometry(self.pipe).vae_temporal, "spatial": wan.geometry(self.pipe).vae_spatial},
        }
        meta.update(self.extra_meta)
        return meta


def local_bend(bend) -> bool:
    """Does ``bend`` act on each video token on its own (so it works on a rank's slice of the tokens)? Reweights,
    head and layer bends do; map transforms, swaps, activation bends and an object's masked EOS (its share is
    relative to the map's peak over the frame) move or read the whole video."""
    if (bend.target, bend.op) == ("attention", "reweight"):
        return not bend.masked_eos
    return bend.target in ("head", "layer")


def check_parallel(grabs_self_attention: bool, recipe) -> None:
    """Refuse what context parallelism cannot do (it splits the video tokens over the ranks); the CLI calls this
    before the model loads, the trace again when it finds the split."""
    if grabs_self_attention:
        raise AttnscopeError("self_prop and probe points need every video token's self-attention key, which "
                             "context parallelism spreads over the ranks; capture without --self-prop and "
                             "--probe (value_norm works)")
    if recipe is not None:
        spatial = [b for b in recipe.bends if not b.is_identity() and not local_bend(b)]
        if spatial:
            raise AttnscopeError(f"bend {spatial[0].target} {spatial[0].op} moves maps or activations across "
                                 "the video, which context parallelism splits over the ranks; under it use "
                                 "per-token bends (attention reweight, head ablate/multiply, layer skips)")


def _versions() -> dict[str, str]:
    import diffusers
    import transformers
    import zarr

    return {"attnscope": __version__, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "zarr": zarr.__version__}


def runtime(pipe) -> dict[str, Any]:
    """What a bit-identical re-run needs besides the inputs: the device and, on the CPU, torch's thread count
    (the CPU BLAS sums in a thread-count-dependent order; see README, Reproducibility)."""
    device = next(next(iter(wan.transformers_of(pipe).values())).parameters()).device
    return {"device": device.type, "threads": torch.get_num_threads()}


def trace(pipe, words: list[str] | None = None, store: str | Path | None = None, *, heads="all", layers="all",
          steps="all", bends=None, value_norm: bool = False, self_prop: bool = False, overwrite: bool = False,
          meta: dict[str, Any] | None = None, precision: str = "fp16", self_prop_steps="all",
          probe_points=None) -> Trace:
    """Capture the cross-attention of ``words`` for every step × layer × head of the next generation.

    ``words=None`` captures every word of the prompt. ``heads`` may be "all", "mean" or a list; ``layers`` and
    ``steps`` "all" or lists. ``bends`` is a recipe (path, dict or list of bends). The video is bit-identical to
    an untraced run unless a bend changes it. Use as a context manager around one ``pipe(...)`` call.
    ``value_norm`` also captures the value-norm and value-proj arrays; ``self_prop`` the maps propagated through
    each block's self-attention (the self-prop estimator; it costs about one more self-attention per captured
    layer and step), at the captured steps ``self_prop_steps`` selects ("all", or e.g. "10-19": the other steps'
    self_prop stays unwritten and readers skip it). ``precision="uint8"`` stores compact maps (a byte per value,
    codes made on the capture's device; error bound in meta.json, :mod:`attnscope.store.compact`); the default
    "fp16" is lossless. ``probe_points=[(frame, y, x), ...]`` (latent token grid units) also stores where each
    point attends in space-time: its head-mean self-attention row at every captured step and layer (``probe``,
    :meth:`attnscope.store.Run.probe_rows`); a point outside the grid is refused at the first forward.
    """
    return Trace(pipe, words, store, heads=heads, layers=layers, steps=steps, bends=bends, value_norm=value_norm,
                 self_prop=self_prop, overwrite=overwrite, meta=meta, precision=precision,
                 self_prop_steps=self_prop_steps, probe_points=probe_points)
