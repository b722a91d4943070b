"""``attnscope.trace``: capture (and bend) Wan cross-attention while a pipeline generates.

Installed with diffusers' own extension points: one attention processor per ``blocks[i].attn2`` (both experts
of Wan2.2 A14B), a stateful ``ModelHook`` on each transformer that receives the pipeline's
``cache_context("cond"/"uncond", step_index=...)``, and a pre-hook on the text encoder that sees the prompt's
token ids. Everything is removed on exit.
"""

from __future__ import annotations

import math
import tempfile
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from diffusers.hooks.hooks import BaseState, HookRegistry, ModelHook, StateManager
from diffusers.pipelines.wan.pipeline_wan import prompt_clean

from . import __version__
from .capture.context import CallInfo, ForwardState
from .capture.probs import identical_padding, word_matrix, word_probabilities, words_from_probs
from .capture.processor import AttnscopeProcessor, TensorGrab
from .capture.selfattn import SelfAttentionGrab, propagate
from .capture.spec import CaptureSpec
from .capture.transfer import HostTransfer
from .capture.words import WordEntry, resolve_words, strip_markers
from .errors import AttnscopeError
from .memory import release_freed_memory
from .models import wan
from .store import RunWriter, open_run
from .store.procwriter import open_writer
from .store.size import check_fits, estimate_store_bytes
from .store.writer import summaries_of

HOOK_NAME = "attnscope"

VALUE_EXTRAS = ("value_norm", "value_proj")  # what value_norm=True captures beside the maps
SELF_PROP = "self_prop"  # what self_prop=True captures: the maps propagated through the block's self-attention


class _NoState(BaseState):
    def reset(self, *args, **kwargs) -> None:
        return None


class _TransformerHook(ModelHook):
    """Tells the trace which denoising step, branch and expert a transformer forward belongs to."""

    _is_stateful = True  # so diffusers hands us the pipeline's cache_context

    def __init__(self, trace: Trace, expert: str) -> None:
        super().__init__()
        self.trace = trace
        self.expert = expert
        self.state_manager = StateManager(_NoState)

    def pre_forward(self, module, *args, **kwargs):
        hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        self.trace._begin_forward(self.expert, module, self.state_manager._context, hidden, kwargs.get("timestep"),
                                  kwargs.get("encoder_hidden_states"))
        return args, kwargs

    def post_forward(self, module, output):
        self.trace._end_forward(output)
        return output

    def reset_state(self, module):
        self.state_manager.reset()
        return module


class Trace(AbstractContextManager):
    """A capture session over one generation. Use through :func:`trace`."""

    def __init__(self, pipe, words: list[str] | None = None, store: str | Path | None = None,
                 heads="all", layers="all", steps="all", bends=None, value_norm: bool = False,
                 overwrite: bool = False, meta: dict[str, Any] | None = None, writer: str = "auto",
                 self_prop: bool = False) -> None:
        self.pipe = pipe
        self.writer_mode = writer  # "thread", "process", "inline" or "auto" (see attnscope.store.procwriter.open_writer)
        self.transformers = wan.transformers_of(pipe)
        self.words_requested = list(words) if words is not None else None
        self.store = Path(store) if store is not None else Path(tempfile.mkdtemp(prefix="attnscope-"))
        self.spec = CaptureSpec.make(heads, layers, steps, value_norm, self_prop)
        self.overwrite = overwrite
        self.extra_meta = dict(meta or {})
        self.recipe = None
        if bends:
            from .bend.recipe import load_recipe

            self.recipe = load_recipe(bends)
        self.bender = None
        self.state = ForwardState()
        self.entries: list[WordEntry] | None = None
        self.all_words: dict[str, list[int]] = {}
        self.prompt_tokens = 0
        self.prompt_text: str | None = None
        self.writer: RunWriter | None = None
        self.last_x0: torch.Tensor | None = None
        self._installed: list[Any] = []
        self._matrices: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        self._encodes = 0
        self._cond_forwards = 0
        self._cond_output: torch.Tensor | None = None
        self._layers: set[int] = set()
        self._steps_seen: list[int] = []
        self._transfer = HostTransfer()
        self._padding_identical: bool | None = None
        self._self_attention: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self.keep_x0 = False

    # ---- public -------------------------------------------------------------------------------------------
    def prompt(self, text: str) -> str:
        """Strip ``(word)`` markers from ``text``, remember the marked words, return what to pass to the pipeline.

        Also resolves the words now, so a word missing from the prompt fails before any generation.
        """
        clean, marked = strip_markers(text)
        if marked and self.words_requested is None:
            self.words_requested = marked
        self.prompt_text = prompt_clean(clean)
        resolve_words(self.prompt_text, self.words_requested, self.pipe.tokenizer)
        return self.prompt_text

    @property
    def run(self):
        """The Run folder written by this trace (readable while generating: finished steps only)."""
        return open_run(self.store)

    # ---- install / remove -----------------------------------------------------------------------------------
    def __enter__(self) -> Trace:
        self._install()
        return self

    def _install(self) -> None:
        for expert, transformer in self.transformers.items():
            registry = HookRegistry.check_if_exists_or_initialize(transformer)
            registry.register_hook(_TransformerHook(self, expert), HOOK_NAME)
            self._installed.append(("hook", registry))
            for layer, attn in enumerate(wan.cross_attentions(transformer)):
                grab = TensorGrab(attn, with_value=self.spec.value_norm)
                stock = attn.processor
                attn.set_processor(AttnscopeProcessor(stock, layer, expert, self, grab))
                self._installed.append(("processor", attn, stock, grab))
            if self.spec.self_prop:
                for layer, block in enumerate(transformer.blocks):
                    stock = block.attn1.processor
                    grab = SelfAttentionGrab(stock, block.attn1, layer, expert, self)
                    block.attn1.set_processor(grab)
                    self._installed.append(("processor", block.attn1, stock, grab))
        if getattr(self.pipe, "text_encoder", None) is not None:
            handle = self.pipe.text_encoder.register_forward_pre_hook(self._on_encode)
            self._installed.append(("handle", handle))

    def set_words(self, words: dict[str, list[int]], prompt_tokens: int) -> None:
        """Name the token indices to capture directly, for callers that pass ``prompt_embeds`` (benchmarks)."""
        self.entries = [WordEntry(label=k, text=k, char_span=(0, 0), token_indices=list(v)) for k, v in words.items()]
        self.all_words = dict(words)
        self.prompt_tokens = prompt_tokens

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._uninstall()
        self._finish(exc_type is None)
        return False

    def _uninstall(self) -> None:
        for item in reversed(self._installed):
            if item[0] == "hook":
                item[1].remove_hook(HOOK_NAME, recurse=False)
            elif item[0] == "processor":
                _, attn, stock, grab = item
                attn.set_processor(stock)
                grab.remove()
            elif item[0] == "handles":
                for handle in item[1]:
                    handle.remove()
            else:
                item[1].remove()
        self._installed.clear()

    def _finish(self, ok: bool = True) -> None:
        """Close the store; complete when every selected step was captured."""
        if self.writer is not None:
            expected = self.spec.steps_kept(self.state.num_steps)
            self.writer.flush()
            done = self.writer.steps_recorded
            self.writer.close(complete=ok and done >= expected)
            self.writer = None
        if self.bender is not None:
            release_freed_memory()  # bent calls leave glibc arenas holding GBs (see attnscope.memory)

    # ---- events from hooks ----------------------------------------------------------------------------------
    def _on_encode(self, module, args):
        """First text-encoder call of a generation = the positive prompt: resolve the words to tokens."""
        self._encodes += 1
        if self._encodes > 1:
            if self._cond_forwards and self._encodes > 2:
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
        self.entries, self.prompt_tokens = resolve_words(self.prompt_text, self.words_requested, tok)
        every, _ = resolve_words(self.prompt_text, None, tok)
        self.all_words = {e.label: e.token_indices for e in every}
        self.all_words.update({e.label: e.token_indices for e in self.entries})
        if self.recipe is not None:
            from .bend.apply import Bender

            self.bender = Bender(self.recipe, self.all_words, run_dir=self.store)
            self._installed.append(("handles", self.bender.install_block_hooks(self.transformers, self.state)))
        return None

    def _check_padding(self, states: torch.Tensor | None) -> bool | None:
        """Once per forward: are the text context's padding rows identical (so their keys are too)?"""
        if states is None or self.prompt_tokens >= 511:
            return None
        return identical_padding(states[0, -512:], self.prompt_tokens)  # I2V: the image tokens come first

    def _begin_forward(self, expert: str, module, context, hidden: torch.Tensor, timestep,
                       context_states: torch.Tensor | None = None) -> None:
        branch = context.name if context is not None else "cond"
        if branch == "cond":
            self._cond_forwards += 1
        if context is not None and context.step_index is not None:
            step = context.step_index
        else:
            step = self._cond_forwards - 1
        scheduler = self.pipe.scheduler
        if context is not None and context.num_inference_steps:
            num_steps = context.num_inference_steps
        else:
            num_steps = len(scheduler.timesteps)
        if context is not None and context.sigma is not None:
            sigma = float(context.sigma)
        elif getattr(scheduler, "sigmas", None) is not None and step < len(scheduler.sigmas):
            sigma = float(scheduler.sigmas[step])
        else:
            sigma = None
        s = self.state
        s.step, s.num_steps, s.branch, s.expert = step, num_steps, branch, expert
        s.grid = wan.token_grid(module, hidden)
        # kept as a tensor: converting it here would synchronize the GPU; the writer thread converts it
        s.timestep = timestep.detach().max() if torch.is_tensor(timestep) else timestep
        s.sigma = sigma
        s.active = True
        self._x_t = hidden
        if branch == "cond" and self.spec.keeps_step(step):
            self._ensure_writer(module)
            self._padding_identical = self._check_padding(context_states)

    def _end_forward(self, output) -> None:
        s = self.state
        s.active = False
        prediction = output[0] if isinstance(output, tuple) else output.sample
        if s.branch == "cond":
            self._cond_output = prediction
            if self.writer is not None and self.spec.keeps_step(s.step) and s.step not in self._steps_seen:
                self._steps_seen.append(s.step)
                self.writer.end_step(s.step, {"timestep": s.timestep, "sigma": s.sigma, "expert": s.expert})
        if self.keep_x0 and s.sigma is not None and self._cond_output is not None:
            guided = self._cond_output
            if s.branch == "uncond":
                scale = float(getattr(self.pipe, "_guidance_scale", 1.0) or 1.0)
                if s.expert == "transformer_2" and getattr(self.pipe, "_guidance_scale_2", None) is not None:
                    scale = float(self.pipe._guidance_scale_2)
                guided = prediction + scale * (self._cond_output - prediction)
            x_t = self._x_t[:, : guided.shape[1]]
            self.last_x0 = (x_t.float() - s.sigma * guided.float()).detach()  # flow matching: x0 = x_t - σ·v

    # ---- capture ---------------------------------------------------------------------------------------------
    def call_info(self, layer: int, expert: str) -> CallInfo | None:
        s = self.state
        if not s.active:
            return None
        return CallInfo(step=s.step, num_steps=s.num_steps, layer=layer, branch=s.branch, expert=expert,
                        grid=s.grid, words=self.all_words, prompt_tokens=self.prompt_tokens)

    def capturing(self, call: CallInfo) -> bool:
        return (self.writer is not None and call.branch == "cond" and call.layer in self._layers
                and self.spec.keeps_step(call.step))

    def _ensure_writer(self, transformer) -> None:
        if self.writer is not None:
            return
        if self.entries is None:
            raise AttnscopeError("attnscope.trace saw no prompt being encoded; call the pipeline with prompt=... "
                                 "(not prompt_embeds) so words can be mapped to tokens")
        n_layers = len(transformer.blocks)
        layers = self.spec.layer_list(n_layers)
        heads = self.spec.head_list(transformer.blocks[0].attn2.heads)
        self._layers = set(layers)
        num_steps = self.state.num_steps
        words = [e.label for e in self.entries]
        needed = estimate_store_bytes(self.spec.steps_kept(num_steps), len(layers), len(heads), len(words),
                                      self.state.grid, self.spec.value_norm, self.spec.self_prop)
        check_fits(self.store.parent, needed)
        meta = {
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "prompt": self.prompt_text,
            "pipeline": type(self.pipe).__name__,
            "model": {"id": getattr(self.pipe, "name_or_path", None),
                      "variant": wan.variant(self.pipe), "config_hash": wan.config_hash(self.pipe)},
            "scheduler": {"class": type(self.pipe.scheduler).__name__, "config": dict(self.pipe.scheduler.config)},
            "words": [e.to_json() for e in self.entries],
            "prompt_tokens": self.prompt_tokens,
            "capture": {"words": self.words_requested, **self.spec.to_json()},
            "bends": self.recipe.to_json() if self.recipe is not None else [],
            "versions": _versions(),
            "patch": list(transformer.config.patch_size),
            "vae": {"temporal": int(getattr(self.pipe, "vae_scale_factor_temporal", 4)),
                    "spatial": int(getattr(self.pipe, "vae_scale_factor_spatial", 8))},
        }
        meta.update(self.extra_meta)
        extras = (VALUE_EXTRAS if self.spec.value_norm else ()) + ((SELF_PROP,) if self.spec.self_prop else ())
        self.writer = open_writer(self.store, meta, words=words, layers=layers, heads=heads, num_steps=num_steps,
                                  grid=self.state.grid, extras=extras, overwrite=self.overwrite,
                                  release=self._transfer.pool.give, mode=self.writer_mode)

    def _matrix(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._matrices:
            self._matrices[device] = word_matrix({e.label: e.token_indices for e in self.entries}, device)
        return self._matrices[device]

    def record(self, call: CallInfo, query, key, value, out_weight) -> None:
        """Exact probabilities from the stock path's query [S,H,D] and key [L,H,D]."""
        token_index, to_word = self._matrix(query.device)
        maps, mass, values = word_probabilities(query, key, token_index, to_word, call.prompt_tokens,
                                               1.0 / math.sqrt(query.shape[-1]), value, out_weight,
                                               padding_identical=self._padding_identical)
        self._write(call, maps, mass, self._with_self_prop(call, maps, values))

    def keep_self_attention(self, expert: str, layer: int, query: torch.Tensor, key: torch.Tensor) -> None:
        """The query and key [S, H, D] a block's self-attention used, for its cross-attention's self_prop."""
        self._self_attention[(expert, layer)] = (query, key)

    def _with_self_prop(self, call: CallInfo, maps: torch.Tensor, values: dict | None) -> dict | None:
        """``values`` plus ``self_prop`` (maps [H, W, S] through the block's self-attention) when captured."""
        if not self.spec.self_prop:
            return values
        qk = self._self_attention.pop((call.expert, call.layer), None)
        if qk is None:
            raise AttnscopeError(f"layer {call.layer}'s self-attention was not seen before its cross-attention; "
                                 "self_prop needs Wan's block order (attn1, then attn2)")
        return {**(values or {}), SELF_PROP: propagate(qk[0], qk[1], maps)}

    def record_probs(self, call: CallInfo, probs, value, out_weight) -> None:
        """Probabilities a bent call actually used: probs [H, S, L], value [L, H, D]."""
        token_index, to_word = self._matrix(probs.device)
        maps, mass, values = words_from_probs(probs, token_index, to_word, call.prompt_tokens,
                                             value if self.spec.value_norm else None, out_weight)
        self._write(call, maps, mass, self._with_self_prop(call, maps, values))

    def _write(self, call: CallInfo, maps, mass, values: dict | None) -> None:
        heads = self.spec.heads
        values = values or {}
        if heads == "mean":
            maps, mass = maps.mean(0, keepdim=True), mass.mean(0, keepdim=True)
            values = {name: v.mean(0, keepdim=True) for name, v in values.items()}
        elif heads != "all":
            maps, mass = maps[heads], mass[heads]
            values = {name: v[heads] for name, v in values.items()}
        f, y, x = call.grid
        # fp16 once, here: the store holds fp16, the summaries are means of what it holds, and the transfer's own
        # cast then has nothing left to do
        grid_maps = maps.to(torch.float16).unflatten(-1, (f, y, x))  # [H, W, S] -> [H, W, F, Y, X]
        grid_mass = mass.to(torch.float16).unflatten(-1, (f, y, x))  # [H, S] -> [H, F, Y, X]
        tensors = {"maps": grid_maps, "prompt_mass": grid_mass, **summaries_of(grid_maps, grid_mass)}
        tensors.update({name: v.unflatten(-1, (f, y, x)) for name, v in values.items()})
        host, ready = self._transfer.start(tensors)
        maps_h, mass_h = host.pop("maps"), host.pop("prompt_mass")
        self.writer.write(call.step, call.layer, maps_h, mass_h, host, ready=ready)


def _versions() -> dict[str, str]:
    import diffusers
    import transformers
    import zarr

    return {"attnscope": __version__, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "zarr": zarr.__version__}


def trace(pipe, words: list[str] | None = None, store: str | Path | None = None, *, heads="all", layers="all",
          steps="all", bends=None, value_norm: bool = False, self_prop: bool = False, overwrite: bool = False,
          meta: dict[str, Any] | None = None) -> Trace:
    """Capture the cross-attention of ``words`` for every step × layer × head of the next generation.

    ``words=None`` captures every word of the prompt. ``heads`` may be "all", "mean" or a list; ``layers`` and
    ``steps`` "all" or lists. ``bends`` is a recipe (path, dict or list of bends). The video is bit-identical to
    an untraced run unless a bend changes it. Use as a context manager around one ``pipe(...)`` call.
    ``value_norm`` also captures the value-norm and value-proj arrays; ``self_prop`` the maps propagated through
    each block's self-attention (the self-prop estimator; it costs about one more self-attention per captured
    layer).
    """
    return Trace(pipe, words, store, heads=heads, layers=layers, steps=steps, bends=bends, value_norm=value_norm,
                 self_prop=self_prop, overwrite=overwrite, meta=meta)
