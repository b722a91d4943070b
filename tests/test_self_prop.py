"""self_prop: the maps propagated through the block's own self-attention, exact and without changing the video."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import attnscope
from attnscope.capture.selfattn import propagate, rotate
from conftest import tiny_call_kwargs

PROMPT = "a red cat playing with a soccer ball"


def _attn1_inputs(pipe, expert="transformer"):
    """hidden_states and rotary_emb of every attn1 call, in call order, with plain forward pre-hooks."""
    seen, handles = [], []
    for layer, block in enumerate(getattr(pipe, expert).blocks):
        def hook(module, args, kwargs, layer=layer):
            rotary = args[3] if len(args) > 3 else kwargs["rotary_emb"]  # the block passes it positionally
            seen.append((layer, args[0].detach().clone(), tuple(r.clone() for r in rotary)))
        handles.append(block.attn1.register_forward_pre_hook(hook, with_kwargs=True))
    return seen, handles


def _brute_self_attention(attn, x, rotary) -> torch.Tensor:
    """Head-mean softmax(q kᵀ/√d) [S, S] of attn1 from its input, float64, with diffusers' own rotary formula."""
    with torch.no_grad():
        q = attn.norm_q(attn.to_q(x))[:1].unflatten(2, (attn.heads, -1))
        k = attn.norm_k(attn.to_k(x))[:1].unflatten(2, (attn.heads, -1))
        q, k = rotate(q, *rotary)[0].double(), rotate(k, *rotary)[0].double()
    p = torch.softmax(torch.einsum("shd,thd->hst", q, k) / math.sqrt(q.shape[-1]), dim=-1)
    return p.mean(0)


@pytest.mark.parametrize("variant", ["t2v", "a14b"])
def test_self_prop_is_exact_and_leaves_the_video(tiny_pipes, variant, tmp_path):
    pipe = tiny_pipes[variant]
    ref = pipe(prompt=PROMPT, **tiny_call_kwargs(variant)).frames
    seen, handles = _attn1_inputs(pipe)
    try:
        with attnscope.trace(pipe, words=["cat", "soccer ball"], store=tmp_path / "run", self_prop=True):
            out = pipe(prompt=PROMPT, **tiny_call_kwargs(variant)).frames
    finally:
        for h in handles:
            h.remove()
    assert np.array_equal(ref, out), "capturing self_prop changed the video"
    run = attnscope.open_run(tmp_path / "run")
    assert run.self_prop is not None and run.self_prop.dims == run.maps.dims
    assert run.meta["capture"]["self_prop"] is True
    n_layers = len(pipe.transformer.blocks)
    step = 0  # the first step runs on `transformer` in both variants; its cond pass is the first forward
    assert run.meta["steps"][step]["expert"] == "transformer"
    f, y, x = (run.maps.sizes[d] for d in ("frame", "y", "x"))
    for layer in range(n_layers):
        _, hidden, rotary = seen[layer]
        a = _brute_self_attention(pipe.transformer.blocks[layer].attn1, hidden, rotary)  # [S, S]
        maps = torch.from_numpy(run.maps.isel(step=step, layer=layer).values.astype(np.float64))
        maps = maps.reshape(*maps.shape[:2], f * y * x)  # [H, W, S]
        expected = torch.einsum("st,hwt->hws", a, maps)
        stored = run.self_prop.isel(step=step, layer=layer).values.reshape(expected.shape)
        np.testing.assert_allclose(stored, expected.numpy(), rtol=3e-3, atol=3e-5)
    # the maps are propagated, not copied: self-attention mixes tokens
    assert not np.allclose(run.self_prop.values, run.maps.values, atol=1e-4)
    for block in pipe.transformer.blocks:
        assert type(block.attn1.processor).__name__ == "WanAttnProcessor"


def test_propagate_matches_the_explicit_matrix_and_keeps_constants():
    g = torch.Generator().manual_seed(0)
    s, h1, d, h2, w = 70, 3, 8, 2, 4
    q, k = torch.randn(s, h1, d, generator=g), torch.randn(s, h1, d, generator=g)
    maps = torch.rand(h2, w, s, generator=g)
    a = torch.softmax(torch.einsum("shd,thd->hst", q.double(), k.double()) / math.sqrt(d), -1).mean(0)
    torch.testing.assert_close(propagate(q, k, maps).double(), torch.einsum("st,hwt->hws", a, maps.double()),
                               rtol=1e-5, atol=1e-6)
    # rows of the head-mean attention sum to one: a constant map stays constant
    torch.testing.assert_close(propagate(q, k, torch.full((h2, w, s), 0.25)), torch.full((h2, w, s), 0.25))


def test_propagate_in_query_blocks_equals_one_block(monkeypatch):
    from attnscope.capture import selfattn

    g = torch.Generator().manual_seed(1)
    q, k, maps = torch.randn(50, 2, 8, generator=g), torch.randn(50, 2, 8, generator=g), torch.rand(3, 2, 50)
    whole = propagate(q, k, maps)
    monkeypatch.setattr(selfattn, "BLOCK_ELEMENTS", 7 * 50 * 2)  # blocks of 7 queries, the last one short
    monkeypatch.setattr(selfattn, "MIN_BLOCK", 1)
    torch.testing.assert_close(propagate(q, k, maps), whole)


def test_half_precision_path_matches_float32():
    """The CUDA path (float16 fused attention, D map columns per call, zero-padded) on the CPU: same maps to
    float16 precision, with more columns than one call takes and a last call that needs padding."""
    g = torch.Generator().manual_seed(2)
    s, h1, d, h2, w = 96, 2, 8, 3, 5  # 15 map columns: calls of 8 and 7 (padded to 8)
    q = torch.randn(s, h1, d, generator=g).to(torch.bfloat16)
    k = torch.randn(s, h1, d, generator=g).to(torch.bfloat16)
    maps = torch.rand(h2, w, s, generator=g)
    exact = propagate(q, k, maps, half=False)
    fast = propagate(q, k, maps, half=True)
    assert fast.dtype == torch.float32 and fast.shape == exact.shape == (h2, w, s)
    torch.testing.assert_close(fast, exact, rtol=5e-3, atol=1e-3)


def test_self_prop_kept_at_chosen_steps_equals_every_step_there(tiny_pipes, tmp_path):
    """self_prop_steps: the kept steps hold exactly what an every-step capture holds, the others stay unwritten,
    readers average only the kept steps and name them when asked for another; the video does not change."""
    from attnscope.errors import SelectionError
    from attnscope.render import select

    pipe = tiny_pipes["t2v"]
    with attnscope.trace(pipe, words=["cat"], store=tmp_path / "all", self_prop=True):
        every = pipe(prompt=PROMPT, **tiny_call_kwargs("t2v")).frames  # three steps
    with attnscope.trace(pipe, words=["cat"], store=tmp_path / "late", self_prop=True, self_prop_steps="1-2"):
        late = pipe(prompt=PROMPT, **tiny_call_kwargs("t2v")).frames
    assert np.array_equal(every, late)
    full, part = attnscope.open_run(tmp_path / "all"), attnscope.open_run(tmp_path / "late")
    assert part.meta["capture"]["self_prop_steps"] == [1, 2] and part.steps_of("self_prop") == [1, 2]
    assert part.steps_of("maps") == full.steps_of("self_prop") == [0, 1, 2]
    np.testing.assert_array_equal(part.self_prop.isel(step=[1, 2]).values, full.self_prop.isel(step=[1, 2]).values)
    assert np.isnan(part.self_prop.isel(step=0).values).all()
    np.testing.assert_array_equal(part.maps.values, full.maps.values)
    mean = select(part, "cat", "mean", "mean", "mean", estimator="self-prop").values
    by_hand = full.self_prop.sel(word="cat").isel(step=[1, 2]).astype("float32").mean(("step", "layer", "head"))
    np.testing.assert_allclose(mean, by_hand.values, rtol=1e-6)
    with pytest.raises(SelectionError, match="kept it at steps 1, 2 only"):
        select(part, "cat", 0, "mean", "mean", estimator="self-prop")
    assert select(part, "cat", 0, "mean", "mean").shape == mean.shape  # raw maps are there at every step


def test_generate_keeps_self_prop_where_the_models_recommended_view_reads(tiny_pipes, tmp_path):
    from attnscope.render.preset import preset_steps

    assert preset_steps(None, 20) == "all"  # a model nobody measured: every step
    toy = preset_steps("toy", 20)  # the shipped preset's step_fraction
    assert toy == "all" or (toy == list(range(toy[0], 20)) and 0 < toy[0] < 20)
    run = attnscope.generate(tiny_pipes["t2v"], PROMPT, tmp_path / "g", words=["cat"], self_prop=True, quiet=True,
                             num_inference_steps=2, num_frames=9, height=32, width=64)
    assert run.meta["capture"]["self_prop_steps"] == "all" and run.steps_of("self_prop") == run.steps_done
