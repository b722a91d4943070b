"""The Bender: applies a recipe inside the capture processors and as forward hooks on transformer blocks.

The processor asks :meth:`Bender.active` for each cross-attention call; only when it answers yes does it compute
attention itself and call :meth:`pre_softmax`, :meth:`post_softmax` and :meth:`on_head_outputs`. Identity bends
(reweight scale 1, translate 0, rotate 0, ...) are dropped at construction, so a recipe of identities never
activates anything and the video stays bit-identical to an unbent run. The processor owns the tensors it hands
over, so the bends edit them in place (the logits of a large model are gigabytes; a copy would double that).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch

from . import maps
from .activations import ChannelPicker, bend_hidden, noise_seed
from .defaults import apply_defaults, is_toy_transformer, load_defaults
from .latent import move_region, region_of
from .recipe import (
    ActivationBend,
    AttentionBend,
    AttentionMapBend,
    AttentionSwapBend,
    Bend,
    BendRecipeError,
    HeadBend,
    Recipe,
)
from .reweight import object_share, reweight_masked, reweight_post
from .swap import SwapSource
from .targets import TargetResolver, eos_row, prompt_without

__all__ = ["Bender", "object_share"]  # object_share: re-exported from .reweight


class Call(Protocol):
    """What the processor knows about one cross-attention call (capture.context.CallInfo)."""

    step: int
    num_steps: int
    layer: int
    branch: str
    expert: str
    grid: tuple[int, int, int]
    prompt_tokens: int  # real (non-padding) text tokens, the end-of-sequence token last


class State(Protocol):
    """The transformer forward in progress (capture.context.ForwardState), read at hook time."""

    step: int
    num_steps: int
    branch: str
    expert: str
    grid: tuple[int, int, int]


def _where(index: int, bend: Bend) -> str:
    return f"bend {index} ({bend.target} {bend.op})"


class Bender:
    """A recipe bound to one prompt's words (label -> token indices into the 512 text keys).

    ``prompt`` and ``tokenizer`` (or ``resolve``: names -> {label: token indices}) let targets name any phrase
    exactly as capture resolves it; without them a phrase resolves when its words are consecutive words of the
    prompt. ``model``: ``"toy"`` applies the toy model's measured per-op defaults (``bend_defaults.json``) to bends
    that leave ``steps``/``layers`` unset, a path another such file, ``"none"`` none; left None, the defaults apply
    when :meth:`install_block_hooks` sees the toy model's architecture. ``encode``: text -> the pipeline's text
    embeddings (L, C) of that prompt, needed by ``eos: edited``.
    """

    def __init__(self, recipe: Recipe, words: dict[str, list[int]], run_dir: str | Path | None = None, *,
                 prompt: str | None = None, tokenizer=None,
                 resolve: Callable[[list[str]], dict[str, list[int]]] | None = None,
                 model: str | Path | None = None,
                 encode: Callable[[str], torch.Tensor] | None = None) -> None:
        self.recipe = recipe
        self.words = {label: list(tokens) for label, tokens in words.items()}
        self.targets = TargetResolver(self.words, prompt=prompt, tokenizer=tokenizer, resolve=resolve)
        self._eos = self.targets.eos()
        self.model = model
        self.defaults_applied: str | None = None
        live = [(i, b) for i, b in enumerate(recipe.bends) if not b.is_identity() or getattr(b, "edited_eos", False)]
        self._tokens: dict[int, list[int]] = {}
        self.swaps: dict[int, SwapSource] = {}
        for i, bend in live:
            if isinstance(bend, AttentionSwapBend):
                self.swaps[i] = SwapSource(i, bend, self.targets)
            elif isinstance(bend, AttentionBend):
                self._tokens[i] = self.targets.check(bend.phrases, _where(i, bend))
        self._bind(live)
        self.channels = ChannelPicker(run_dir)
        self._checked: set[tuple[int, int, tuple[int, int, int]]] = set()
        self._columns: dict[tuple[int, int, int, str], torch.Tensor] = {}
        # (layer, expert, branch) -> the regions and moves a latent translate hands to its block's output hook
        self._moves: dict[tuple[int, str, str], list[tuple[torch.Tensor, float, float]]] = {}
        self.encode = encode
        self._text_embedders: dict[str, torch.nn.Module] = {}  # expert -> its text projection (eos: edited)
        self._edited: dict[tuple[int, str, str], torch.Tensor] = {}  # (bend, expert, device) -> edited EOS row
        if model is not None and str(model) != "none":
            self._use_defaults(str(model))

    def _bind(self, live: list[tuple[int, Bend]]) -> None:
        self.live = live
        attention = [(i, b) for i, b in live if isinstance(b, AttentionBend)]
        # a masked end-of-sequence share needs the probabilities, so such a reweight runs after the softmax
        self.logit_bends = [(i, b) for i, b in attention
                            if b.op == "reweight" and b.renormalize == "all" and not b.masked_eos]
        self.map_bends = [(i, b) for i, b in attention if isinstance(b, AttentionMapBend)
                          or (b.op == "reweight" and (b.renormalize != "all" or b.masked_eos))]
        self.map_bends += [(i, b) for i, b in live if isinstance(b, AttentionSwapBend)]
        self.map_bends.sort(key=lambda item: item[0])  # recipe order
        self.head_bends = [(i, b) for i, b in live
                           if isinstance(b, HeadBend) or (b.target, b.op) == ("layer", "skip_cross_attention")]
        self.block_bends = [(i, b) for i, b in live
                            if isinstance(b, ActivationBend) or (b.target, b.op) == ("layer", "skip_block")]
        # eos: edited, once per bend (a phrase missing from the prompt's text fails here, before any step runs);
        # a whole-prompt target leaves nothing: its EOS is bent with it instead (as eos: true)
        self.edited_text = {i: self.edited_prompt(b) for i, b in attention if b.edited_eos}
        self.edited_bends = [(i, b) for i, b in attention if self.edited_text.get(i, "").strip()]
        self.call_bends = self.logit_bends + self.map_bends + self.head_bends

    def _use_defaults(self, model: str) -> None:
        """Bends that left steps/layers unset take the model's measured per-op defaults."""
        defaults = load_defaults(model)
        if not defaults:
            return
        live = [(i, apply_defaults(i, b, defaults)) for i, b in self.live]
        for i, bend in live:
            if i in self.swaps:
                self.swaps[i].bend = bend
        self._bind(live)
        self.defaults_applied = model

    def applied(self) -> list[dict[str, Any]]:
        """The recipe as it acts (measured defaults filled in, an edited EOS's prompt named), as dicts like
        ``Recipe.to_json``; identities are kept as written (they never act)."""
        acting = dict(self.live)
        out = [(acting.get(i, b)).model_dump(mode="json") for i, b in enumerate(self.recipe.bends)]
        for i, text in self.edited_text.items():  # an edited EOS names the prompt it came from
            out[i]["eos_prompt"] = text
        return out

    def columns(self, index: int, bend: Bend, call: Call, keys: int, device: torch.device) -> torch.Tensor:
        """The text columns a target bends in this call: its tokens, then EOS and the padding sink if asked."""
        prompt_tokens = int(getattr(call, "prompt_tokens", 0) or 0)
        key = (index, prompt_tokens, keys, str(device))
        if key not in self._columns:
            cols = list(self._tokens[index])
            if bend.with_eos or (index in self.edited_text and not self.edited_text[index].strip()):
                eos = self.eos_column(index, bend, call)
                if eos not in cols:
                    cols.append(eos)
            if bend.padding:
                if prompt_tokens <= 0:
                    raise BendRecipeError(f"{_where(index, bend)}: padding needs the prompt's real token count")
                cols.extend(range(prompt_tokens, keys))
            self._columns[key] = torch.tensor(cols, device=device)
        return self._columns[key]

    def eos_column(self, index: int, bend: Bend, call: Call) -> int:
        """The end-of-sequence token's key index: the tokenizer's, else the call's last real token."""
        prompt_tokens = int(getattr(call, "prompt_tokens", 0) or 0)
        eos = self._eos if self._eos is not None else (prompt_tokens - 1 if prompt_tokens > 0 else None)
        if eos is None:
            raise BendRecipeError(f"{_where(index, bend)}: the end-of-sequence token is unknown (the call "
                                  "does not say how many real tokens the prompt has)")
        return eos

    def edited_prompt(self, bend: Bend) -> str:
        """The prompt an ``eos: edited`` bend takes its end-of-sequence token from."""
        if bend.eos_prompt is not None or self.targets.prompt is None:
            return bend.eos_prompt or ""  # no prompt text (a bare Bender): nothing to take words out of
        return prompt_without(self.targets.prompt, bend.phrases)

    def edit_context(self, states: torch.Tensor, call: Call) -> torch.Tensor:
        """``eos: edited``: the text context (B, L, C) with the EOS row of the prompt without the target, on the
        conditional pass (the other pass's text is the negative prompt)."""
        now = self._selected(self.edited_bends, call)
        if not now or call.branch != "cond":
            return states
        states = states.clone()
        for i, bend in now:
            states[:, self.eos_column(i, bend, call)] = self._edited_row(i, bend, call.expert, states)
        return states

    def _edited_row(self, index: int, bend: Bend, expert: str, states: torch.Tensor) -> torch.Tensor:
        key = (index, expert, str(states.device))
        if key not in self._edited:
            if self.encode is None or self.targets.tokenizer is None or expert not in self._text_embedders:
                raise BendRecipeError(f"{_where(index, bend)}: eos: edited needs the pipeline's text encoder; "
                                      "apply the recipe through attnscope.trace or attnscope.generate")
            row = eos_row(self.edited_text[index], self.encode, self.targets.tokenizer, self._text_embedders[expert])
            self._edited[key] = row.to(device=states.device, dtype=states.dtype)
        return self._edited[key]

    @property
    def cluster_files(self) -> list[str]:
        """The channel-clustering files this run read or wrote so far (worth recording in meta.json)."""
        return [str(f.path) for f in self.channels.files.values() if f.path is not None]

    # ---- checks against the model --------------------------------------------------------------------------------
    def _check_heads(self, heads: int) -> None:
        for i, bend in self.call_bends:
            chosen = getattr(bend, "heads", None)
            if chosen is not None and max(chosen) >= heads:
                raise BendRecipeError(f"{_where(i, bend)}: heads {chosen} out of range; the model's cross-attention "
                                      f"has {heads} heads (0-{heads - 1})")

    def _check_grid(self, frames: int) -> None:
        for i, bend in self.map_bends + self.block_bends:
            if bend.op == "freeze" and not -frames <= bend.frame < frames:
                raise BendRecipeError(f"{_where(i, bend)}: frame {bend.frame} does not exist; the latent grid has "
                                      f"{frames} frames (0-{frames - 1})")

    def _check_steps(self, num_steps: int) -> None:
        for i, bend in self.call_bends + self.block_bends:
            if bend.steps is not None and isinstance(bend.steps[0], int) and max(bend.steps) >= num_steps:
                raise BendRecipeError(f"{_where(i, bend)}: steps {bend.steps} beyond the schedule's {num_steps} "
                                      f"steps (0-{num_steps - 1})")

    def _check(self, heads: int, num_steps: int, grid: tuple[int, int, int]) -> None:
        key = (heads, num_steps, tuple(grid))
        if key not in self._checked:
            if heads:
                self._check_heads(heads)
            self._check_steps(num_steps)
            self._check_grid(grid[0])
            self._checked.add(key)

    @staticmethod
    def _selected(bends: list[tuple[int, Bend]], call: Call) -> list[tuple[int, Bend]]:
        return [(i, b) for i, b in bends if b.selects(call.step, call.num_steps, call.layer, call.branch, call.expert)]

    # ---- cross-attention calls -----------------------------------------------------------------------------------
    def active(self, call: Call) -> bool:
        """Does any attention, head or cross-attention-skip bend act on this call?"""
        return any(b.selects(call.step, call.num_steps, call.layer, call.branch, call.expert)
                   for _, b in self.call_bends)

    def pre_softmax(self, logits: torch.Tensor, call: Call) -> torch.Tensor:
        """``reweight``: add log(scale) to the word's logits (B, heads, S, L); scale 0 gives -inf (word removed)."""
        self._check(logits.shape[1], call.num_steps, call.grid)
        for i, bend in self._selected(self.logit_bends, call):
            cols = self.columns(i, bend, call, logits.shape[-1], logits.device)
            word = logits.index_select(-1, cols)  # (B, heads, S, T): the word's token columns
            offset = math.log(bend.scale) if bend.scale > 0 else -math.inf
            if bend.heads is None:
                word += offset
            else:
                word[:, bend.heads] += offset
            logits.index_copy_(-1, cols, word)
        return logits

    def post_softmax(self, probs: torch.Tensor, call: Call) -> torch.Tensor:
        """Map transforms on the word's columns of probs (B, heads, S, L), then rows renormalized to sum to 1."""
        self._check(probs.shape[1], call.num_steps, call.grid)
        frames, height, width = call.grid
        if probs.shape[2] != frames * height * width:
            raise RuntimeError(f"{probs.shape[2]} video tokens do not fill the grid {call.grid}")
        for i, bend in self._selected(self.map_bends, call):
            if i in self.swaps:
                probs = self.swaps[i].apply(probs, call)
                continue
            cols = self.columns(i, bend, call, probs.shape[-1], probs.device)
            heads = slice(None) if bend.heads is None else bend.heads
            eos = self.eos_column(i, bend, call) if bend.masked_eos else None
            if bend.op == "reweight":
                if eos is None:
                    reweight_post(probs, cols, bend, call.prompt_tokens, heads)
                else:
                    reweight_masked(probs, cols, eos, bend, call.prompt_tokens, call.grid, heads)
                continue
            word = probs.index_select(-1, cols)  # (B, heads, S, T)
            share = None
            if eos is not None:  # the object's share of EOS moves as one more column; the rest stays
                share = object_share(probs, word, eos, call.grid)
                word = torch.cat([word, (probs[..., eos] * share).unsqueeze(-1)], dim=-1)
            grid_maps = word[:, heads].movedim(-1, 2).unflatten(-1, (frames, height, width))  # (B, h, T, F, Y, X)
            params = bend.params_at(call.step, call.num_steps)
            if getattr(bend, "latent", False) and not (params["dx"] == 0.0 and params["dy"] == 0.0):
                region = region_of(word[:, heads], frames).unflatten(-1, (height, width))
                self._moves.setdefault((call.layer, call.expert, call.branch), []).append(
                    (region, params["dx"], params["dy"]))
            bent = maps.transform(grid_maps, bend.op, **params)
            if bent is grid_maps:
                continue
            if bend.op == "sharpen":
                bent = bent.clamp_min(0.0)  # probabilities cannot go negative
            word[:, heads] = bent.flatten(-3).movedim(2, -1)  # back to (B, h, S, T)
            if share is not None:
                column = probs[..., eos].clone()
                column[:, heads] = (column * (1.0 - share) + word[..., -1])[:, heads]
                probs[..., eos] = column
                word = word[..., :-1]
            probs.index_copy_(-1, cols, word)
            if bend.renormalize:
                tiny = torch.finfo(probs.dtype).tiny
                if bend.heads is None:
                    probs.div_(probs.sum(dim=-1, keepdim=True).clamp_min(tiny))
                else:
                    rows = probs[:, heads]  # (B, h, S, L)
                    probs[:, heads] = rows / rows.sum(dim=-1, keepdim=True).clamp_min(tiny)
        return probs

    def on_head_outputs(self, out: torch.Tensor, call: Call) -> torch.Tensor:
        """Head ``ablate``/``multiply`` on out (B, S, heads, head_dim); ``skip_cross_attention`` returns zeros."""
        self._check(out.shape[2], call.num_steps, call.grid)
        for _, bend in self._selected(self.head_bends, call):
            if bend.op == "skip_cross_attention":
                return torch.zeros_like(out)
            heads = slice(None) if bend.heads is None else bend.heads
            if bend.op == "ablate":
                out[:, :, heads] = 0.0
            else:
                out[:, :, heads] *= bend.factor
        return out

    # ---- block hooks ------------------------------------------------------------------------------------------------
    def install_block_hooks(self, transformers: dict[str, torch.nn.Module], state: State) -> list[Any]:
        """Forward hooks for activation bends, ``skip_block`` and ``skip_cross_attention`` on each expert's blocks.

        ``state`` is read when a hook runs (step, num_steps, branch, expert, grid of the forward in progress).
        """
        if self.model is None and any(is_toy_transformer(t) for t in transformers.values()):
            self._use_defaults("toy")
        handles: list[Any] = []
        for expert, transformer in transformers.items():
            if self.edited_bends:
                self._text_embedders[expert] = transformer.condition_embedder.text_embedder
            blocks = transformer.blocks
            for i, bend in self.call_bends + self.block_bends:
                if bend.layers is not None and max(bend.layers) >= len(blocks):
                    raise BendRecipeError(f"{_where(i, bend)}: layers {bend.layers} out of range; the model has "
                                          f"{len(blocks)} blocks (0-{len(blocks) - 1})")
            for layer, block in enumerate(blocks):
                mine = [(i, b) for i, b in self.block_bends if b.layers is None or layer in b.layers]
                if mine:
                    hook = self._block_hook(mine, layer, state)
                    handles.append(block.register_forward_hook(hook, with_kwargs=True))
                if any(getattr(b, "latent", False) and (b.layers is None or layer in b.layers)
                       for _, b in self.map_bends):
                    handles.append(block.register_forward_hook(self._latent_hook(layer, state), with_kwargs=True))
                skips = [b for _, b in self.head_bends if b.op == "skip_cross_attention"
                         and (b.layers is None or layer in b.layers)]
                if skips:
                    handles.append(block.attn2.register_forward_hook(self._skip_hook(skips, layer, state)))
        return handles

    @staticmethod
    def _now(bend: Bend, layer: int, state: State) -> bool:
        return bend.selects(state.step, state.num_steps, layer, state.branch, state.expert)

    def _skip_hook(self, skips: list[Bend], layer: int, state: State):
        def hook(module, args, output):
            if any(self._now(b, layer, state) for b in skips):
                return torch.zeros_like(output)  # exact skip: no text (or image) attention, no output bias
            return None

        return hook

    def _latent_hook(self, layer: int, state: State):
        def hook(module, args, kwargs, output):
            moves = self._moves.pop((layer, state.expert, state.branch), None)
            if not moves:
                return None
            hidden = output.unflatten(1, tuple(state.grid))  # (B, S, C) -> (B, F, Y, X, C)
            for region, dx, dy in moves:
                hidden = move_region(hidden, region, dx, dy)
            return hidden.flatten(1, 3)

        return hook

    def _block_hook(self, bends: list[tuple[int, Bend]], layer: int, state: State):
        def hook(module, args, kwargs, output):
            now = [(i, b) for i, b in bends if self._now(b, layer, state)]
            if not now:
                return None
            self._check(0, state.num_steps, state.grid)
            if any(b.op == "skip_block" for _, b in now):
                return kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
            frames, height, width = state.grid
            unbent = output.unflatten(1, (frames, height, width))  # (B, S, C) -> (B, F, Y, X, C)
            hidden = unbent
            for i, bend in now:
                # clusters come from the block's own (unbent) output on their first use
                channels = self.channels.pick(i, bend, state.expert, layer, unbent)
                seed = noise_seed(getattr(bend, "seed", 0), state.step, layer, state.branch)
                hidden = bend_hidden(hidden, bend, channels, seed, bend.params_at(state.step, state.num_steps))
            return hidden.flatten(1, 3)  # back to (B, S, C)

        return hook
