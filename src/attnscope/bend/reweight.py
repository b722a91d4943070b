"""Reweights applied after the softmax, where the lost (or gained) mass must go somewhere on purpose.

``reweight`` with ``renormalize: all`` is a logit offset before the softmax (:meth:`Bender.pre_softmax`); the other
modes, and an object's ``eos: masked``, need the probabilities, and edit them in place here.
"""

from __future__ import annotations

import torch

from .recipe import Bend, BendRecipeError

__all__ = ["object_share", "over_peak", "reweight_masked", "reweight_post"]


def object_share(probs: torch.Tensor, word: torch.Tensor, eos: int, grid: tuple[int, int, int]) -> torch.Tensor:
    """(B, H, S) in [0, 1]: how much of each video token's EOS attention is the object's.

    The object's map (its tokens' probabilities summed, ``word`` (B, H, S, T)) relative to that map's peak in the
    same head and frame: 1 where the object is strongest, near 0 on the other objects and the background.
    """
    return over_peak(word.sum(-1), grid[0]).flatten(-2).to(probs.dtype)


def over_peak(mass: torch.Tensor, frames: int) -> torch.Tensor:
    """A map (..., S) over its peak in each frame -> (..., F, Y*X) in [0, 1]: where a target is, relative to where
    it is strongest (the shared weight of a masked EOS and of a latent translate's cut)."""
    mass = mass.unflatten(-1, (frames, -1))
    return mass / mass.amax(-1, keepdim=True).clamp_min(torch.finfo(mass.dtype).tiny)


def reweight_post(probs: torch.Tensor, cols: torch.Tensor, bend: Bend, prompt_tokens: int, heads) -> None:
    """``reweight`` after the softmax: the target's probabilities times ``scale``, then, by ``renormalize``:
    ``real``: the prompt's real tokens (and the target) rescaled to the total they had, the padding sink keeps
    its mass; ``sink``: the padding sink takes (or gives) the difference, the other words keep theirs;
    ``none``: nothing."""
    rows = probs[:, heads]  # (B, h, S, L)
    word = rows.index_select(-1, cols)
    rows.index_copy_(-1, cols, word * bend.scale)
    if bend.renormalize == "real":
        real = sorted(set(range(int(prompt_tokens))) | set(cols.tolist()))
        real = torch.tensor(real, device=probs.device)
        before = (rows.index_select(-1, real).sum(-1, keepdim=True)
                  + word.sum(-1, keepdim=True) * (1.0 - bend.scale))
        _restore(rows, real, before)
    elif bend.renormalize == "sink":
        _sink(rows, word.sum(-1, keepdim=True) * (1.0 - bend.scale), set(cols.tolist()), prompt_tokens)
    probs[:, heads] = rows


def _restore(rows: torch.Tensor, real: torch.Tensor, before: torch.Tensor) -> None:
    """The keys ``real`` rescaled so each row's total over them is ``before`` (B, h, S, 1) again."""
    after = rows.index_select(-1, real).sum(-1, keepdim=True)
    factor = torch.where(after > 0, before / after.clamp_min(torch.finfo(rows.dtype).tiny), 1.0)
    rows.index_copy_(-1, real, rows.index_select(-1, real) * factor)


def _sink(rows: torch.Tensor, lost: torch.Tensor, cols: set[int], prompt_tokens: int) -> None:
    """The padding keys (past the prompt, not bent) take ``lost`` (B, h, S, 1), in proportion to what they had."""
    pad = torch.tensor([k for k in range(int(prompt_tokens), rows.shape[-1]) if k not in cols], device=rows.device)
    if pad.numel() == 0:
        raise BendRecipeError("renormalize: sink needs padding keys; this prompt fills the text context")
    sink = rows.index_select(-1, pad)
    total = sink.sum(-1, keepdim=True)
    rows.index_copy_(-1, pad, sink * ((total + lost) / total.clamp_min(torch.finfo(rows.dtype).tiny)).clamp_min(0.0))


def reweight_masked(probs: torch.Tensor, cols: torch.Tensor, eos: int, bend: Bend, prompt_tokens: int,
                    grid: tuple[int, int, int], heads) -> None:
    """``reweight`` of an object with ``eos: masked``: its tokens and its share of EOS times ``scale``; then the
    rows renormalized as ``renormalize`` says (``all``: over every key, as the softmax would; ``real``, ``sink``
    and ``none`` as in :func:`reweight_post`)."""
    share = object_share(probs, probs.index_select(-1, cols), eos, grid)  # (B, H, S)
    real = torch.tensor(sorted(set(range(int(prompt_tokens))) | set(cols.tolist()) | {eos}),
                        device=probs.device)
    rows = probs[:, heads]
    before = rows.index_select(-1, real).sum(-1, keepdim=True)
    rows.index_copy_(-1, cols, rows.index_select(-1, cols) * bend.scale)
    rows[..., eos] *= 1.0 - share[:, heads] * (1.0 - bend.scale)
    tiny = torch.finfo(probs.dtype).tiny
    if bend.renormalize == "all":
        rows.div_(rows.sum(-1, keepdim=True).clamp_min(tiny))
    elif bend.renormalize == "real":  # the prompt's tokens get back the total they had, the padding keeps its mass
        _restore(rows, real, before)
    elif bend.renormalize == "sink":
        _sink(rows, before - rows.index_select(-1, real).sum(-1, keepdim=True), set(cols.tolist()) | {eos},
              prompt_tokens)
    probs[:, heads] = rows
