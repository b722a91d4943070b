"""The head-mean summary written beside ``maps``, and the fast selection paths that read it or index zarr
directly: each must give what the lazy dask path gives, and runs without a summary must keep working."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from attnscope.render.selection import _select_lazy, resolve, select, summary_block
from attnscope.render.synthetic import make_synthetic_run
from attnscope.store import open_run
from attnscope.store.layout import EPS, SUMMARIES

WORDS = ("circle", "square")
BLOBS = {"circle": (2, 3, 4), "square": (2, 12, 11)}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    make_synthetic_run(root / "new", grid=(5, 16, 16), num_steps=6, layers=4, heads=3, words=WORDS, blobs=BLOBS)
    shutil.copytree(root / "new", root / "old")
    for name in SUMMARIES.values():  # a run written before summaries existed
        shutil.rmtree(root / "old" / "maps.zarr" / name)
    return root


def lazy(run, word, step, layer, head, estimator) -> np.ndarray:
    """The reference: the dask path over ``run.maps``."""
    _, where = resolve(run, word, step, layer, head, estimator)
    return _select_lazy(run, word, [word], where, estimator, ()).values


def close(a: np.ndarray, b: np.ndarray, tol: float = 2e-3) -> bool:
    """Equal up to fp16 rounding of the stored summary (relative to the map's peak)."""
    return float(np.abs(a - b).max()) <= tol * float(np.abs(b).max())


def test_summary_is_the_mean_over_heads_of_the_stored_maps(root):
    run = open_run(root / "new")
    maps = run.array("maps")[:].astype(np.float32)
    mass = run.array("prompt_mass")[:].astype(np.float32)
    raw, renorm = run.summary("raw")[:], run.summary("renorm")[:]
    assert raw.dtype == np.float16 and raw.shape == (6, 4, 2, 5, 16, 16)
    assert run.summary("raw").chunks == (1, 4, 2, 5, 16, 16)  # small: all words and layers of a step together
    np.testing.assert_allclose(raw, maps.mean(2), rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(renorm, (maps / (mass[:, :, :, None] + EPS)).mean(2), rtol=1e-3, atol=1e-6)
    np.testing.assert_array_equal(run.head_mean.values, raw)
    assert run.summary("value-norm") is None


def test_range_means_from_the_summary_equal_direct_means(root):
    run = open_run(root / "new")
    rng = np.random.default_rng(0)
    for estimator in ("raw", "renorm"):
        for word in WORDS:
            block = summary_block(run, word, estimator)
            for _ in range(8):
                s0, s1 = sorted(rng.integers(0, 6, 2))
                l0, l1 = sorted(rng.integers(0, 4, 2))
                step, layer = f"{s0}-{s1}", f"{l0}-{l1}"
                want = lazy(run, word, step, layer, "mean", estimator)
                fast = select(run, word, step, layer, "mean", estimator, summary=lambda w, e, b=block: b).values
                assert close(fast, want), (estimator, word, step, layer)
    scattered = lazy(run, "circle", "0,2,5", "1,3", "mean", "raw")
    loader = lambda w, e: summary_block(run, w, e)  # noqa: E731
    assert close(select(run, "circle", "0,2,5", "1,3", summary=loader).values, scattered)


@pytest.mark.parametrize("head", [0, "0,2", "mean"])
def test_direct_zarr_reads_equal_the_lazy_path(root, head):
    for name in ("new", "old"):
        run = open_run(root / name)
        for step, layer in [(5, 2), ("mean", 1), ("1-4", "mean"), ("mean", "mean")]:
            for estimator in ("raw", "renorm"):
                got = select(run, "square", step, layer, head, estimator)
                want = lazy(run, "square", step, layer, head, estimator)
                assert got.dims == ("frame", "y", "x") and got.attrs["estimator"] == estimator
                assert close(got.values, want, 1e-5), (name, step, layer, head, estimator)  # same fp16 inputs


def test_each_head_kept_equals_the_lazy_path(root):
    run = open_run(root / "new")
    for estimator in ("raw", "renorm"):
        got = select(run, "circle", "1-4", "0,2", "mean", estimator, keep=("head",))
        _, where = resolve(run, "circle", "1-4", "0,2", "mean", estimator)
        want = _select_lazy(run, "circle", ["circle"], where, estimator, ("head",))
        assert got.dims == want.dims == ("head", "frame", "y", "x")
        assert list(got["head"].values) == list(want["head"].values)
        np.testing.assert_allclose(got.values, want.values, rtol=1e-5, atol=1e-7)


def test_head_slider_under_a_range_mean_reads_the_slabs_once(root):
    pytest.importorskip("gradio")
    from attnscope.app.session import Viewer

    viewer = Viewer(root)
    run = viewer.run("new")
    picked = [viewer.selection(run, "square", "mean", "1-2", h) for h in (0, 1, 2)]
    assert viewer._maps.misses == 4  # the three heads and, once, the means of every head
    for h, got in enumerate(picked):
        assert got.attrs["head"] == str(h) and got.dims == ("frame", "y", "x")
        assert close(got.values, lazy(run, "square", "mean", "1-2", h, "raw"), 1e-5)


def test_old_runs_and_new_runs_draw_the_same_picture(root):
    pytest.importorskip("gradio")
    from attnscope.app.explore import Controls, still
    from attnscope.app.session import Viewer

    viewer = Viewer(root)
    assert open_run(root / "old").summary() is None
    for kw in [dict(step_mean=True, layer_mean=True), dict(step_mean=True, step_range="2-5", layer=1),
               dict(layer_mean=True, step=3, estimator="renorm"), dict(step=4, layer=2),
               dict(step_mean=True, head_mean=False, head=1)]:
        c = Controls(word="circle", frame=6, **kw)
        new, old = still(viewer, "new", c), still(viewer, "old", c)
        assert np.abs(new.astype(np.int16) - old.astype(np.int16)).max() <= 2, kw


def test_summary_cache_reads_each_word_once_and_prefetches_the_others(root):
    pytest.importorskip("gradio")
    from attnscope.app.session import Viewer

    viewer = Viewer(root)
    run = viewer.run("new")
    for step, layer in [("mean", "mean"), ("0-2", "mean"), ("mean", "1-3"), ("2-5", "0,3")]:
        viewer.selection(run, "circle", step, layer, "mean")
    viewer._prefetch.submit(lambda: None).result()  # one worker: the prefetches queued before this are done
    assert viewer._summaries.misses == 2  # circle, and square read in the background
    viewer.selection(run, "square", "mean", "mean", "mean")
    viewer.selection(run, "circle", 3, 1, "mean")  # one slab: read from maps, the summary is not needed
    viewer._prefetch.submit(lambda: None).result()
    assert viewer._summaries.misses == 2
    old = viewer.run("old")
    viewer.selection(old, "circle", "mean", "mean", "mean")
    viewer._prefetch.submit(lambda: None).result()
    assert viewer._summaries.misses == 3  # the old run's missing summary, once; nothing to prefetch


def test_a_step_with_missing_layers_gets_the_summary_of_the_layers_it_has(tmp_path):
    from attnscope.store import RunWriter

    rng = np.random.default_rng(1)
    writer = RunWriter(tmp_path / "run", {}, words=["a", "b"], layers=[0, 5, 10], heads=[0, 1], num_steps=2,
                       grid=(2, 3, 4))
    maps = rng.random((2, 2, 2, 3, 4)).astype(np.float16)  # [head, word, F, Y, X]
    mass = np.full((2, 2, 3, 4), 0.5, np.float16)
    for layer in (0, 10):  # layer 5 never arrived (e.g. an interrupted capture)
        writer.write(0, layer, maps, mass)
    writer.end_step(0, {})
    writer.close(complete=False)
    summary = open_run(tmp_path / "run").summary("raw")[0]  # (layer, word, F, Y, X)
    np.testing.assert_allclose(summary[[0, 2]], np.stack([maps.astype(np.float32).mean(0)] * 2), rtol=1e-3)
    assert np.isnan(summary[1]).all()


def test_a_captured_run_gets_summaries_made_on_the_capture_device(tiny_pipes, tmp_path):
    import attnscope

    run = attnscope.generate(tiny_pipes["t2v"], "a red cat playing with a ball", tmp_path / "r", words=["cat", "ball"],
                             quiet=True, num_frames=9, height=32, width=64, num_inference_steps=3)
    maps = run.array("maps")[:].astype(np.float32)
    mass = run.array("prompt_mass")[:].astype(np.float32)
    np.testing.assert_allclose(run.summary("raw")[:], maps.mean(2), rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(run.summary("renorm")[:], (maps / (mass[:, :, :, None] + EPS)).mean(2), rtol=1e-3,
                               atol=1e-6)


def test_opening_a_run_starts_reading_its_first_words_summary(root):
    pytest.importorskip("gradio")
    from attnscope.app.handlers import Handlers
    from attnscope.app.session import Viewer

    viewer = Viewer(root)
    assert Handlers(viewer).open("new")[-1] == ""
    viewer._prefetch.submit(lambda: None).result()  # one worker: the prefetch queued by open is done
    assert viewer._summaries.misses == 1
    viewer.selection(viewer.run("new"), "circle", "mean", "mean", "mean")
    viewer._prefetch.submit(lambda: None).result()
    assert viewer._summaries.misses == 2, "circle was read once (at open), then square in the background"


def test_summary_chunks_hold_one_word_when_a_words_slab_is_large():
    from attnscope.store.writer import summary_words

    assert summary_words(30, 8, (21, 30, 52)) == 1  # Wan2.1-1.3B 480p: 2 MB per word
    assert summary_words(8, 11, (5, 16, 16)) == 11  # the toy model: 20 KB per word
    assert summary_words(8, 200, (5, 16, 16)) == 51  # up to 1 MB per chunk


@pytest.mark.parametrize("deferred", [True, False])
def test_small_runs_write_summaries_at_close_large_ones_per_step(tmp_path, monkeypatch, deferred):
    import attnscope.store.runstore as writer_module
    from attnscope.store import RunWriter

    if not deferred:
        monkeypatch.setattr(writer_module, "DEFER_SUMMARY_BYTES", 0)
    rng = np.random.default_rng(0)
    writer = RunWriter(tmp_path / "r", {"prompt": "x"}, words=["a", "b"], layers=[0, 1], heads=[0, 1, 2],
                       num_steps=3, grid=(2, 4, 4))
    maps = rng.random((3, 2, 2, 4, 4)).astype(np.float16)
    mass = rng.random((3, 2, 4, 4)).astype(np.float16)
    for step in range(2):
        for layer in (0, 1):
            writer.write(step, layer, maps, mass)
        writer.end_step(step, {})
    writer.flush()
    during = open_run(tmp_path / "r")
    assert (during.summary("raw") is None) == deferred  # in progress: a small run's readers use the slabs
    assert np.isfinite(select(during, "a", step="0-1")).all()
    writer.close(complete=False)
    after = open_run(tmp_path / "r").summary("raw")[:]
    np.testing.assert_allclose(after[:2], np.broadcast_to(maps.astype(np.float32).mean(0), (2, 2, 2, 2, 4, 4)),
                               rtol=1e-3)
    assert np.isnan(after[2]).all(), "the step never written stays empty"
