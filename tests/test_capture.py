"""Capture is exact and leaves the video untouched, on all four Wan variants."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import attnscope
from attnscope.errors import PromptTooLongError, RunExistsError, SelectionError, WordNotFoundError
from conftest import tiny_call_kwargs

PROMPT = "a red cat playing with a soccer ball and a cat"
VARIANTS = ["t2v", "i2v", "ti2v", "a14b"]


def _attn2_inputs(pipe):
    """Record the inputs of every attn2 call (cond pass of each step) with plain forward pre-hooks."""
    seen, handles = [], []
    for expert in ("transformer", "transformer_2"):
        model = getattr(pipe, expert, None)
        if model is None:
            continue
        for layer, block in enumerate(model.blocks):
            def hook(module, args, kwargs, layer=layer, expert=expert):
                seen.append((expert, layer, args[0].detach().clone(), args[1].detach().clone()))
            handles.append(block.attn2.register_forward_pre_hook(hook, with_kwargs=True))
    return seen, handles


def _brute_force(attn, x, ctx, token_sets, n_real):
    """softmax(norm_q(to_q(x)) · norm_k(to_k(ctx_text))ᵀ / √d) over all 512 text keys, float64."""
    ctx = ctx[:, -512:]  # I2V: image tokens come first and have their own softmax
    with torch.no_grad():
        q = attn.norm_q(attn.to_q(x))[0].unflatten(-1, (attn.heads, -1)).double()
        k = attn.norm_k(attn.to_k(ctx))[0].unflatten(-1, (attn.heads, -1)).double()
    p = torch.softmax(torch.einsum("shd,lhd->hsl", q, k) / math.sqrt(q.shape[-1]), dim=-1)
    maps = torch.stack([p[..., idx].sum(-1) for idx in token_sets], dim=1)  # [H, W, S]
    return maps, p[..., :n_real].sum(-1)


@pytest.mark.parametrize("variant", VARIANTS)
def test_video_identical_and_maps_exact(tiny_pipes, variant, tmp_path):
    pipe = tiny_pipes[variant]
    ref = pipe(prompt=PROMPT, **tiny_call_kwargs(variant)).frames
    seen, handles = _attn2_inputs(pipe)
    try:
        with attnscope.trace(pipe, words=["cat", "soccer ball"], store=tmp_path / "run"):
            out = pipe(prompt=PROMPT, **tiny_call_kwargs(variant)).frames
    finally:
        for h in handles:
            h.remove()
    assert np.array_equal(ref, out), "tracing changed the video"
    run = attnscope.open_run(tmp_path / "run")
    assert run.complete and run.words == ["cat", "soccer ball", "cat (2)"]
    assert run.steps_done == [0, 1, 2]
    token_sets = [w["token_indices"] for w in run.meta["words"]]
    n_layers = len(pipe.transformer.blocks)
    cfg_calls = 2 * n_layers  # cond then uncond per step
    for step in range(3):
        expert = run.meta["steps"][step]["expert"]
        calls = [c for c in seen if c[0] == expert]
        base = sum(1 for s in run.meta["steps"][:step] if s["expert"] == expert) * cfg_calls
        for layer in range(n_layers):
            _, _, x, ctx = calls[base + layer]
            attn = getattr(pipe, expert).blocks[layer].attn2
            maps, mass = _brute_force(attn, x, ctx, token_sets, run.meta["prompt_tokens"])
            f, y, xx = run.maps.sizes["frame"], run.maps.sizes["y"], run.maps.sizes["x"]
            stored = run.maps.isel(step=step, layer=layer).values.reshape(maps.shape[0], len(token_sets), f * y * xx)
            np.testing.assert_allclose(stored, maps.numpy(), rtol=2e-3, atol=2e-5)
            stored_mass = run.prompt_mass.isel(step=step, layer=layer).values.reshape(mass.shape)
            np.testing.assert_allclose(stored_mass, mass.numpy(), rtol=2e-3, atol=2e-5)
    if variant == "a14b":
        assert {s["expert"] for s in run.meta["steps"]} == {"transformer", "transformer_2"}
    # processors restored
    for expert in ("transformer", "transformer_2"):
        model = getattr(pipe, expert, None)
        if model is not None:
            assert all(type(b.attn2.processor).__name__ == "WanAttnProcessor" for b in model.blocks)


def test_phrases_sum_tokens_and_repeats_are_separate(tiny_pipes, tmp_path):
    pipe = tiny_pipes["t2v"]
    with attnscope.trace(pipe, words=["soccer", "ball", "soccer ball", "cat"], store=tmp_path / "r"):
        pipe(prompt=PROMPT, **tiny_call_kwargs("t2v"))
    run = attnscope.open_run(tmp_path / "r")
    maps = run.maps.astype("float32")
    summed = maps.sel(word="soccer") + maps.sel(word="ball")
    np.testing.assert_allclose(maps.sel(word="soccer ball").values, summed.values, rtol=2e-3, atol=1e-5)
    words = {w["label"]: w["token_indices"] for w in run.meta["words"]}
    assert words["cat"] != words["cat (2)"]
    assert not np.allclose(maps.sel(word="cat").values, maps.sel(word="cat (2)").values)


def test_selections_keep_exactly_what_they_name(tiny_pipes, tmp_path):
    pipe = tiny_pipes["t2v"]
    with attnscope.trace(pipe, words=["cat"], store=tmp_path / "all"):
        pipe(prompt=PROMPT, **tiny_call_kwargs("t2v"))
    with attnscope.trace(pipe, words=["cat"], store=tmp_path / "sel", heads=[1], layers=[0, 2], steps=[1]):
        pipe(prompt=PROMPT, **tiny_call_kwargs("t2v"))
    with attnscope.trace(pipe, words=["cat"], store=tmp_path / "mean", heads="mean"):
        pipe(prompt=PROMPT, **tiny_call_kwargs("t2v"))
    full, sel, mean = (attnscope.open_run(tmp_path / n) for n in ("all", "sel", "mean"))
    assert sel.maps.coords["head"].values.tolist() == [1]
    assert sel.maps.coords["layer"].values.tolist() == [0, 2]
    assert sel.steps_done == [1] and sel.complete
    assert np.isnan(sel.maps.sel(step=0).values).all()
    np.testing.assert_array_equal(sel.maps.sel(step=1).values, full.maps.sel(step=[1], layer=[0, 2], head=[1]).values[0])
    expected = full.maps.astype("float32").mean("head").values
    np.testing.assert_allclose(mean.maps.isel(head=0).values, expected, rtol=2e-3, atol=1e-5)


def test_interrupted_run_reopens(tiny_pipes, tmp_path):
    pipe = tiny_pipes["t2v"]

    def stop(pipeline, step, t, kwargs):
        if step == 1:
            raise KeyboardInterrupt
        return kwargs

    with pytest.raises(KeyboardInterrupt), attnscope.trace(pipe, words=["cat"], store=tmp_path / "r"):
        pipe(prompt=PROMPT, callback_on_step_end=stop, **tiny_call_kwargs("t2v"))
    run = attnscope.open_run(tmp_path / "r")
    assert not run.complete
    assert run.steps_done == [0, 1]
    assert np.isfinite(run.maps.sel(step=[0, 1]).values).all()
    assert np.isnan(run.maps.sel(step=2).values).all()


def test_bad_input_fails_before_generation(tiny_pipes, tmp_path):
    pipe = tiny_pipes["t2v"]
    with pytest.raises(WordNotFoundError, match="'dog' is not in the prompt.*its words are: a, red, cat"), \
            attnscope.trace(pipe, words=["dog"], store=tmp_path / "r"):
        pipe(prompt=PROMPT, **tiny_call_kwargs("t2v"))
    assert not (tmp_path / "r" / "maps.zarr").exists()
    with pytest.raises(PromptTooLongError, match="512"), attnscope.trace(pipe, store=tmp_path / "long") as tr:
        tr.prompt(" ".join(["cat"] * 600))
    with pytest.raises(SelectionError):
        attnscope.trace(pipe, heads="some")
    with attnscope.trace(pipe, words=["cat"], store=tmp_path / "ok"):
        pipe(prompt=PROMPT, **tiny_call_kwargs("t2v"))
    with pytest.raises(RunExistsError, match="--overwrite"), attnscope.trace(pipe, words=["cat"], store=tmp_path / "ok"):
        pipe(prompt=PROMPT, **tiny_call_kwargs("t2v"))
    assert attnscope.open_run(tmp_path / "ok").complete
