"""Bender on cross-attention calls: reweight, map bends + renormalization, head bends, selection, checks."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
import torch

from attnscope.bend.apply import Bender
from attnscope.bend.recipe import BendRecipeError, load_recipe

GRID = (2, 4, 8)  # F, Y, X
S = 2 * 4 * 8
L = 512
HEADS = 3
WORDS = {"red": [1], "circle": [2], "soccer ball": [4, 5]}


@dataclass(frozen=True)
class Call:
    step: int = 0
    num_steps: int = 10
    layer: int = 0
    branch: str = "cond"
    expert: str = "transformer"
    grid: tuple[int, int, int] = GRID
    prompt_tokens: int = 7


def logits(seed: int = 0) -> torch.Tensor:
    return torch.randn(1, HEADS, S, L, generator=torch.Generator().manual_seed(seed))  # (B, heads, S, L)


def bender(*bends: dict) -> Bender:
    return Bender(load_recipe(list(bends)), WORDS)


def column_maps(probs: torch.Tensor, token: int) -> torch.Tensor:
    return probs[..., token].unflatten(-1, GRID)  # (B, heads, F, Y, X)


def test_reweight_zero_removes_the_word_and_rows_still_sum_to_one():
    b = bender({"target": "attention", "op": "reweight", "word": "soccer ball", "scale": 0.0})
    call = Call()
    assert b.active(call)
    probs = torch.softmax(b.pre_softmax(logits(), call), dim=-1)
    assert torch.equal(probs[..., [4, 5]], torch.zeros(1, HEADS, S, 2))
    assert torch.allclose(probs.sum(-1), torch.ones(1, HEADS, S))


def test_reweight_multiplies_the_odds_by_scale():
    b = bender({"target": "attention", "op": "reweight", "word": "circle", "scale": 3.0, "heads": [1]})
    raw = logits()
    before = torch.softmax(raw, dim=-1)
    after = torch.softmax(b.pre_softmax(raw.clone(), Call()), dim=-1)
    # exp(logit) of the word's token times 3, others unchanged: ratio to any other key is 3x
    ratio = (after[:, 1, :, 2] / after[:, 1, :, 9]) / (before[:, 1, :, 2] / before[:, 1, :, 9])
    assert torch.allclose(ratio, torch.full_like(ratio, 3.0), rtol=1e-4)
    assert torch.equal(after[:, [0, 2]], before[:, [0, 2]])  # heads outside the selection untouched


def test_translate_moves_the_word_and_renormalizes_rows():
    b = bender({"target": "attention", "op": "translate", "word": "circle", "dx": 0.25})
    probs = torch.softmax(logits(), dim=-1)
    before = column_maps(probs, 2).clone()
    out = b.post_softmax(probs.clone(), Call())
    assert torch.allclose(out.sum(-1), torch.ones(1, HEADS, S), atol=1e-6)
    moved = column_maps(out, 2) * 0  # expected: shifted by 2 tokens with zeros at the left, then renormalized
    moved[..., 2:] = before[..., :-2]
    pre_norm = probs.clone()
    pre_norm[..., 2] = moved.flatten(-3)
    assert torch.allclose(out, pre_norm / pre_norm.sum(-1, keepdim=True), atol=1e-7)
    assert torch.equal(column_maps(out, 2)[..., :2], torch.zeros(1, HEADS, 2, 4, 2))


def test_translate_moves_the_centroid_of_the_word_map():
    b = bender({"target": "attention", "op": "translate", "word": "circle", "dx": 0.25, "renormalize": False})
    probs = torch.zeros(1, HEADS, S, L)
    probs[..., 0] = 1.0
    grid = torch.zeros(GRID)
    grid[:, 1:3, 1:3] = 1.0  # a square away from the right border
    probs[..., 2] = grid.flatten() * 0.5
    probs[..., 0] -= probs[..., 2]
    out = b.post_softmax(probs.clone(), Call())
    xs = torch.arange(GRID[2], dtype=torch.float32)
    cx = lambda m: float((m.sum((0, 1)) * xs).sum() / m.sum())  # noqa: E731
    assert cx(column_maps(out, 2)[0, 0]) - cx(column_maps(probs, 2)[0, 0]) == pytest.approx(0.25 * GRID[2])
    assert torch.equal(out[..., 0], probs[..., 0])  # no renormalization asked


def test_multi_token_word_moves_every_token():
    b = bender({"target": "attention", "op": "flip", "word": "soccer ball", "axis": "x", "renormalize": False})
    probs = torch.softmax(logits(), dim=-1)
    out = b.post_softmax(probs.clone(), Call())
    for token in (4, 5):
        assert torch.equal(column_maps(out, token), torch.flip(column_maps(probs, token), (-1,)))


@pytest.mark.parametrize("call", [
    Call(layer=2), Call(step=9), Call(branch="uncond"), Call(expert="transformer_2"),
])
def test_calls_outside_the_selection_are_untouched(call):
    b = bender(
        {"target": "attention", "op": "reweight", "word": "circle", "scale": 0.0, "layers": [0, 1],
         "steps": [0.0, 0.5], "branch": "cond", "experts": ["transformer"]},
        {"target": "attention", "op": "rotate", "word": "circle", "degrees": 90, "layers": [0, 1],
         "steps": [0.0, 0.5], "branch": "cond", "experts": ["transformer"]},
        {"target": "head", "op": "ablate", "heads": [0], "layers": [0, 1], "steps": [0.0, 0.5], "branch": "cond",
         "experts": ["transformer"]},
    )
    assert b.active(Call())
    assert not b.active(call)
    raw = logits()
    probs = torch.softmax(raw, -1)
    out = torch.randn(1, S, HEADS, 8)
    assert torch.equal(b.pre_softmax(raw.clone(), call), raw)
    assert torch.equal(b.post_softmax(probs.clone(), call), probs)
    assert torch.equal(b.on_head_outputs(out.clone(), call), out)


def test_map_bend_on_chosen_heads_only():
    probs = torch.softmax(logits(), dim=-1)
    raw = bender({"target": "attention", "op": "reverse", "word": "circle", "heads": [2], "renormalize": False})
    out = raw.post_softmax(probs.clone(), Call())
    assert torch.equal(out[:, :2], probs[:, :2])
    assert torch.equal(column_maps(out, 2)[:, 2], torch.flip(column_maps(probs, 2)[:, 2], (1,)))
    normed = bender({"target": "attention", "op": "reverse", "word": "circle", "heads": [2]})
    out = normed.post_softmax(probs.clone(), Call())
    assert torch.equal(out[:, :2], probs[:, :2])  # rows of other heads are not renormalized (bit-identical)
    assert torch.allclose(out[:, 2].sum(-1), torch.ones(1, S), atol=1e-6)


def test_identity_recipe_is_never_active_and_returns_inputs():
    b = bender({"target": "attention", "op": "reweight", "word": "circle", "scale": 1.0},
               {"target": "attention", "op": "translate", "word": "circle", "dx": 0.0, "dy": 0.0},
               {"target": "attention", "op": "rotate", "word": "circle", "degrees": 0},
               {"target": "attention", "op": "scale", "word": "circle", "factor": 1.0},
               {"target": "head", "op": "multiply", "heads": [0], "factor": 1.0},
               {"target": "activation", "op": "multiply", "factor": 1.0})
    call = Call()
    assert not b.active(call)
    raw = logits()
    assert b.pre_softmax(raw, call) is raw and torch.equal(raw, logits())
    assert b.install_block_hooks({}, None) == []


def test_head_ablate_multiply_and_skip_cross_attention():
    out = torch.randn(1, S, HEADS, 8)
    ablated = bender({"target": "head", "op": "ablate", "heads": [0, 2]}).on_head_outputs(out.clone(), Call())
    assert torch.equal(ablated[:, :, [0, 2]], torch.zeros(1, S, 2, 8)) and torch.equal(ablated[:, :, 1], out[:, :, 1])
    doubled = bender({"target": "head", "op": "multiply", "heads": [1], "factor": 2.0}).on_head_outputs(
        out.clone(), Call())
    assert torch.equal(doubled[:, :, 1], out[:, :, 1] * 2) and torch.equal(doubled[:, :, 0], out[:, :, 0])
    skip = bender({"target": "layer", "op": "skip_cross_attention", "layers": [0]})
    assert skip.active(Call()) and not skip.active(Call(layer=1))
    assert torch.equal(skip.on_head_outputs(out.clone(), Call()), torch.zeros_like(out))


def test_heads_out_of_range_fail_clearly():
    b = bender({"target": "head", "op": "ablate", "heads": [0, 7], "layers": [3]})
    with pytest.raises(BendRecipeError, match=r"bend 0 \(head ablate\): heads \[0, 7\] out of range.*3 heads"):
        b.on_head_outputs(torch.zeros(1, S, HEADS, 8), Call(layer=3))
    a = bender({"target": "attention", "op": "blur", "word": "circle", "sigma": 1.0, "heads": [5]})
    with pytest.raises(BendRecipeError, match="heads"):
        a.post_softmax(torch.softmax(logits(), -1), Call())


def test_steps_and_frames_beyond_the_run_fail_clearly():
    b = bender({"target": "attention", "op": "reweight", "word": "circle", "scale": 2.0, "steps": [12]})
    with pytest.raises(BendRecipeError, match="steps \\[12\\] beyond the schedule's 10 steps"):
        b.pre_softmax(logits(), Call())
    f = bender({"target": "attention", "op": "freeze", "word": "circle", "frame": 5})
    with pytest.raises(BendRecipeError, match="frame 5 does not exist.*2 frames"):
        f.post_softmax(torch.softmax(logits(), -1), Call())


def test_unknown_word_fails_with_the_prompt_words():
    with pytest.raises(BendRecipeError, match="word 'cat' is not in the prompt.*red, circle, soccer ball"):
        bender({"target": "attention", "op": "reweight", "word": "cat", "scale": 0.0})


def test_bends_compose_in_recipe_order():
    b = bender({"target": "attention", "op": "translate", "word": "circle", "dx": 0.125, "renormalize": False},
               {"target": "attention", "op": "flip", "word": "circle", "axis": "x", "renormalize": False})
    probs = torch.softmax(logits(), dim=-1)
    out = b.post_softmax(probs.clone(), Call())
    moved = torch.zeros_like(column_maps(probs, 2))
    moved[..., 1:] = column_maps(probs, 2)[..., :-1]
    assert torch.equal(column_maps(out, 2), torch.flip(moved, (-1,)))
    assert torch.equal(b.post_softmax(probs.clone(), replace(Call(), step=3)), out)


def test_ramped_translate_grows_over_the_bends_steps():
    b = bender({"target": "attention", "op": "translate", "word": "circle", "dx": 0.5, "ramp": True,
                "steps": [2, 3, 4, 5], "renormalize": False})
    probs = torch.zeros(1, HEADS, S, L)
    probs[..., 2].unflatten(-1, GRID)[..., 0] = 1.0  # the word sits in the first column of the grid
    for step, column in ((2, 1), (3, 2), (4, 3), (5, 4)):  # 8 columns: 0.5 of the width is 4, a quarter per step
        out = b.post_softmax(probs.clone(), Call(step=step))
        on = column_maps(out, 2)[0, 0, 0].nonzero()[:, 1].unique().tolist()
        assert on == [column], (step, on)
    assert not b.active(Call(step=6))
