"""The compact store (uint8 codes, one scale per map): reads back as float16 within the bound meta.json states,
through every writer; lossless stays the default; runs written with the old codec still open."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr
from zarr.codecs import BloscCodec

from attnscope.store import open_run
from attnscope.store.compact import MAX_ABS_ERROR, encode_slabs
from attnscope.store.inline import open_writer
from attnscope.store.writer import summaries_of

LAYERS, HEADS, WORDS, GRID = [0, 1], [0, 1, 2], ["a", "b"], (2, 3, 4)


def _write(path, precision, mode="thread", codes=False):
    rng = np.random.default_rng(0)
    w = open_writer(path, {"prompt": "x"}, words=WORDS, layers=LAYERS, heads=HEADS, num_steps=3, grid=GRID,
                    extras=("self_prop",), precision=precision, mode=mode)
    for step in range(2):
        for layer in LAYERS:
            maps = rng.gamma(0.3, 1e-2, (len(HEADS), len(WORDS), *GRID)).astype(np.float16)
            mass = rng.random((len(HEADS), *GRID)).astype(np.float16)
            slabs = {"maps": torch.from_numpy(maps), "prompt_mass": torch.from_numpy(mass),
                     "self_prop": torch.from_numpy(maps) * 0.5}
            if codes:  # as the capture hands them over when it quantizes on its device: summaries first
                slabs = encode_slabs({**slabs, **summaries_of(slabs["maps"], slabs["prompt_mass"])}, precision)
            w.write(step, layer, slabs.pop("maps"), slabs.pop("prompt_mass"), slabs)
        w.end_step(step, {})
    w.close(complete=True)
    return open_run(path)


@pytest.mark.parametrize("mode,codes", [("thread", False), ("thread", True), ("inline", False), ("inline", True)])
def test_compact_reads_back_within_the_stated_bound(tmp_path, mode, codes):
    exact = _write(tmp_path / "fp16", "fp16")
    compact = _write(tmp_path / "uint8", "uint8", mode, codes)
    assert exact.precision == "fp16" and exact.meta["precision"]["max_abs_error"] == 0
    bound = compact.meta["precision"]["max_abs_error"]
    assert compact.precision == "uint8" and bound == pytest.approx(MAX_ABS_ERROR) and bound < 2.5e-3
    for name in ("maps", "prompt_mass", "self_prop", "head_mean", "head_mean_renorm"):
        want = exact.array(name)[...].astype(np.float32)
        got = compact.array(name)[...]
        assert got.dtype == np.float16 and got.shape == want.shape
        assert np.isnan(got[2]).all(), "an unwritten step reads NaN, as in a lossless run"
        peak = np.abs(want[:2]).max(axis=(-3, -2, -1), keepdims=True)
        slab_peak = np.abs(want[:2]).max(axis=tuple(range(2, want.ndim)), keepdims=True)
        err = np.abs(got[:2].astype(np.float32) - want[:2])
        assert (err <= bound * peak + 1e-12).all(), name  # each map's maximum, so also the slab's
        assert (err <= bound * slab_peak + 1e-12).all(), name
    direct = compact.array("maps")
    np.testing.assert_array_equal(direct[1, 0, 2], compact.maps.values[1, 0, 2])
    np.testing.assert_array_equal(direct.oindex[[0, 1], :, [2], 1], compact.maps.values[:2, :, 2:3, 1])
    assert compact.summary("raw")[:, :, 0].shape == (3, len(LAYERS), *GRID)


def test_compact_store_is_smaller_and_lossless_is_the_default(tmp_path):
    w = open_writer(tmp_path / "d", {}, words=WORDS, layers=LAYERS, heads=HEADS, num_steps=1, grid=GRID)
    assert w.precision == "fp16"
    w.close(complete=False)
    with pytest.raises(ValueError, match="precision"):
        open_writer(tmp_path / "e", {}, words=WORDS, layers=LAYERS, heads=HEADS, num_steps=1, grid=GRID,
                    precision="int4")


def test_a_run_written_with_the_old_codec_still_opens(tmp_path):
    run = _write(tmp_path / "r", "fp16")
    before = run.maps.values
    group = zarr.open_group(tmp_path / "r" / "maps.zarr", mode="r+")
    old = group.create_array("maps_old", shape=before.shape, chunks=(1, 1, *before.shape[2:]), dtype="float16",
                             fill_value=np.nan, compressors=[BloscCodec(cname="zstd", clevel=1, shuffle="bitshuffle")])
    old[...] = before
    del group["maps"]
    (tmp_path / "r" / "maps.zarr" / "maps_old").rename(tmp_path / "r" / "maps.zarr" / "maps")
    np.testing.assert_array_equal(open_run(tmp_path / "r").maps.values, before)


def test_generate_compact_matches_lossless_within_the_bound_and_leaves_the_video_alone(tmp_path):
    """precision="uint8" end to end: codes made in the recorder (on the capture's device), the same video, every
    read value within meta's bound of its map's maximum, and a smaller store."""
    import attnscope
    from attnscope.options import GenerationOptions

    pipe = attnscope.load_pipeline("tiny")
    pipe.set_progress_bar_config(disable=True)
    args = dict(seed=1, quiet=True, self_prop=True)
    exact = attnscope.generate(pipe, "a (red) cat on a (green) ball", tmp_path / "fp16", **args)
    compact = attnscope.generate(pipe, "a (red) cat on a (green) ball", tmp_path / "u8",
                                 **GenerationOptions(compact=True).generate_kwargs(), **args)
    assert compact.meta["precision"]["dtype"] == "uint8" and exact.meta["precision"]["dtype"] == "float16"
    assert (tmp_path / "u8" / "video.mp4").read_bytes() == (tmp_path / "fp16" / "video.mp4").read_bytes()
    bound = compact.meta["precision"]["max_abs_error"]
    for name in ("maps", "self_prop"):
        a = exact.array(name)[...].astype(np.float32)
        b = compact.array(name)[...]
        assert b.dtype == np.float16 and b.shape == a.shape
        peak = a.max(axis=(-3, -2, -1), keepdims=True)
        assert np.all(np.abs(a - b.astype(np.float32)) <= bound * peak + 1e-7), name
        assert np.abs(a - b.astype(np.float32)).max() > 0  # it is quantized, not a copy
    stored = zarr.open_group(str(tmp_path / "u8" / "maps.zarr"), mode="r")
    assert stored["maps"].dtype == np.uint8 and stored["maps_scale"].dtype == np.float32
