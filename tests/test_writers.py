"""The inline writer stores exactly what the thread writer stores and keeps its guarantees."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import attnscope.store.runstore as writer_module
from attnscope.store import RunWriter, open_run
from attnscope.store.inline import InlineRunWriter, open_writer

WRITERS = {"thread": RunWriter, "inline": InlineRunWriter}
LAYERS, HEADS, WORDS, GRID = [0, 2, 4], [0, 1, 2], ["a", "b"], (2, 3, 4)


def _fill(path, cls, *, steps=4, skip=(), value_norm=True):
    """Write the same run with ``cls``: numpy and CPU-tensor slabs, a step with a missing layer, previews."""
    rng = np.random.default_rng(0)
    extras = ("value_norm",) if value_norm else ()
    w = cls(path, {"prompt": "x"}, words=WORDS, layers=LAYERS, heads=HEADS, num_steps=steps + 1, grid=GRID,
            extras=extras)
    for step in range(steps):
        for layer in LAYERS:
            if (step, layer) in skip:
                continue
            maps = rng.random((len(HEADS), len(WORDS), *GRID), dtype=np.float32)
            mass = rng.random((len(HEADS), *GRID), dtype=np.float32)
            more = {"value_norm": torch.from_numpy(maps).half()} if value_norm else None
            if step % 2:  # host tensors, as the CPU capture passes them
                maps, mass = torch.from_numpy(maps).half(), torch.from_numpy(mass).half()
            w.write(step, layer, maps, mass, more)
        w.write_preview(step, rng.integers(0, 255, (3, 8, 8, 3), dtype=np.uint8))
        w.end_step(step, {"timestep": torch.tensor(900.0 - step), "sigma": 0.5})
    w.flush()
    recorded = w.steps_recorded
    w.close(complete=False)
    return recorded


def _arrays(path):
    import zarr

    out = {name: arr[:] for name, arr in zarr.open_group(path / "maps.zarr", mode="r").arrays()}
    out["previews"] = zarr.open_array(path / "previews.zarr", mode="r")[:]
    return out


@pytest.mark.parametrize("deferred", [True, False])
def test_inline_writer_stores_the_same_arrays_as_the_thread_writer(tmp_path, monkeypatch, deferred):
    if not deferred:
        monkeypatch.setattr(writer_module, "DEFER_SUMMARY_BYTES", 0)  # summaries written per step
    skip = {(1, 2)}  # step 1 lacks layer 2: written layer by layer
    assert [_fill(tmp_path / d, cls, skip=skip) for d, cls in [("t", RunWriter), ("i", InlineRunWriter)]] == [4, 4]
    thread, inline = _arrays(tmp_path / "t"), _arrays(tmp_path / "i")
    assert thread.keys() == inline.keys() >= {"maps", "prompt_mass", "value_norm", "head_mean", "head_mean_renorm"}
    for name in thread:
        np.testing.assert_array_equal(inline[name], thread[name], err_msg=name)  # NaNs (unwritten) compare equal
    assert np.isnan(inline["maps"][1, 1]).all() and np.isfinite(inline["maps"][1, 0]).all()
    meta_t, meta_i = (json.loads((tmp_path / d / "meta.json").read_text()) for d in "ti")
    assert meta_t == meta_i
    assert [s["timestep"] for s in meta_i["steps"]] == [900.0, 899.0, 898.0, 897.0]


@pytest.mark.parametrize("mode", ["thread", "inline"])
def test_flushed_steps_are_readable_while_the_run_goes_on(tmp_path, mode):
    w = WRITERS[mode](tmp_path / "r", {}, words=WORDS, layers=LAYERS, heads=HEADS, num_steps=3, grid=GRID)
    maps, mass = np.full((3, 2, *GRID), 0.25, np.float16), np.full((3, *GRID), 0.5, np.float16)
    for layer in LAYERS:
        w.write(0, layer, maps, mass)
    w.end_step(0, {"timestep": 999})
    w.update_meta(seed=7)
    w.flush()
    run = open_run(tmp_path / "r")
    assert [s["index"] for s in run.meta["steps"]] == [0] and run.meta["seed"] == 7 and w.steps_recorded == 1
    assert float(run.array("maps")[0].max()) == 0.25 and run.meta["complete"] is False
    w.close(complete=True)
    assert open_run(tmp_path / "r").meta["complete"] is True


@pytest.mark.parametrize("mode", ["thread", "inline"])
def test_an_error_in_the_writer_is_raised_at_the_next_call(tmp_path, mode):
    w = WRITERS[mode](tmp_path / "r", {}, words=WORDS, layers=LAYERS, heads=HEADS, num_steps=3, grid=GRID)
    mass = np.zeros((3, *GRID), np.float16)
    for layer in LAYERS:
        w.write(0, layer, np.zeros((3, 2, 9, 9, 9), np.float16), mass)  # the wrong grid: zarr refuses it
    if mode == "inline":  # writes at end_step, so that is the call that fails
        with pytest.raises(RuntimeError, match="fail"):
            w.end_step(0, {})
    else:
        w.end_step(0, {})
    with pytest.raises(RuntimeError, match="fail"):
        w.flush()
    with pytest.raises(RuntimeError, match="fail"):
        w.close(complete=True)
    assert open_run(tmp_path / "r").meta["complete"] is False


def test_auto_mode_is_the_thread_writer_and_the_env_or_mode_chooses(tmp_path, monkeypatch):
    kwargs = dict(words=WORDS, layers=LAYERS, heads=HEADS, num_steps=1, grid=GRID)
    monkeypatch.delenv("ATTNSCOPE_WRITER", raising=False)
    for name, mode, expected in [("a", "auto", RunWriter), ("e", "inline", InlineRunWriter)]:
        w = open_writer(tmp_path / name, {}, mode=mode, **kwargs)
        assert type(w) is expected
        w.close(complete=False)
    monkeypatch.setenv("ATTNSCOPE_WRITER", "inline")
    w = open_writer(tmp_path / "c", {}, **kwargs)
    assert type(w) is InlineRunWriter
    w.close(complete=False)
    for gone in ("fork", "process"):  # the process writer was measured no faster and removed
        with pytest.raises(ValueError, match="writer mode"):
            open_writer(tmp_path / "d", {}, mode=gone, **kwargs)


def test_a_traced_generation_stores_the_same_run_with_either_writer(tiny_pipes, tmp_path):
    from attnscope.tracing import Trace

    pipe = tiny_pipes["t2v"]
    for mode in ("thread", "inline"):
        gen = torch.Generator().manual_seed(0)
        with Trace(pipe, ["cat", "ball"], tmp_path / mode, writer=mode) as tr:
            pipe(prompt=tr.prompt("a red cat playing with a ball"), num_frames=9, height=32, width=64,
                 num_inference_steps=3, generator=gen, output_type="np")
            assert type(tr.writer) is WRITERS[mode]
    thread = open_run(tmp_path / "thread")
    for mode in ("inline",):
        other = open_run(tmp_path / mode)
        assert other.meta["complete"] is True and len(other.meta["steps"]) == 3
        for name in ("maps", "prompt_mass", "head_mean", "head_mean_renorm"):
            np.testing.assert_array_equal(other.array(name)[:], thread.array(name)[:], err_msg=name)
