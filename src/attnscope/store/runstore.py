"""The zarr side of a Run folder: :class:`RunStore` creates it and writes slabs, summaries, previews, meta.json.

Layout (v1, docs/architecture.md): one chunk per (step, layer) slab of every per-slab array, one chunk per (step,
words) of the head-mean summaries, blosc codecs. Where the writer's time went (``scripts/bench_store_write.py``,
docs/benchmarks.md): zarr's check that a chunk is not all fill value (a full pass with NaN comparisons, about
half of its CPU time at 1.3B size), then the codec. Arrays are therefore opened with ``write_empty_chunks``
(every slab is written once and is never empty), and the codec is zstd-1 in 1 MB blocks (:func:`compressor`).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from ..errors import RunExistsError
from .chain import ATTR, CHAINED, GROUP, ChainEncoder
from .chunks import ChunkWriter
from .compact import MAP_DIMS, SCALE, check_precision, precision_meta, quantized
from .layout import (
    FLOAT32_ARRAYS,
    MAPS_DIMS,
    MASS_DIMS,
    PREVIEW_DIMS,
    PROBE,
    PROBE_DIMS,
    SUMMARIES,
    SUMMARY_DIMS,
    is_run,
)

FORMAT = "attnscope.run/1"
SUMMARY_CHUNK_BYTES = 1 << 20
BLOSC_BLOCK = 1 << 20  # bytes per blosc block (compressor)
DEFER_SUMMARY_BYTES = 64 << 20  # summaries up to this size stay in memory until the run closes
WRITE_CONFIG = {"write_empty_chunks": True}  # skip zarr's per-chunk fill-value scan: slabs are never empty


def compressor(dtype: str = "float16") -> BloscCodec:
    """zstd-1 in 1 MB blosc blocks: byte shuffle for float16, bit shuffle for uint8 codes and the rest.

    Measured on a synthetic 1.3B-size step (``scripts/bench_codec.py``, one core): float16 1.26x at 1.3 GB/s
    (lz4 with bit shuffle: 1.19x at the same speed), uint8 codes 2.21x at 0.46 GB/s (zstd-1 in blosc's default
    blocks: 2.10x at 0.37 GB/s). Larger blocks give zstd's entropy stage more to work with per call.
    """
    if dtype == "float16":
        return BloscCodec(cname="zstd", clevel=1, shuffle="shuffle", blocksize=BLOSC_BLOCK)
    return BloscCodec(cname="zstd", clevel=1, shuffle="bitshuffle", blocksize=BLOSC_BLOCK)


def write_meta(path: Path, meta: dict[str, Any]) -> None:
    """Write ``meta.json`` atomically (temp file + rename) so readers never see a partial file."""
    tmp = path / "meta.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1, default=_json_default))
    os.replace(tmp, path / "meta.json")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in meta.json")


def summary_words(layers: int, words: int, grid: tuple[int, int, int]) -> int:
    """Words per summary chunk: one when a word's slab of all layers is large (a viewer reads one word's summary
    without decoding the others'), several up to ``SUMMARY_CHUNK_BYTES`` when it is small (a toy run's would be
    20 KB chunks, whose per-chunk cost the writer would pay on every step)."""
    per_word = layers * grid[0] * grid[1] * grid[2] * 2  # fp16
    return max(1, min(words, SUMMARY_CHUNK_BYTES // per_word))


class RunStore:
    """Creates a Run folder and writes it: slabs, summaries, previews and meta.json.

    Not thread-safe: exactly one thread owns it after creation (the caller creates the arrays, so errors such as
    an existing run are raised synchronously).
    Each step also gets its mean over heads per estimator (``head_mean``, ``head_mean_renorm``; one chunk per
    (step, word) holding all layers), so a viewer averages long step/layer ranges without reading every slab. A
    small run's summaries are written once, at close; until then readers fall back to the slabs.
    ``precision`` is "fp16" (lossless, the default) or "uint8" (compact: :mod:`.compact`). ``probes`` > 0 adds the
    ``probe`` array (step, layer, point, frame, y, x), float32 in either precision (:mod:`.layout`).
    """

    def __init__(
        self,
        path: str | Path,
        meta: dict[str, Any],
        *,
        words: list[str],
        layers: list[int],
        heads: list[int | str],
        num_steps: int,
        grid: tuple[int, int, int],
        extras: tuple[str, ...] = (),
        overwrite: bool = False,
        precision: str = "fp16",
        probes: int = 0,
    ) -> None:
        self.precision = check_precision(precision)
        self.path = Path(path)
        if is_run(self.path):
            if not overwrite:
                raise RunExistsError(
                    f"{self.path} already holds a run; choose another --out or pass --overwrite to replace it"
                )
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.words, self.layers, self.heads = list(words), list(layers), list(heads)
        f, y, x = grid
        n_h, n_w, n_l = len(self.heads), len(self.words), len(self.layers)
        self.meta = dict(meta)
        self.meta.update(format=FORMAT, complete=False, num_steps=num_steps, grid={"frames": f, "height": y, "width": x},
                         layers=self.layers, heads=self.heads, steps=[], precision=precision_meta(precision))
        self.meta.setdefault("words", [{"label": w} for w in self.words])
        write_meta(self.path, self.meta)
        slab = ((num_steps, n_l, n_h, n_w, f, y, x), (1, 1, n_h, n_w, f, y, x), MAPS_DIMS)
        specs = {"maps": slab, "prompt_mass": ((num_steps, n_l, n_h, f, y, x), (1, 1, n_h, f, y, x), MASS_DIMS),
                 **{name: slab for name in extras}}
        if probes:
            specs[PROBE] = ((num_steps, n_l, probes, f, y, x), (1, 1, probes, f, y, x), PROBE_DIMS)
        summary = ((num_steps, n_l, n_w, f, y, x), (1, n_l, summary_words(n_l, n_w, grid), f, y, x), SUMMARY_DIMS)
        self._slab_names = tuple(specs)
        self._specs = self._stored(specs)
        self._summary_specs = self._stored({name: summary for name in SUMMARIES.values()})
        # a small run keeps its summaries in memory and writes each once at close: per-step writes of a few KB
        # would cost the writer a zarr call per array per step, on the CPU beside the denoising loop
        self._deferred = np.prod(summary[0]) * 2 * len(SUMMARIES) <= DEFER_SUMMARY_BYTES
        group = zarr.open_group(self.path / "maps.zarr", mode="w", zarr_format=3)
        for name, spec in {**self._specs, **({} if self._deferred else self._summary_specs)}.items():
            self._create(group, name, spec)
        self.previews: zarr.Array | None = None
        self._open()

    def _stored(self, specs: dict[str, tuple]) -> dict[str, tuple]:
        """(shape, chunks, dims, dtype, fill, attributes) of every stored array: a quantized one is codes plus
        scales, and a quantized per-(step, layer) array's codes are step-chained (:mod:`.chain`)."""
        out = {}
        for name, (shape, chunks, dims) in specs.items():
            if quantized(name, self.precision):
                chained = name in CHAINED and chunks[:2] == (1, 1)
                out[name] = (shape, chunks, dims, "uint8", 0, {ATTR: GROUP} if chained else {})
                # one scale chunk per step (all layers): a few KB, written with the step's codes
                out[name + SCALE] = (shape[:-MAP_DIMS], (1, *shape[1:-MAP_DIMS]), dims[:-MAP_DIMS], "float32", np.nan,
                                     {})
            else:
                out[name] = (shape, chunks, dims, "float32" if name in FLOAT32_ARRAYS else "float16", np.nan, {})
        return out

    @staticmethod
    def _create(group: zarr.Group, name: str, spec: tuple) -> zarr.Array:
        shape, chunks, dims, dtype, fill, attributes = spec
        return group.create_array(name, shape=shape, chunks=chunks, dimension_names=dims, dtype=dtype,
                                  fill_value=fill, compressors=[compressor(dtype)], attributes=attributes)

    def _open(self) -> None:
        self.group = zarr.open_group(self.path / "maps.zarr", mode="r+")
        self.arrays: dict[str, Any] = {name: self.group[name].with_config(WRITE_CONFIG) for name in self._specs}
        for name, (shape, _, _, dtype, fill, _) in self._summary_specs.items():
            self.arrays[name] = (np.full(shape, fill, dtype) if self._deferred
                                 else self.group[name].with_config(WRITE_CONFIG))
        self._stacks: dict[tuple, np.ndarray] = {}
        self._chunk_writers = {name: ChunkWriter(a) for name, a in self.arrays.items() if isinstance(a, zarr.Array)}
        self._chained = {name for name, spec in self._specs.items() if ATTR in spec[5]}
        self._chain = ChainEncoder()

    def write_step(self, step: int, positions: list[int], slabs: dict[str, list[np.ndarray]]) -> int:
        """Write a step's slabs: ``slabs[name]`` lists them for the layers at ``positions`` (indices into
        ``layers``), as stored (float16; a compact run's uint8 codes and float32 scales).

        An array with one chunk per (step, layer) gets each layer's slab as that chunk, encoded and written past
        zarr's write path (:mod:`.chunks`) without a copy to stack the layers; the rest (summaries and scales,
        whose chunks hold every layer) are stacked first. A compact run's per-head codes are stored as differences
        from the step before (:mod:`.chain`), so steps must come in order. Returns the bytes given (the writer's throughput
        counts what it was handed).
        """
        given = sum(value.nbytes for values in slabs.values() for value in values)
        full = list(positions) == list(range(len(self.layers)))
        for name, values in slabs.items():
            writer = self._chunk_writers.get(name)
            if writer is None:  # a small run's summaries, kept in memory
                self.arrays[name][step, positions] = self._stack(name, values)
            elif full and writer.chunks[1] != 1:  # chunks that hold every layer: the step as one block
                writer.write((step, *[0] * (values[0].ndim + 1)), self._stack(name, values)[None])
            else:  # each layer's slab at its place: its own chunk, or (a partial step) a part of one
                for pos, value in zip(positions, values, strict=True):
                    if name in self._chained:
                        value = self._chain.encode(name, step, pos, value)
                    writer.write((step, pos, *[0] * value.ndim), value[None, None])
        return given

    def _stack(self, name: str, values: list[np.ndarray]) -> np.ndarray:
        """The layers' slabs stacked into a buffer kept for the next step (no fresh pages per step)."""
        key = (name, len(values), values[0].shape, values[0].dtype)
        if key not in self._stacks:
            self._stacks[key] = np.empty((len(values), *values[0].shape), values[0].dtype)
        return np.stack(values, out=self._stacks[key])

    def write_preview(self, step: int, frames: np.ndarray) -> None:
        if self.previews is None:
            t, h, w, c = frames.shape
            self.previews = zarr.create_array(
                self.path / "previews.zarr", shape=(self.meta["num_steps"], t, h, w, c),
                chunks=(1, t, h, w, c), dtype="uint8", fill_value=0, dimension_names=PREVIEW_DIMS,
                compressors=[compressor("uint8")], zarr_format=3,
            )
        self.previews[step] = frames

    def record_step(self, entry: dict[str, Any]) -> None:
        """List a step in meta.json (call after its slabs are written)."""
        self.meta["steps"].append(entry)
        write_meta(self.path, self.meta)

    def update_meta(self, items: dict[str, Any]) -> None:
        self.meta.update(items)
        write_meta(self.path, self.meta)

    def close(self, complete: bool) -> None:
        """Write a small run's summaries (runs whose steps never finished get none) and the final meta.json."""
        if self._deferred and self.meta["steps"]:
            for name, spec in self._summary_specs.items():
                self._create(self.group, name, spec)[...] = self.arrays[name]
        self.meta["complete"] = bool(complete)
        write_meta(self.path, self.meta)
