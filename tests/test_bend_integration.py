"""Bends inside the real capture processors, on the tiny Wan pipeline."""

from __future__ import annotations

import numpy as np
import pytest

import attnscope
from conftest import tiny_call_kwargs

PROMPT = "a red cat playing with a soccer ball"


def _run(pipe, tmp_path, name, bends=None, words=("cat", "ball"), **kw):
    with attnscope.trace(pipe, words=list(words), store=tmp_path / name, bends=bends):
        frames = pipe(prompt=PROMPT, **tiny_call_kwargs("t2v", **kw)).frames
    return frames, attnscope.open_run(tmp_path / name)


def test_identity_recipe_is_bit_identical(tiny_pipes, tmp_path):
    pipe = tiny_pipes["t2v"]
    base, base_run = _run(pipe, tmp_path, "base")
    identity = [{"target": "attention", "op": "reweight", "word": "cat", "scale": 1.0},
                {"target": "attention", "op": "translate", "word": "cat", "dx": 0.0, "dy": 0.0}]
    bent, bent_run = _run(pipe, tmp_path, "id", bends=identity)
    assert np.array_equal(base, bent)
    np.testing.assert_array_equal(base_run.maps.values, bent_run.maps.values)
    assert bent_run.meta["bends"] and bent_run.meta["bends"][0]["op"] == "reweight"


def test_reweight_zero_removes_the_word_and_changes_the_video(tiny_pipes, tmp_path):
    pipe = tiny_pipes["t2v"]
    base, _ = _run(pipe, tmp_path, "base")
    bent, run = _run(pipe, tmp_path, "zero", bends=[{"target": "attention", "op": "reweight", "word": "cat",
                                                      "scale": 0.0}])
    assert np.all(run.maps.sel(word="cat").values == 0)
    assert np.all(run.maps.sel(word="ball").values > 0)
    assert not np.array_equal(base, bent)


def test_bends_outside_their_steps_and_branch_leave_calls_untouched(tiny_pipes, tmp_path):
    pipe = tiny_pipes["t2v"]
    _, base = _run(pipe, tmp_path, "base")
    late = [{"target": "attention", "op": "reweight", "word": "cat", "scale": 0.0, "steps": [2]}]
    _, run = _run(pipe, tmp_path, "late", bends=late)
    np.testing.assert_array_equal(run.maps.sel(step=[0, 1]).values, base.maps.sel(step=[0, 1]).values)
    assert np.all(run.maps.sel(step=2, word="cat").values == 0)
    uncond = [{"target": "attention", "op": "reweight", "word": "cat", "scale": 0.0, "branch": "uncond",
               "steps": [1, 2]}]
    _, run = _run(pipe, tmp_path, "uncond", bends=uncond)
    # the captured (cond) maps are untouched at step 0 and 1: the uncond branch only affects later latents
    np.testing.assert_array_equal(run.maps.sel(step=[0, 1]).values, base.maps.sel(step=[0, 1]).values)
    layer = [{"target": "attention", "op": "reweight", "word": "cat", "scale": 0.0, "layers": [1]}]
    _, run = _run(pipe, tmp_path, "layer", bends=layer)
    np.testing.assert_array_equal(run.maps.sel(step=0, layer=0).values, base.maps.sel(step=0, layer=0).values)
    assert np.all(run.maps.sel(layer=1, word="cat").values == 0)


def test_translate_moves_the_captured_map(tiny_pipes, tmp_path):
    pipe = tiny_pipes["t2v"]
    kw = dict(height=64, width=128)  # 4 x 8 token grid
    _, base = _run(pipe, tmp_path, "base", **kw)
    shift = [{"target": "attention", "op": "translate", "word": "cat", "dx": 0.25, "dy": 0.0, "steps": [0],
              "renormalize": False}]
    _, run = _run(pipe, tmp_path, "shift", bends=shift, **kw)
    before = base.maps.sel(step=0, word="cat").values.astype(np.float64)
    after = run.maps.sel(step=0, word="cat").values.astype(np.float64)
    width = before.shape[-1]
    np.testing.assert_allclose(after[..., 2:], before[..., : width - 2], rtol=2e-3, atol=1e-6)
    assert np.all(after[..., :2] == 0)


def test_bad_recipe_fails_before_generation(tiny_pipes, tmp_path):
    pipe = tiny_pipes["t2v"]
    from attnscope.bend.recipe import BendRecipeError

    with pytest.raises(BendRecipeError, match="swirl"):
        attnscope.trace(pipe, store=tmp_path / "x", bends=[{"target": "attention", "op": "swirl", "word": "cat"}])
    with pytest.raises(BendRecipeError, match="dog"), attnscope.trace(
            pipe, store=tmp_path / "y", bends=[{"target": "attention", "op": "reweight", "word": "dog", "scale": 2}]):
        pipe(prompt=PROMPT, **tiny_call_kwargs("t2v"))
    assert not (tmp_path / "y" / "maps.zarr").exists()


def test_a_bent_generation_hands_freed_memory_back(tiny_pipes, tmp_path, monkeypatch):
    import attnscope.tracing
    from attnscope.memory import release_freed_memory

    calls = []
    monkeypatch.setattr(attnscope.tracing, "release_freed_memory", lambda: calls.append(1) or True)
    pipe = tiny_pipes["t2v"]
    _run(pipe, tmp_path, "plain")
    assert calls == [], "a plain generation leaves the allocator alone"
    _run(pipe, tmp_path, "bent", bends=[{"target": "attention", "op": "reweight", "word": "cat", "scale": 0.5}])
    assert calls == [1], "after a bent one the freed arenas go back to the OS"
    import ctypes.util
    import platform

    if platform.system() == "Linux" and "glibc" in " ".join(platform.libc_ver()) and ctypes.util.find_library("c"):
        assert release_freed_memory() is True


def test_latent_translate_moves_the_block_output_too(tiny_pipes, tmp_path):
    pipe = tiny_pipes["t2v"]
    maps_only = [{"target": "attention", "op": "translate", "word": "cat", "dx": 0.25, "layers": [0]}]
    plain, _ = _run(pipe, tmp_path, "plain", bends=maps_only)
    moved, run = _run(pipe, tmp_path, "latent", bends=[{**maps_only[0], "latent": True}])
    assert not np.array_equal(plain, moved)  # the block's output moved as well as the maps
    assert run.meta["bends"][0]["latent"] is True
    with pytest.raises(attnscope.AttnscopeError, match="latent"):
        _run(pipe, tmp_path, "bad", bends=[{"target": "activation", "op": "translate", "dx": 0.25, "latent": True}])
