"""The Bender: applies a recipe inside the capture processors and as forward hooks on transformer blocks.

The processor asks :meth:`Bender.active` for each cross-attention call; only when it answers yes does it compute
attention itself and call :meth:`pre_softmax`, :meth:`post_softmax` and :meth:`on_head_outputs`. Identity bends
(reweight scale 1, translate 0, rotate 0, ...) are dropped at construction, so a recipe of identities never
activates anything and the video stays bit-identical to an unbent run. The processor owns the tensors it hands
over, so the bends edit them in place (the logits of a large model are gigabytes; a copy would double that).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Protocol

import torch

from . import maps
from .activations import ChannelPicker, bend_hidden, noise_seed
from .recipe import ActivationBend, AttentionBend, AttentionMapBend, Bend, BendRecipeError, HeadBend, Recipe

__all__ = ["Bender"]


class Call(Protocol):
    """What the processor knows about one cross-attention call (capture.context.CallInfo)."""

    step: int
    num_steps: int
    layer: int
    branch: str
    expert: str
    grid: tuple[int, int, int]


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
    """A recipe bound to one prompt's words (label -> token indices into the 512 text keys)."""

    def __init__(self, recipe: Recipe, words: dict[str, list[int]], run_dir: str | Path | None = None) -> None:
        self.recipe = recipe
        self.words = {label: list(tokens) for label, tokens in words.items()}
        live = [(i, b) for i, b in enumerate(recipe.bends) if not b.is_identity()]
        for i, bend in live:
            if isinstance(bend, AttentionBend) and bend.word not in self.words:
                raise BendRecipeError(f"{_where(i, bend)}: word {bend.word!r} is not in the prompt; the prompt's "
                                      f"words are: {', '.join(self.words)}")
        self.logit_bends = [(i, b) for i, b in live if isinstance(b, AttentionBend) and b.op == "reweight"]
        self.map_bends = [(i, b) for i, b in live if isinstance(b, AttentionMapBend)]
        self.head_bends = [(i, b) for i, b in live
                           if isinstance(b, HeadBend) or (b.target, b.op) == ("layer", "skip_cross_attention")]
        self.block_bends = [(i, b) for i, b in live
                            if isinstance(b, ActivationBend) or (b.target, b.op) == ("layer", "skip_block")]
        self.call_bends = self.logit_bends + self.map_bends + self.head_bends
        self.channels = ChannelPicker(run_dir)
        self._checked: set[tuple[int, int, tuple[int, int, int]]] = set()

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
        for _, bend in self._selected(self.logit_bends, call):
            cols = torch.tensor(self.words[bend.word], device=logits.device)
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
        for _, bend in self._selected(self.map_bends, call):
            cols = torch.tensor(self.words[bend.word], device=probs.device)
            heads = slice(None) if bend.heads is None else bend.heads
            word = probs.index_select(-1, cols)  # (B, heads, S, T)
            grid_maps = word[:, heads].movedim(-1, 2).unflatten(-1, (frames, height, width))  # (B, h, T, F, Y, X)
            bent = maps.transform(grid_maps, bend.op, **bend.params())
            if bent is grid_maps:
                continue
            if bend.op == "sharpen":
                bent = bent.clamp_min(0.0)  # probabilities cannot go negative
            word[:, heads] = bent.flatten(-3).movedim(2, -1)  # back to (B, h, S, T)
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
        handles: list[Any] = []
        for transformer in transformers.values():
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
                hidden = bend_hidden(hidden, bend, channels, seed)
            return hidden.flatten(1, 3)  # back to (B, S, C)

        return hook
