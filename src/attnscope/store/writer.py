"""Stream captured maps into a Run folder, one (step, layer) slab at a time.

Why streaming: a 50-step Wan2.1 run holds ~10^9 values; keeping them in memory is not an option, and an
interrupted run should leave every finished step readable. ``meta.json`` is rewritten atomically after each step,
so a reader never sees a half-written file.

Two parts: :class:`~attnscope.store.runstore.RunStore` owns the zarr arrays and meta.json (one owner, no locking);
:class:`RunWriter` here feeds it from a background thread; :class:`~.inline.InlineRunWriter` writes in the
caller's thread instead.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from queue import Queue
from typing import TYPE_CHECKING, Any

import numpy as np

from .compact import SCALE, check_precision, dequantize, quantize, quantized
from .layout import EPS, FLOAT32_ARRAYS, SUMMARIES
from .runstore import DEFER_SUMMARY_BYTES, FORMAT, SUMMARY_CHUNK_BYTES, RunStore, summary_words, write_meta  # noqa: F401

if TYPE_CHECKING:
    import torch


def _as_numpy(name: str, value) -> np.ndarray:
    """A host tensor or array as numpy (a view of a pinned buffer: stacked/encoded before release); float values
    as float16, the stored precision, except the float32 scales of compact codes and the float32 arrays."""
    value = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
    if name.endswith(SCALE) or not np.issubdtype(value.dtype, np.floating):
        return value
    return value.astype(np.float32 if name in FLOAT32_ARRAYS else np.float16, copy=False)


def summaries_of(maps, mass) -> dict[str, torch.Tensor]:
    """The summaries of slabs ``maps`` [..., head, word, F, Y, X] and ``mass`` [..., head, F, Y, X] (tensors on
    any device, or numpy): the mean over heads per estimator, keyed by array name, [..., word, F, Y, X] float16.

    Inputs are rounded to fp16 first, so a summary is the mean of exactly what the store holds; torch does the
    arithmetic so it runs on the capture's device (on a GPU the writer thread gets the small result) or, on the
    CPU, in parallel outside the GIL.
    """
    import torch

    m = torch.as_tensor(maps).to(torch.float16)  # a no-op for the fp16 slabs the capture hands over
    w = torch.as_tensor(mass).to(torch.float16).float().unsqueeze(-4) + EPS
    return {SUMMARIES["raw"]: torch.mean(m, -5, dtype=torch.float32).half(),
            SUMMARIES["renorm"]: (m / w).mean(-5).half()}


def host_step(layers: dict[int, tuple[dict, object]],
              precision: str = "fp16") -> tuple[list[int], dict[str, list[np.ndarray]]]:
    """A step's slabs as host numpy arrays, per array name in layer order, with summaries, encoded for
    ``precision`` (compact: uint8 codes plus ``<name>_scale``).

    ``layers`` maps a layer position to (slabs, ready); ``ready`` is a CUDA event to wait on (an asynchronous
    device-to-host copy in flight; waiting releases the GIL). Slabs without summaries (callers that pass numpy)
    get them here, with the same arithmetic the capture uses on device. Float slabs of a compact run are
    quantized here (torch on the host); a capture that quantized on its device hands over codes and scales.
    """
    for _, ready in layers.values():
        if ready is not None:
            ready.synchronize()
    positions = sorted(layers)
    slabs = [{name: _as_numpy(name, value) for name, value in layers[pos][0].items()} for pos in positions]
    for values in slabs:
        if not all(name in values for name in SUMMARIES.values()):
            maps, mass = (_decoded(values, name) for name in ("maps", "prompt_mass"))
            values.update({name: mean.numpy() for name, mean in summaries_of(maps, mass).items()})
        if precision == "uint8":
            for name in [n for n, v in values.items() if quantized(n, precision) and v.dtype != np.uint8]:
                codes, scale = quantize(values[name])
                values[name], values[name + SCALE] = codes.numpy(), scale.numpy()
    names = slabs[0].keys() if slabs else ()
    return positions, {name: [values[name] for values in slabs] for name in names}


def _decoded(values: dict[str, np.ndarray], name: str) -> np.ndarray:
    value = values[name]
    return dequantize(value, values[name + SCALE]) if value.dtype == np.uint8 else value


def copy_entry(entry: dict[str, Any]) -> tuple[dict[str, Any], object]:
    """Start copying a step record's CUDA scalars (the timestep) to pinned host memory; returns the record and
    the copy's event (None when nothing is on a GPU).

    Why: ``.item()`` on a CUDA tensor waits for the whole stream, and CUDA's default wait spins a core: the writer
    thread would burn a core through most of every step (0.3 s of CPU per 1.3B step on an H200). A blocking event
    sleeps instead.
    """
    import torch

    cuda = {k: v for k, v in entry.items() if torch.is_tensor(v) and v.is_cuda}
    if not cuda:
        return entry, None
    host = dict(entry)
    for key, value in cuda.items():
        host[key] = torch.empty(value.shape, dtype=value.dtype, pin_memory=True)
        host[key].copy_(value, non_blocking=True)
    event = torch.cuda.Event(blocking=True)
    event.record()
    return host, event


def host_entry(entry: dict[str, Any], ready=None) -> dict[str, Any]:
    """A step's meta.json record with tensor scalars converted (here, off the denoising thread), once the copy
    ``ready`` (a CUDA event from :func:`copy_entry`) has finished."""
    if ready is not None:
        ready.synchronize()
    return {key: float(value.item()) if hasattr(value, "item") else value for key, value in entry.items()}


class RunWriter:
    """Create a Run folder and fill it step by step, from a background thread.

    Writes go through one background thread so the caller (the denoising loop) never waits on compression or
    the disk; ``end_step`` queues the step's meta.json record behind its slabs, so meta.json only claims
    finished steps, and ``close`` waits for the queue to drain. An error in the thread is raised at the caller's
    next call. This thread writer is the default everywhere.
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
        precision: str = "fp16",
        probes: int = 0,
    ) -> None:
        self.precision = check_precision(precision)
        self.store = RunStore(path, meta, words=words, layers=layers, heads=heads, num_steps=num_steps, grid=grid,
                              extras=extras, overwrite=overwrite, precision=precision, probes=probes)
        self.path = self.store.path
        self._release = release  # called with each host tensor once written (returns pinned buffers to a pool)
        self._layer_pos = {layer: i for i, layer in enumerate(self.store.layers)}
        self._queue: Queue = Queue(maxsize=256)
        self._error: BaseException | None = None
        self._pending: dict[int, dict[int, tuple[dict, object]]] = {}
        self.bytes_written = 0  # uncompressed bytes of slabs written, and the writer's busy and CPU time for them
        self.busy_seconds = 0.0
        self.cpu_seconds = 0.0  # the writing thread's own CPU time, not that of the threads zarr hands work to
        self.cpu_by_task: dict[str, float] = {}  # the same by queued task (_do_step, _do_close, ...)
        self._start()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._drain, name="attnscope-writer", daemon=True)
        self._thread.start()

    @property
    def native_thread_id(self) -> int | None:
        """The writing thread's OS id (None for the inline writer): the e2e bench waits for that thread to leave
        ``/proc`` before it reads the threads' CPU times, since ``join`` returns a moment before the OS thread ends."""
        return self._thread.native_id if self._thread is not None else None

    def _run(self, fn, args) -> None:
        """Queue ``fn(*args)`` for the writer (the inline writer runs it at once)."""
        self._queue.put((fn, args))

    def _drain(self) -> None:
        while True:
            fn, args = self._queue.get()
            c0 = time.thread_time()
            try:
                if self._error is None or fn == self._do_close:
                    fn(*args)
            except BaseException as exc:  # re-raised in the caller's thread by _check
                self._error = exc
            finally:
                self._account(fn.__name__, time.thread_time() - c0)
                self._queue.task_done()
            if fn == self._do_close:
                return

    def _account(self, task: str, seconds: float) -> None:
        self.cpu_seconds += seconds
        self.cpu_by_task[task] = self.cpu_by_task.get(task, 0.0) + seconds

    # ---- run in the writer thread (the inline writer runs them in the caller's) ---------------------------------
    def _do_step(self, step: int, layers: dict[int, tuple[dict, object]],
                 entry: tuple[dict[str, Any], object]) -> None:
        t0 = time.perf_counter()
        positions, slabs = host_step(layers, self.precision)
        if positions:
            self.bytes_written += self.store.write_step(step, positions, slabs)
        self.busy_seconds += time.perf_counter() - t0
        self._release_host(layers)
        self.store.record_step(host_entry(*entry))

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
        """Add one (step, layer) slab: ``maps`` [head, word, F, Y, X], ``prompt_mass`` [head, F, Y, X]; ``extras``
        by array name (a run with probe points: ``probe`` [point, F, Y, X]).

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
        self._run(self._do_step, (step, self._pending.pop(step, {}), copy_entry({"index": step, **info})))

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
