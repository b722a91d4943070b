"""Probe points: the head-mean self-attention rows of a few query tokens, exact, stored float32, and without
changing the video."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

import attnscope
from attnscope.capture.selfattn import probe_rows, rotate
from attnscope.errors import AttnscopeError, SelectionError
from attnscope.options import GenerationOptions, OptionsError
from conftest import tiny_call_kwargs

PROMPT = "a red cat playing with a soccer ball"
POINTS = [(0, 0, 0), (2, 1, 3), (1, 0, 2)]  # the tiny t2v grid is 3 frames × 2 rows × 4 columns


def _attn1_calls(pipe, tr):
    """(step, branch, layer) -> (hidden_states, rotary_emb) of every attn1 call while ``tr`` traces ``pipe``."""
    seen, handles = {}, []
    for layer, block in enumerate(pipe.transformer.blocks):
        def hook(module, args, kwargs, layer=layer):
            rotary = args[3] if len(args) > 3 else kwargs["rotary_emb"]  # the block passes it positionally
            seen[(tr.state.step, tr.state.branch, layer)] = (args[0].detach().clone(), tuple(r.clone() for r in rotary))
        handles.append(block.attn1.register_forward_pre_hook(hook, with_kwargs=True))
    return seen, handles


def _brute_rows(attn, hidden, rotary, index) -> np.ndarray:
    """Head-mean softmax(q kᵀ/√d) rows at query tokens ``index`` [P, S], float64, from attn1's own modules."""
    with torch.no_grad():
        q = attn.norm_q(attn.to_q(hidden))[:1].unflatten(2, (attn.heads, -1))
        k = attn.norm_k(attn.to_k(hidden))[:1].unflatten(2, (attn.heads, -1))
        q, k = rotate(q, *rotary)[0].double(), rotate(k, *rotary)[0].double()
    logits = torch.einsum("shd,thd->hst", q[index], k) / math.sqrt(q.shape[-1])
    return torch.softmax(logits, dim=-1).mean(0).numpy()


def _traced(pipe, store, **kwargs):
    """The frames of one tiny t2v generation traced with ``kwargs``, and the attn1 inputs it saw."""
    tr = attnscope.trace(pipe, words=["cat"], store=store, **kwargs)
    seen, handles = _attn1_calls(pipe, tr)
    try:
        with tr:
            frames = pipe(prompt=PROMPT, **tiny_call_kwargs("t2v")).frames
    finally:
        for h in handles:
            h.remove()
    return frames, seen


def test_probe_rows_are_exact_sum_to_one_and_leave_the_video(tiny_pipes, tmp_path):
    pipe = tiny_pipes["t2v"]
    ref = pipe(prompt=PROMPT, **tiny_call_kwargs("t2v")).frames
    frames, seen = _traced(pipe, tmp_path / "run", probe_points=POINTS, heads=[0], layers=[1], steps=[0, 2])
    assert np.array_equal(ref, frames), "capturing probe rows changed the video"
    run = attnscope.open_run(tmp_path / "run")
    assert run.meta["capture"]["probe_points"] == [list(p) for p in POINTS] and run.probe_points == POINTS
    rows = run.probe
    assert rows.dims == ("step", "layer", "point", "frame", "y", "x") and rows.dtype == np.float32
    assert rows.sizes == {"step": 3, "layer": 1, "point": 3, "frame": 3, "y": 2, "x": 4}
    assert list(rows["layer"].values) == [1]
    assert np.isnan(rows.sel(step=1).values).all(), "a step the trace did not capture got rows"
    attn = pipe.transformer.blocks[1].attn1
    index = [f * 8 + y * 4 + x for f, y, x in POINTS]
    for step in (0, 2):
        hidden, rotary = seen[(step, "cond", 1)]
        expected = _brute_rows(attn, hidden, rotary, index)  # [P, S], every self-attention head
        stored = run.probe_rows(step=step, layer=1).values.reshape(len(POINTS), -1)
        np.testing.assert_allclose(stored, expected, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(stored.sum(-1), 1.0, atol=1e-5)
        uncond, _ = seen[(step, "uncond", 1)]
        assert not torch.equal(uncond, hidden)  # so the rows above are the cond branch's, not any call's
    one = run.probe_rows(point=(2, 1, 3), step=2, layer=1)
    assert one.dims == ("frame", "y", "x")
    np.testing.assert_array_equal(one.values, run.probe_rows(point=1).sel(step=2, layer=1).values)
    for block in pipe.transformer.blocks:
        assert type(block.attn1.processor).__name__ == "WanAttnProcessor"


def test_probe_rows_beside_self_prop_and_bends_and_in_a_compact_store(tiny_pipes, tmp_path):
    """The rows do not depend on what else is captured: self_prop (at some steps), a compact store, a bend of the
    cross-attention (attn1 is not bent) — and the maps of a probed run equal an unprobed run's."""
    pipe = tiny_pipes["t2v"]
    plain, _ = _traced(pipe, tmp_path / "plain", probe_points=POINTS)
    again, _ = _traced(pipe, tmp_path / "more", probe_points=POINTS, self_prop=True, self_prop_steps="1-2",
                       precision="uint8")
    unprobed, _ = _traced(pipe, tmp_path / "none", self_prop=True, self_prop_steps="1-2", precision="uint8")
    assert np.array_equal(plain, again) and np.array_equal(plain, unprobed)
    a, b, c = (attnscope.open_run(tmp_path / n) for n in ("plain", "more", "none"))
    np.testing.assert_array_equal(a.probe.values, b.probe.values)
    np.testing.assert_array_equal(b.self_prop.values, c.self_prop.values)
    np.testing.assert_array_equal(b.maps.values, c.maps.values)
    assert c.probe is None and c.probe_points == []
    with pytest.raises(SelectionError, match="--probe F,Y,X"):
        c.probe_rows()
    with pytest.raises(SelectionError, match="not a probe point"):
        a.probe_rows(point=(1, 1, 1))


def test_a_bad_probe_point_is_refused_before_anything_runs(tiny_pipes, tmp_path):
    pipe = tiny_pipes["t2v"]
    calls = []
    handle = pipe.transformer.blocks[0].attn1.register_forward_pre_hook(lambda m, a: calls.append(1))
    try:
        tr = attnscope.trace(pipe, store=tmp_path / "bad", probe_points=[(0, 0, 0), (3, 0, 0)])
        with pytest.raises(AttnscopeError, match=r"outside .* grid of 3 frames × 2 rows × 4 columns") as err, tr:
            pipe(prompt=PROMPT, **tiny_call_kwargs("t2v"))
        assert "(3, 0, 0)" in str(err.value) and "(0, 0, 0)" not in str(err.value)
        assert not calls, "the transformer ran a block before the bad point was refused"
        with pytest.raises(AttnscopeError, match="2 rows"):
            attnscope.generate(pipe, PROMPT, tmp_path / "bad2", probe_points=[(0, 2, 0)], quiet=True,
                               num_inference_steps=2, num_frames=9, height=32, width=64)
        assert not calls
    finally:
        handle.remove()
    assert not (tmp_path / "bad").exists() and not (tmp_path / "bad2").exists()
    for block in pipe.transformer.blocks:
        assert type(block.attn1.processor).__name__ == "WanAttnProcessor"
    with pytest.raises(SelectionError, match="list of points"):
        attnscope.trace(pipe, probe_points=(1, 2, 3))
    with pytest.raises(SelectionError, match="three whole numbers"):
        attnscope.trace(pipe, probe_points=[(1, -2, 3)])


def test_probe_row_function_matches_the_explicit_matrix():
    g = torch.Generator().manual_seed(0)
    s, h, d = 40, 3, 8
    q, k = torch.randn(s, h, d, generator=g), torch.randn(s, h, d, generator=g)
    full = torch.softmax(torch.einsum("shd,thd->hst", q.double(), k.double()) / math.sqrt(d), -1).mean(0)
    rows = probe_rows(q, k, [5, 0, 39])
    assert rows.dtype == torch.float32 and rows.shape == (3, s)
    torch.testing.assert_close(rows.double(), full[[5, 0, 39]], rtol=1e-6, atol=1e-7)


def test_generation_options_read_probe_points():
    assert GenerationOptions.from_cli(probe=["1,2,3", " 0, 0,1 "]).generate_kwargs()["probe_points"] == [
        (1, 2, 3), (0, 0, 1)]
    assert "probe_points" not in GenerationOptions().generate_kwargs()
    with pytest.raises(OptionsError, match="--probe: probe point '1,2'"):
        GenerationOptions.from_cli(probe=["1,2"])


def test_cli_probe_flag(tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "attnscope.cli", "generate", "a red cat", "--model", "tiny",
                               *args], cwd=tmp_path, capture_output=True, text=True, timeout=300)

    ok = cli("--out", "r", "--probe", "1,0,1", "--probe", "2,1,0", "--steps", "2")
    assert ok.returncode == 0, ok.stderr
    run = attnscope.open_run(tmp_path / "r")
    assert run.probe_points == [(1, 0, 1), (2, 1, 0)]
    np.testing.assert_allclose(run.probe.sum(("frame", "y", "x")).values, 1.0, atol=1e-5)
    bad = cli("--out", "b", "--probe", "0,0,9")
    assert bad.returncode == 2 and "grid of 3 frames × 2 rows × 2 columns" in bad.stderr
    assert bad.stderr.strip().count("\n") == 0 and not (tmp_path / "b").exists()


def test_probe_rows_on_both_experts_of_a14b(tiny_pipes, tmp_path):
    """Wan2.2 A14B: the steps of the second expert get rows from its own blocks; the video does not change."""
    pipe = tiny_pipes["a14b"]
    ref = pipe(prompt=PROMPT, **tiny_call_kwargs("a14b")).frames
    with attnscope.trace(pipe, words=["cat"], store=tmp_path / "run", probe_points=[(1, 1, 2)]):
        out = pipe(prompt=PROMPT, **tiny_call_kwargs("a14b")).frames
    assert np.array_equal(ref, out)
    run = attnscope.open_run(tmp_path / "run")
    experts = {s["expert"] for s in run.meta["steps"]}
    assert experts == {"transformer", "transformer_2"}
    np.testing.assert_allclose(run.probe.sum(("frame", "y", "x")).values, 1.0, atol=1e-5)
