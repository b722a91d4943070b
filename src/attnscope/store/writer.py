"""Stream captured maps into a Run folder, one (step, layer) slab at a time.

Why streaming: a 50-step Wan2.1 run holds ~10^9 values; keeping them in memory is not an option, and an
interrupted run should leave every finished step readable. ``meta.json`` is rewritten atomically after each step,
so a reader never sees a half-written file.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path
from queue import Queue
from typing import Any

import numpy as np
import torch
import zarr
from zarr.codecs import BloscCodec

from ..errors import RunExistsError
from .layout import EPS, MAPS_DIMS, MASS_DIMS, PREVIEW_DIMS, SUMMARIES, SUMMARY_DIMS, is_run

FORMAT = "attnscope.run/1"
SUMMARY_CHUNK_BYTES = 1 << 20
DEFER_SUMMARY_BYTES = 64 << 20  # summaries up to this size stay in memory until the run closes


def _compressor() -> BloscCodec:
    # zstd level 1 inside blosc with bit shuffle: fast enough to keep up with a GPU; fp16 maps of trained models
    # compress a little (random ones barely), so a heavier level would only cost time.
    return BloscCodec(cname="zstd", clevel=1, shuffle="bitshuffle")


def write_meta(path: Path, meta: dict[str, Any]) -> None:
    """Write ``meta.json`` atomically (temp file + rename) so readers never see a partial file."""
    tmp = path / "meta.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1, default=_json_default))
    os.replace(tmp, path / "meta.json")


def _as_numpy(value) -> np.ndarray:
    value = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
    return value.astype(np.float16, copy=False)  # a view of a pinned buffer: stacked/encoded before release


def summaries_of(maps, mass) -> dict[str, torch.Tensor]:
    """The summaries of slabs ``maps`` [..., head, word, F, Y, X] and ``mass`` [..., head, F, Y, X] (tensors on
    any device, or numpy): the mean over heads per estimator, keyed by array name, [..., word, F, Y, X] float16.

    Inputs are rounded to fp16 first, so a summary is the mean of exactly what the store holds; torch does the
    arithmetic so it runs on the capture's device (on a GPU the writer thread gets the small result) or, on the
    CPU, in parallel outside the GIL.
    """
    m = torch.as_tensor(maps).to(torch.float16).float()
    w = torch.as_tensor(mass).to(torch.float16).float().unsqueeze(-4) + EPS
    return {SUMMARIES["raw"]: m.mean(-5).half(), SUMMARIES["renorm"]: (m / w).mean(-5).half()}


def summary_words(layers: int, words: int, grid: tuple[int, int, int]) -> int:
    """Words per summary chunk: one when a word's slab of all layers is large (a viewer reads one word's summary
    without decoding the others'), several up to ``SUMMARY_CHUNK_BYTES`` when it is small (a toy run's would be
    20 KB chunks, whose per-chunk cost the writer would pay on every step)."""
    per_word = layers * grid[0] * grid[1] * grid[2] * 2  # fp16
    return max(1, min(words, SUMMARY_CHUNK_BYTES // per_word))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in meta.json")


class RunWriter:
    """Create a Run folder and fill it step by step.

    Writes go through one background thread so the caller (the denoising loop) never waits on compression or
    the disk; ``end_step`` queues the step's meta.json record behind its slabs, so meta.json only claims
    finished steps, and ``close`` waits for the queue to drain.
    Each step also gets its mean over heads per estimator (``head_mean``, ``head_mean_renorm``; one chunk per
    (step, word) holding all layers), so a viewer averages long step/layer ranges without reading every slab. A
    small run's summaries are written once, at close; until then readers fall back to the slabs.
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
        release=None,
    ) -> None:
        self.path = Path(path)
        self._release = release  # called with each host tensor once written (returns pinned buffers to a pool)
        if is_run(self.path):
            if not overwrite:
                raise RunExistsError(
                    f"{self.path} already holds a run; choose another --out or pass --overwrite to replace it"
                )
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.words, self.layers, self.heads = list(words), list(layers), list(heads)
        self._layer_pos = {layer: i for i, layer in enumerate(self.layers)}
        f, y, x = grid
        n_h, n_w, n_l = len(self.heads), len(self.words), len(self.layers)
        self.meta = dict(meta)
        self.meta.update(
            format=FORMAT,
            complete=False,
            num_steps=num_steps,
            grid={"frames": f, "height": y, "width": x},
            layers=self.layers,
            heads=self.heads,
            steps=[],
        )
        self.meta.setdefault("words", [{"label": w} for w in self.words])
        write_meta(self.path, self.meta)
        self.group = zarr.open_group(self.path / "maps.zarr", mode="w", zarr_format=3)
        common = dict(dtype="float16", fill_value=np.nan, compressors=[_compressor()])
        self.arrays = {
            "maps": self.group.create_array(
                "maps", shape=(num_steps, n_l, n_h, n_w, f, y, x), chunks=(1, 1, n_h, n_w, f, y, x),
                dimension_names=MAPS_DIMS, **common,
            ),
            "prompt_mass": self.group.create_array(
                "prompt_mass", shape=(num_steps, n_l, n_h, f, y, x), chunks=(1, 1, n_h, f, y, x),
                dimension_names=MASS_DIMS, **common,
            ),
        }
        summary_shape = (num_steps, n_l, n_w, f, y, x)
        self._summary_chunks = (1, n_l, summary_words(n_l, n_w, grid), f, y, x)
        # a small run keeps its summaries in memory and writes each once at close: per-step writes of a few KB
        # would cost the writer a zarr call per array per step, on the CPU beside the denoising loop
        self._deferred = np.prod(summary_shape) * 2 * len(SUMMARIES) <= DEFER_SUMMARY_BYTES
        for name in SUMMARIES.values():
            self.arrays[name] = (np.full(summary_shape, np.nan, np.float16) if self._deferred
                                 else self._summary_array(name, summary_shape))
        for name in extras:
            self.arrays[name] = self.group.create_array(
                name, shape=(num_steps, n_l, n_h, n_w, f, y, x), chunks=(1, 1, n_h, n_w, f, y, x),
                dimension_names=MAPS_DIMS, **common,
            )
        self.previews: zarr.Array | None = None
        self._queue: Queue = Queue(maxsize=256)
        self._error: BaseException | None = None
        self._pending: dict[int, dict[int, tuple[dict, object]]] = {}
        self.bytes_written = 0  # uncompressed bytes of maps written, and the writer thread's busy time for them
        self.busy_seconds = 0.0
        self._thread = threading.Thread(target=self._drain, name="attnscope-writer", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if callable(item):
                    if self._error is None:
                        item()
                    continue
                if item[0] == "step":
                    if self._error is None:
                        t0 = time.perf_counter()
                        self.bytes_written += self._write_step(item[1], item[2])
                        self.busy_seconds += time.perf_counter() - t0
                    continue
                array, index, value = item
                if self._error is None:
                    array[index] = value
            except BaseException as exc:  # re-raised in the caller's thread by _check
                self._error = exc
            finally:
                self._queue.task_done()

    def _summary_array(self, name: str, shape: tuple[int, ...]) -> zarr.Array:
        return self.group.create_array(name, shape=shape, chunks=self._summary_chunks, dimension_names=SUMMARY_DIMS,
                                       dtype="float16", fill_value=np.nan, compressors=[_compressor()])

    def _write_deferred(self) -> None:
        """Write the in-memory summaries of a small run (runs whose steps never finished get none)."""
        if not self._deferred or not self.meta["steps"]:
            return
        for name in SUMMARIES.values():
            self._summary_array(name, self.arrays[name].shape)[...] = self.arrays[name]

    def _write_step(self, step: int, layers: dict[int, tuple[dict, object]]) -> int:
        """Write every layer slab of a step and its head means; one zarr call per array when all layers are
        present.

        Returns the number of (uncompressed) bytes of slabs written.
        """
        for _, ready in layers.values():
            if ready is not None:
                ready.synchronize()  # CUDA event: the async device-to-host copy has landed
        slabs = {pos: {name: _as_numpy(value) for name, value in entry.items()} for pos, (entry, _) in layers.items()}
        nbytes = sum(value.nbytes for values in slabs.values() for value in values.values())
        for values in slabs.values():
            if not all(name in values for name in SUMMARIES.values()):  # the capture usually made them on device
                values.update({name: mean.numpy() for name, mean in summaries_of(values["maps"],
                                                                               values["prompt_mass"]).items()})
        names = next(iter(slabs.values())).keys() if slabs else ()
        for name in names:
            if len(slabs) == len(self.layers):
                self.arrays[name][step] = np.stack([slabs[pos][name] for pos in range(len(self.layers))])
            else:
                for pos, values in slabs.items():
                    self.arrays[name][step, pos] = values[name]
        if self._release is not None:
            for entry, _ in layers.values():
                for value in entry.values():
                    if not isinstance(value, np.ndarray):
                        self._release(value)
        return nbytes

    def _check(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"writing {self.path} failed") from self._error

    def write(
        self,
        step: int,
        layer: int,
        maps,
        prompt_mass,
        extras: dict | None = None,
        ready=None,
    ) -> None:
        """Add one (step, layer) slab: ``maps`` [head, word, F, Y, X], ``prompt_mass`` [head, F, Y, X].

        Values are numpy arrays or host torch tensors; ``ready`` is an optional CUDA event that the writer
        thread waits on before reading them (an asynchronous device-to-host copy still in flight). Slabs are
        gathered per step and written by ``end_step`` in one call per array (zarr writes the chunks together).
        """
        self._check()
        slabs = {"maps": maps, "prompt_mass": prompt_mass, **(extras or {})}
        self._pending.setdefault(step, {})[self._layer_pos[layer]] = (slabs, ready)

    def write_preview(self, step: int, frames: np.ndarray) -> None:
        """Store the decoded x0 prediction of ``step`` (uint8 [T, h, w, 3])."""
        self._check()
        if self.previews is None:
            t, h, w, c = frames.shape
            self.previews = zarr.create_array(
                self.path / "previews.zarr", shape=(self.meta["num_steps"], t, h, w, c),
                chunks=(1, t, h, w, c), dtype="uint8", fill_value=0, dimension_names=PREVIEW_DIMS,
                compressors=[_compressor()], zarr_format=3,
            )
        self._queue.put((self.previews, (step,), np.asarray(frames, dtype=np.uint8)))

    def end_step(self, step: int, info: dict[str, Any]) -> None:
        """Mark ``step`` finished once its slabs are on disk; record timestep/sigma/expert in meta.json.

        Queued behind the step's slabs, so the writer thread records the step only after writing them and the
        denoising loop does not wait for the disk.
        """
        self._check()
        entry = {"index": step, **info}
        self._queue.put(("step", step, self._pending.pop(step, {})))

        def record() -> None:
            for key, value in entry.items():
                if hasattr(value, "item"):  # a device scalar: converted here, off the denoising thread
                    entry[key] = float(value.item())
            self.meta["steps"].append(entry)
            write_meta(self.path, self.meta)

        self._queue.put(record)

    def update_meta(self, **items: Any) -> None:
        self._queue.join()
        self.meta.update(items)
        write_meta(self.path, self.meta)

    @property
    def steps_recorded(self) -> int:
        """Steps whose slabs are on disk (after ``flush``)."""
        return len(self.meta["steps"])

    def flush(self) -> None:
        self._queue.join()
        self._check()

    def close(self, complete: bool) -> None:
        """Flush and stop the writer thread; ``complete`` says whether every step was captured."""
        self._queue.join()
        self._queue.put(None)
        self._thread.join()
        self._check()
        self._write_deferred()
        self.meta["complete"] = bool(complete)
        write_meta(self.path, self.meta)
