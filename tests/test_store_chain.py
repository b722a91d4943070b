"""Step chains (attnscope.store.chain): a compact run's per-head codes stored as differences from the step before
read back exactly, for every kind of selection, in any order, and make the store smaller."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from attnscope.store import open_run
from attnscope.store.chain import ATTR, ChainEncoder, StepChained
from attnscope.store.compact import dequantize, quantize
from attnscope.store.inline import open_writer

STEPS, LAYERS = 25, 2  # 25 steps: three chains of GROUP = 10


def _codes(rng, steps=STEPS, shape=(LAYERS, 3, 4, 5)) -> np.ndarray:
    """Codes that drift slowly from step to step, as a denoising run's do (and wrap past 255 now and then)."""
    start = rng.integers(0, 256, shape)
    drift = rng.integers(-3, 4, (steps, *shape)).cumsum(0)
    return ((start + drift) % 256).astype(np.uint8)


def _chained(tmp_path, codes: np.ndarray, written, finished=()) -> StepChained:
    array = zarr.create_array(tmp_path / "a.zarr", shape=codes.shape, chunks=(1, 1, *codes.shape[2:]), dtype="uint8",
                              fill_value=0, attributes={ATTR: 10})
    encoder = ChainEncoder(10)
    for step in written:
        for layer in range(codes.shape[1]):
            array[step, layer] = encoder.encode("maps", step, layer, codes[step, layer])
    return StepChained(zarr.open_array(tmp_path / "a.zarr", mode="r"), array.attrs[ATTR], finished)


def test_every_selection_reads_the_codes_back(tmp_path):
    codes = _codes(np.random.default_rng(0))
    view = _chained(tmp_path, codes, range(STEPS))
    for sel in [(..., ), (3,), (-1,), (slice(None, None, 4),), (slice(8, 13), 1), (12, 0, 2), (24, slice(None), 1, 2),
                (slice(2, 22, 5), 1, ..., 3)]:
        np.testing.assert_array_equal(view[sel], codes[sel], err_msg=repr(sel))
    for sel in [([0, 9, 10, 24], [1]), ([21, 3], slice(None), [0, 2]), (np.array([15, 11, 19]), 0)]:
        want = codes[np.ix_(*[np.atleast_1d(np.arange(n)[s]) for s, n in zip(sel, codes.shape, strict=False)])]
        got = view.oindex[sel]
        np.testing.assert_array_equal(got.reshape(want.shape), want, err_msg=repr(sel))
    np.testing.assert_array_equal(np.asarray(view), codes)


@pytest.mark.parametrize("cache", [True, False])
def test_walks_forward_and_back_stay_exact_and_decode_each_chunk_once(tmp_path, cache):
    codes = _codes(np.random.default_rng(1))
    view = _chained(tmp_path, codes, range(STEPS), finished=range(STEPS) if cache else ())
    reads = []
    stored = view.stored

    class Counting:
        def __getitem__(self, sel):
            reads.append(sel[0])
            return stored[sel]

        @property
        def oindex(self):
            raise AssertionError("one layer is read as a slice")

    view.stored = Counting()
    order = [*range(STEPS - 1, -1, -1), *range(STEPS), 5, 5, 14, 3, 19, 20, 9]
    for step in order:
        np.testing.assert_array_equal(view[step, 1], codes[step, 1], err_msg=f"step {step}")
        np.testing.assert_array_equal(view[step, 1, 2], codes[step, 1, 2], err_msg=f"step {step}, one head")
    chunks = sum(len(range(*r.indices(STEPS))) for r in reads)
    if cache:  # the first read of each chain decodes it up to that step; everything after comes from memory
        assert chunks == STEPS
    else:
        assert chunks > 5 * STEPS


def test_steps_written_after_the_reader_opened_are_read_afresh(tmp_path):
    """A live run: steps not yet finished when the reader opened are never served from its memory."""
    codes = _codes(np.random.default_rng(4))
    array = zarr.create_array(tmp_path / "a.zarr", shape=codes.shape, chunks=(1, 1, *codes.shape[2:]), dtype="uint8",
                              fill_value=0, attributes={ATTR: 10})
    encoder = ChainEncoder(10)

    def write(step):
        for layer in range(LAYERS):
            array[step, layer] = encoder.encode("maps", step, layer, codes[step, layer])

    for step in range(4):
        write(step)
    view = StepChained(zarr.open_array(tmp_path / "a.zarr", mode="r"), 10, finished=range(4))
    np.testing.assert_array_equal(view[:8], np.concatenate([codes[:4], np.repeat(codes[3:4], 4, 0)]))
    for step in range(4, 8):
        write(step)
    np.testing.assert_array_equal(view[5], codes[5])
    np.testing.assert_array_equal(view[:8], codes[:8])


def test_unwritten_steps_add_nothing_and_chains_restart(tmp_path):
    codes = _codes(np.random.default_rng(2))
    written = [0, 2, 3, 7, 11, 12, 20, 24]
    view = _chained(tmp_path, codes, written)
    for step in written:
        np.testing.assert_array_equal(view[step], codes[step])
    stored = zarr.open_array(tmp_path / "a.zarr", mode="r")
    for first_of_chain in (0, 11, 20):  # a chain's first written step is stored as it is
        np.testing.assert_array_equal(stored[first_of_chain], codes[first_of_chain])
    np.testing.assert_array_equal(stored[3], codes[3] - codes[2])  # modulo 256
    assert not np.array_equal(stored[12], codes[12])


def test_steps_out_of_order_are_refused():
    encoder = ChainEncoder()
    encoder.encode("maps", 4, 0, np.zeros(3, np.uint8))
    with pytest.raises(RuntimeError, match="in order"):
        encoder.encode("maps", 4, 0, np.zeros(3, np.uint8))


def test_a_compact_run_chains_its_per_head_arrays_exactly_and_is_smaller(tmp_path):
    """Through the writer: per-head arrays chained, summaries not, reads equal to unchained codes' decoding, and
    correlated steps take fewer bytes than as plain codes."""
    rng = np.random.default_rng(3)
    grid, heads, words = (4, 24, 24), [0, 1], ["a", "b"]
    base = rng.gamma(0.5, 1e-2, (len(heads), len(words), *grid))
    writer = open_writer(tmp_path / "r", {}, words=words, layers=[0], heads=heads, num_steps=12, grid=grid,
                         precision="uint8")
    exact = []
    for step in range(12):
        maps = (base * (1 + 0.02 * step) + rng.gamma(0.5, 2e-5, base.shape)).astype(np.float16)
        exact.append(maps)
        writer.write(step, 0, maps, np.full((len(heads), *grid), 0.5, np.float16))
        writer.end_step(step, {})
    writer.close(complete=True)
    run = open_run(tmp_path / "r")
    group = zarr.open_group(tmp_path / "r" / "maps.zarr", mode="r")
    assert group["maps"].attrs[ATTR] == 10 and group["prompt_mass"].attrs[ATTR] == 10
    assert ATTR not in group["head_mean"].attrs and ATTR not in group["maps_scale"].attrs
    assert run.meta["precision"]["step_chain"]["group"] == 10
    codes, scale = quantize(np.stack(exact)[:, None].astype(np.float32))
    want = dequantize(np.asarray(codes), np.asarray(scale))
    np.testing.assert_array_equal(run.array("maps")[...], want)
    np.testing.assert_array_equal(run.maps.values, want)
    np.testing.assert_array_equal(run.maps.isel(step=slice(9, 12), head=1).values, want[9:12, :, 1])
    stored = sum(f.stat().st_size for f in (tmp_path / "r" / "maps.zarr" / "maps").rglob("*") if f.is_file() and f.name != "zarr.json")
    plain = zarr.create_array(tmp_path / "plain.zarr", shape=codes.shape, chunks=group["maps"].chunks, dtype="uint8",
                              fill_value=0, compressors=group["maps"].compressors)
    plain[...] = np.asarray(codes)
    plain_bytes = sum(f.stat().st_size for f in (tmp_path / "plain.zarr").rglob("*") if f.is_file() and f.name != "zarr.json")
    assert stored < 0.8 * plain_bytes, (stored, plain_bytes)
