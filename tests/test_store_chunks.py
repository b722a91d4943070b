"""Whole chunks written past zarr's write path are the bytes zarr writes, and read back as zarr's own."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from attnscope.store.chunks import ChunkWriter
from attnscope.store.runstore import RunStore, compressor


def _pair(tmp_path, dtype: str, chunks=(1, 2, 3, 40)):
    shape = (3, 4, 3, 40)
    made = [zarr.create_array(tmp_path / f"{name}.zarr", shape=shape, chunks=chunks, dtype=dtype,
                              fill_value=0, compressors=[compressor(dtype)], zarr_format=3,
                              config={"write_empty_chunks": True}) for name in ("zarr", "direct")]
    return made


@pytest.mark.parametrize("dtype", ["float16", "uint8", "float32"])
def test_direct_chunks_are_zarrs_own_bytes(tmp_path, dtype):
    by_zarr, direct = _pair(tmp_path, dtype)
    rng = np.random.default_rng(0)
    block = (rng.random((1, 4, 3, 40)) * 200).astype(dtype)
    writer = ChunkWriter(direct)
    assert writer.direct
    by_zarr[1:2] = block
    writer.write((1, 0, 0, 0), block)
    for coords in np.ndindex(1, 2, 1, 1):
        key = direct.metadata.encode_chunk_key((1, *coords[1:]))
        assert (tmp_path / "direct.zarr" / key).read_bytes() == (tmp_path / "zarr.zarr" / key).read_bytes()
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "direct.zarr")[:], by_zarr[:])


def test_a_block_that_is_not_whole_chunks_goes_through_zarr(tmp_path):
    _, arr = _pair(tmp_path, "float16")
    writer = ChunkWriter(arr)
    writer.write((0, 1, 0, 0), np.ones((1, 2, 3, 40), np.float16))  # straddles two chunks along axis 1
    writer.write((2, 0, 0, 0), np.full((1, 2, 3, 40), 2, np.float32))  # another dtype: zarr casts
    out = zarr.open_array(tmp_path / "direct.zarr")[:]
    assert (out[0, 1:3] == 1).all() and (out[0, [0, 3]] == 0).all()
    assert (out[2, :2] == 2).all() and (out[2, 2:] == 0).all()


def test_another_codec_chain_is_written_by_zarr(tmp_path):
    arr = zarr.create_array(tmp_path / "gz.zarr", shape=(2, 5), chunks=(1, 5), dtype="float16",
                            compressors=[zarr.codecs.GzipCodec()], zarr_format=3)
    writer = ChunkWriter(arr)
    assert not writer.direct
    writer.write((1, 0), np.arange(5, dtype=np.float16)[None])
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "gz.zarr")[1], np.arange(5))


def test_a_run_store_writes_its_slabs_directly(tmp_path):
    """The store's per-(step, layer) arrays take the direct path; partial steps and summaries read back too."""
    store = RunStore(tmp_path / "run", {}, words=["a", "b"], layers=[0, 1, 2], heads=[0, 1], num_steps=2,
                     grid=(2, 3, 4))
    assert store._chunk_writers["maps"].direct and store._chunk_writers["prompt_mass"].direct
    rng = np.random.default_rng(1)
    maps = [rng.random((2, 2, 2, 3, 4)).astype(np.float16) for _ in range(3)]
    mass = [rng.random((2, 2, 3, 4)).astype(np.float16) for _ in range(3)]
    store.write_step(0, [0, 1, 2], {"maps": maps, "prompt_mass": mass})
    store.write_step(1, [2], {"maps": maps[:1], "prompt_mass": mass[:1]})
    store.close(True)
    group = zarr.open_group(tmp_path / "run" / "maps.zarr", mode="r")
    np.testing.assert_array_equal(group["maps"][0], np.stack(maps))
    np.testing.assert_array_equal(group["maps"][1, 2], maps[0])
    assert np.isnan(group["maps"][1, :2]).all()
