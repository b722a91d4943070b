"""Stream captured maps into a Run folder, one (step, layer) slab at a time.

Why streaming: a 50-step Wan2.1 run holds ~10^9 values; keeping them in memory is not an option, and an
interrupted run should leave every finished step readable. ``meta.json`` is rewritten atomically after each step,
so a reader never sees a half-written file.

Two parts: :class:`RunStore` owns the zarr arrays and meta.json (one owner, no locking); :class:`RunWriter` feeds
it from a background thread. :mod:`.procwriter` runs the same ``RunStore`` in a writer process instead, for GPU
captures (see there why).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path
from queue import Queue
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from ..errors import RunExistsError
from .layout import EPS, MAPS_DIMS, MASS_DIMS, PREVIEW_DIMS, SUMMARIES, SUMMARY_DIMS, is_run

if TYPE_CHECKING:
    import torch

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
    import torch  # here, not at the top: the writer process imports this module and needs no torch

    m = torch.as_tensor(maps).to(torch.float16)  # a no-op for the fp16 slabs the capture hands over
    w = torch.as_tensor(mass).to(torch.float16).float().unsqueeze(-4) + EPS
    return {SUMMARIES["raw"]: torch.mean(m, -5, dtype=torch.float32).half(),
            SUMMARIES["renorm"]: (m / w).mean(-5).half()}


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


class RunStore:
    """The zarr side of a Run folder: creates it, writes slabs, summaries, previews and meta.json.

    Not thread-safe: exactly one thread (of this process, or of the writer process) owns it after creation.
    Pickling it carries only what reopening needs, so a writer process reopens the arrays the caller created
    (creating them in the caller keeps errors such as an existing run synchronous).
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
    ) -> None:
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
        group = zarr.open_group(self.path / "maps.zarr", mode="w", zarr_format=3)
        common = dict(dtype="float16", fill_value=np.nan, compressors=[_compressor()])
        group.create_array("maps", shape=(num_steps, n_l, n_h, n_w, f, y, x), chunks=(1, 1, n_h, n_w, f, y, x),
                           dimension_names=MAPS_DIMS, **common)
        group.create_array("prompt_mass", shape=(num_steps, n_l, n_h, f, y, x), chunks=(1, 1, n_h, f, y, x),
                           dimension_names=MASS_DIMS, **common)
        for name in extras:
            group.create_array(name, shape=(num_steps, n_l, n_h, n_w, f, y, x), chunks=(1, 1, n_h, n_w, f, y, x),
                               dimension_names=MAPS_DIMS, **common)
        self._slab_names = ("maps", "prompt_mass", *extras)
        self._summary_shape = (num_steps, n_l, n_w, f, y, x)
        self._summary_chunks = (1, n_l, summary_words(n_l, n_w, grid), f, y, x)
        # a small run keeps its summaries in memory and writes each once at close: per-step writes of a few KB
        # would cost the writer a zarr call per array per step, on the CPU beside the denoising loop
        self._deferred = np.prod(self._summary_shape) * 2 * len(SUMMARIES) <= DEFER_SUMMARY_BYTES
        if not self._deferred:
            for name in SUMMARIES.values():
                self._summary_array(name, group)
        self.previews: zarr.Array | None = None
        self._open()

    def _open(self) -> None:
        self.group = zarr.open_group(self.path / "maps.zarr", mode="r+")
        self.arrays: dict[str, Any] = {name: self.group[name] for name in self._slab_names}
        for name in SUMMARIES.values():
            self.arrays[name] = (np.full(self._summary_shape, np.nan, np.float16) if self._deferred
                                 else self.group[name])

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("group", "arrays")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._open()

    def _summary_array(self, name: str, group: zarr.Group | None = None) -> zarr.Array:
        return (group or self.group).create_array(
            name, shape=self._summary_shape, chunks=self._summary_chunks, dimension_names=SUMMARY_DIMS,
            dtype="float16", fill_value=np.nan, compressors=[_compressor()])

    def write_step(self, step: int, positions: list[int], blocks: dict[str, np.ndarray]) -> int:
        """Write a step's slabs: ``blocks[name]`` stacks the layers at ``positions`` (indices into ``layers``).

        One zarr call per array when every layer is present (zarr writes the chunks together). Returns the
        uncompressed bytes written.
        """
        full = list(positions) == list(range(len(self.layers)))
        for name, block in blocks.items():
            if full:
                self.arrays[name][step] = block
            else:
                for i, pos in enumerate(positions):
                    self.arrays[name][step, pos] = block[i]
        return sum(block.nbytes for block in blocks.values())

    def write_preview(self, step: int, frames: np.ndarray) -> None:
        if self.previews is None:
            t, h, w, c = frames.shape
            self.previews = zarr.create_array(
                self.path / "previews.zarr", shape=(self.meta["num_steps"], t, h, w, c),
                chunks=(1, t, h, w, c), dtype="uint8", fill_value=0, dimension_names=PREVIEW_DIMS,
                compressors=[_compressor()], zarr_format=3,
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
            for name in SUMMARIES.values():
                self._summary_array(name)[...] = self.arrays[name]
        self.meta["complete"] = bool(complete)
        write_meta(self.path, self.meta)


def host_step(layers: dict[int, tuple[dict, object]]) -> tuple[list[int], dict[str, list[np.ndarray]]]:
    """A step's slabs as host numpy arrays, per array name in layer order, with summaries.

    ``layers`` maps a layer position to (slabs, ready); ``ready`` is a CUDA event to wait on (an asynchronous
    device-to-host copy in flight; waiting releases the GIL). Slabs without summaries (callers that pass numpy)
    get them here, with the same arithmetic the capture uses on device.
    """
    for _, ready in layers.values():
        if ready is not None:
            ready.synchronize()
    positions = sorted(layers)
    slabs = [{name: _as_numpy(value) for name, value in layers[pos][0].items()} for pos in positions]
    for values in slabs:
        if not all(name in values for name in SUMMARIES.values()):
            values.update({name: mean.numpy() for name, mean in summaries_of(values["maps"],
                                                                           values["prompt_mass"]).items()})
    names = slabs[0].keys() if slabs else ()
    return positions, {name: [values[name] for values in slabs] for name in names}


def host_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """A step's meta.json record with device scalars converted (here, off the denoising thread)."""
    return {key: float(value.item()) if hasattr(value, "item") else value for key, value in entry.items()}


class RunWriter:
    """Create a Run folder and fill it step by step, from a background thread.

    Writes go through one background thread so the caller (the denoising loop) never waits on compression or
    the disk; ``end_step`` queues the step's meta.json record behind its slabs, so meta.json only claims
    finished steps, and ``close`` waits for the queue to drain. An error in the thread is raised at the caller's
    next call. :class:`~attnscope.store.procwriter.ProcessRunWriter` has the same API and moves the zarr work
    into a writer process (opt-in); this thread writer is the default everywhere.
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
        self.store = RunStore(path, meta, words=words, layers=layers, heads=heads, num_steps=num_steps, grid=grid,
                              extras=extras, overwrite=overwrite)
        self.path = self.store.path
        self._release = release  # called with each host tensor once written (returns pinned buffers to a pool)
        self._layer_pos = {layer: i for i, layer in enumerate(self.store.layers)}
        self._queue: Queue = Queue(maxsize=256)
        self._error: BaseException | None = None
        self._pending: dict[int, dict[int, tuple[dict, object]]] = {}
        self.bytes_written = 0  # uncompressed bytes of slabs written, and the writer's busy time for them
        self.busy_seconds = 0.0
        self._start()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._drain, name="attnscope-writer", daemon=True)
        self._thread.start()

    def _run(self, fn, args) -> None:
        """Queue ``fn(*args)`` for the writer (the inline writer runs it at once)."""
        self._queue.put((fn, args))

    def _drain(self) -> None:
        while True:
            fn, args = self._queue.get()
            try:
                if self._error is None or fn == self._do_close:
                    fn(*args)
            except BaseException as exc:  # re-raised in the caller's thread by _check
                self._error = exc
            finally:
                self._queue.task_done()
            if fn == self._do_close:
                return

    # ---- run in the writer thread; ProcessRunWriter forwards them to its process instead --------------------
    def _do_step(self, step: int, layers: dict[int, tuple[dict, object]], entry: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        positions, slabs = host_step(layers)
        if positions:
            self.bytes_written += self.store.write_step(step, positions,
                                                        {name: np.stack(values) for name, values in slabs.items()})
        self.busy_seconds += time.perf_counter() - t0
        self._release_host(layers)
        self.store.record_step(host_entry(entry))

    def _do_preview(self, step: int, frames: np.ndarray) -> None:
        self.store.write_preview(step, frames)

    def _do_meta(self, items: dict[str, Any]) -> None:
        self.store.update_meta(items)

    def _do_sync(self) -> None:
        return None  # the thread's own queue order is enough

    def _do_close(self, complete: bool) -> None:
        if self._error is None:
            self.store.close(complete)

    def _release_host(self, layers: dict[int, tuple[dict, object]]) -> None:
        if self._release is not None:
            for entry, _ in layers.values():
                for value in entry.values():
                    if not isinstance(value, np.ndarray):
                        self._release(value)

    # ---- the caller's API -------------------------------------------------------------------------------------
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
        waits on before reading them (an asynchronous device-to-host copy still in flight). Slabs are
        gathered per step and written by ``end_step`` in one call per array (zarr writes the chunks together).
        """
        self._check()
        slabs = {"maps": maps, "prompt_mass": prompt_mass, **(extras or {})}
        self._pending.setdefault(step, {})[self._layer_pos[layer]] = (slabs, ready)

    def write_preview(self, step: int, frames: np.ndarray) -> None:
        """Store the decoded x0 prediction of ``step`` (uint8 [T, h, w, 3])."""
        self._check()
        self._run(self._do_preview, (step, np.asarray(frames, dtype=np.uint8)))

    def end_step(self, step: int, info: dict[str, Any]) -> None:
        """Mark ``step`` finished once its slabs are on disk; record timestep/sigma/expert in meta.json.

        Queued with the step's slabs, so the writer records the step only after writing them and the
        denoising loop does not wait for the disk.
        """
        self._check()
        self._run(self._do_step, (step, self._pending.pop(step, {}), {"index": step, **info}))

    def update_meta(self, **items: Any) -> None:
        self._run(self._do_meta, (items,))
        self.flush()

    @property
    def steps_recorded(self) -> int:
        """Steps whose slabs are on disk (after ``flush``)."""
        return len(self.store.meta["steps"])

    def flush(self) -> None:
        """Return once everything queued so far is on disk (or raise the writer's error)."""
        self._queue.put((self._do_sync, ()))
        self._queue.join()
        self._check()

    def close(self, complete: bool) -> None:
        """Flush and stop the writer; ``complete`` says whether every step was captured."""
        self._queue.put((self._do_close, (bool(complete),)))
        self._queue.join()
        self._thread.join()
        self._check()
