"""Prompt-to-Prompt swap: prompt A's captured cross-attention maps injected into the run of prompt B.

A's maps come from its Run folder (``maps``: step, layer, head, word, frame, y, x, fp16 over the latent grid;
one (step, layer) slab per chunk, read when a call needs it). Per selected call of B's conditional pass:

- each pair (B's tokens, A's word) takes A's map: a word of one token gets it as it is; a word of several tokens
  shares A's word map in the proportions B's own tokens had in this call;
- with ``eos``, B's end-of-sequence token takes A's, which is A's prompt mass minus its words (exact when A
  captured every word of its prompt, each word once: the only other real token is the end-of-sequence token);
- then every row is renormalized to sum to one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .recipe import AttentionSwapBend, BendRecipeError
from .targets import TargetResolver

__all__ = ["SwapSource"]


class SwapSource:
    """One swap bend bound to prompt B: which of B's columns take which of A's maps."""

    def __init__(self, index: int, bend: AttentionSwapBend, targets: TargetResolver) -> None:
        from ..errors import AttnscopeError
        from ..store import open_run

        self.where = f"bend {index} (attention swap)"
        self.bend = bend
        try:
            self.run = open_run(Path(bend.source))
        except AttnscopeError as exc:
            raise BendRecipeError(f"{self.where}: source {bend.source!r} is not a run of prompt A: {exc}") from None
        meta = self.run.meta
        self.labels = self.run.words
        if not self.labels:
            raise BendRecipeError(f"{self.where}: source run {bend.source} captured no words")
        self.layers = list(meta["layers"])
        self.heads = list(meta["heads"])
        self.grid = tuple(meta["grid"]) if isinstance(meta["grid"], (list, tuple)) else (
            meta["grid"]["frames"], meta["grid"]["height"], meta["grid"]["width"])
        self.num_steps = int(meta["num_steps"])
        self.pairs: list[tuple[list[int], int]] = []  # (B's token columns, index of A's word)
        taken: set[int] = set()
        lower = {label.lower(): i for i, label in enumerate(self.labels)}
        for b_name, a_name in bend.replace.items():
            if a_name.lower() not in lower:
                raise BendRecipeError(f"{self.where}: word {a_name!r} was not captured in the source run; its "
                                      f"words are: {', '.join(self.labels)}")
            cols = targets.check([b_name], self.where)
            self.pairs.append((cols, lower[a_name.lower()]))
            taken.update(cols)
        if bend.shared:
            for label, cols in targets.words.items():
                if label.lower() in lower and not taken.intersection(cols):
                    self.pairs.append((list(cols), lower[label.lower()]))
                    taken.update(cols)
        if not self.pairs:
            raise BendRecipeError(f"{self.where}: prompt B shares no word with the source run (words: "
                                  f"{', '.join(self.labels)}); name pairs with replace: {{B word: A word}}")
        self.eos_ok = bend.eos and self._covers_prompt()
        self._cache: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor | None]] = {}

    def _covers_prompt(self) -> bool:
        """A captured every real token but the last (its end-of-sequence token) exactly once."""
        tokens = [t for w in self.run.meta.get("words", []) for t in w.get("token_indices", [])]
        n = int(self.run.meta.get("prompt_tokens", 0))
        return n > 1 and sorted(tokens) == list(range(n - 1))

    def check(self, call, heads: int) -> None:
        if tuple(call.grid) != self.grid or call.num_steps != self.num_steps:
            raise BendRecipeError(f"{self.where}: the source run has {self.num_steps} steps on a {self.grid} grid, "
                                  f"this run {call.num_steps} on {tuple(call.grid)}; generate both at the same size")
        if self.heads != ["mean"] and len(self.heads) != heads:
            raise BendRecipeError(f"{self.where}: the source run kept heads {self.heads}, the model has {heads}; "
                                  "capture prompt A with heads='all' (or 'mean')")
        if call.layer not in self.layers or call.step not in self.run.steps_done:
            raise BendRecipeError(f"{self.where}: the source run lacks step {call.step}, layer {call.layer} "
                                  f"(layers {self.layers}, steps {self.run.steps_done}); capture prompt A at every "
                                  "step and layer the swap acts on")

    def _slab(self, step: int, layer: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
        key = (step, layer)
        if key not in self._cache:
            li = self.layers.index(layer)
            maps = np.asarray(self.run.array("maps")[step, li], dtype=np.float32)  # (head, word, F, Y, X)
            words = torch.from_numpy(maps).flatten(2)  # (head, word, S)
            eos = None
            if self.eos_ok and self.run.array("prompt_mass") is not None:
                mass = np.asarray(self.run.array("prompt_mass")[step, li], dtype=np.float32)  # (head, F, Y, X)
                eos = (torch.from_numpy(mass).flatten(1) - words.sum(1)).clamp_min(0.0)  # (head, S)
            self._cache = {key: (words, eos)}  # calls come step by step: keep one slab
        words, eos = self._cache[key]
        return words.to(device), (eos.to(device) if eos is not None else None)

    def apply(self, probs: torch.Tensor, call) -> torch.Tensor:
        """probs (B, heads, S, L) of B's conditional pass -> A's maps in the paired columns, rows renormalized."""
        self.check(call, probs.shape[1])
        words, eos = self._slab(call.step, call.layer, probs.device)
        heads = slice(None) if self.bend.heads is None else self.bend.heads
        view = probs[:, heads]  # (B, h, S, L)
        if self.heads == ["mean"]:
            words, eos = words.expand(view.shape[1], -1, -1), (eos.expand(view.shape[1], -1)
                                                               if eos is not None else None)
        elif self.bend.heads is not None:
            words, eos = words[self.bend.heads], (eos[self.bend.heads] if eos is not None else None)
        for cols, a in self.pairs:
            target = words[:, a].to(probs.dtype)  # (h, S)
            if len(cols) == 1:
                view[..., cols[0]] = target
            else:
                own = view[..., cols]  # (B, h, S, T): B's own split of the word over its tokens
                share = own / own.sum(-1, keepdim=True).clamp_min(torch.finfo(probs.dtype).tiny)
                view[..., cols] = share * target[..., None]
        if eos is not None and call.prompt_tokens > 0:
            view[..., call.prompt_tokens - 1] = eos.to(probs.dtype)
        view = view / view.sum(-1, keepdim=True).clamp_min(torch.finfo(probs.dtype).tiny)
        probs[:, heads] = view
        return probs
