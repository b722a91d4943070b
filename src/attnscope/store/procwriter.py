"""A Run writer whose zarr work runs in a separate process, off the denoising process's GIL (opt-in).

With the thread writer, zarr v3's Python and asyncio work, encoding and meta.json bookkeeping share the denoising
process's GIL. This writer was built when capture cost +11.7 % per captured forward on an H200 and that GIL time
was the suspect; the cause turned out to be a GPU synchronization per layer (fixed in ``capture.probs``), after
which the thread writer cost as little (docs/benchmarks.md). It stays as an option for hosts where the writer's
GIL time does show. The denoising process only waits on each step's copy events, copies the host slabs into
recycled shared-memory blocks (numpy copies release the GIL) and posts a small message; a spawned writer process
(no torch, no CUDA) owns the :class:`~attnscope.store.writer.RunStore` and does every zarr write and meta.json
rewrite.

Messages to the process: ("step", step, positions, {name: (block, shape, dtype)}, entry), ("preview", step, frames),
("meta", items), ("sync",), ("close", complete). Replies: ("free", blocks) once a step's blocks are written,
("synced" | "closed", steps recorded, bytes, busy seconds), ("error", traceback text).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import shutil
import time
import traceback
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

from .inline import InlineRunWriter
from .runstore import RunStore
from .writer import RunWriter, host_entry, host_step

SHM_DIR = "/dev/shm"
SHM_BYTES = 1 << 30  # shared memory kept in flight (at least one step's worth, however large)
POLL_SECONDS = 1.0  # how often a waiting side checks that the other is still alive


def open_writer(*args, mode: str = "auto", precision: str | None = None, **kwargs) -> RunWriter:
    """The writer for a capture: ``mode`` is "thread", "process", "inline" or "auto" (``ATTNSCOPE_WRITER``
    overrides auto); ``precision`` is "fp16" (lossless, the default) or "uint8" (compact, :mod:`.compact`), and
    None reads ``ATTNSCOPE_PRECISION`` (default "fp16").

    Auto is the thread writer. On an H200 at Wan2.1-1.3B size the process writer cost no less per captured
    forward (+1.9 % against +0.9 %, docs/benchmarks.md) once capture stopped synchronizing the GPU, so the
    process, which keeps zarr's Python work off the denoising process's GIL, is an option for hosts where
    that GIL time shows, not the default. The inline writer (writes in the caller's thread) was no cheaper on
    the 2-core CPU either (+9.5 % against +6.5 % for the thread).
    """
    if mode == "auto":
        mode = os.environ.get("ATTNSCOPE_WRITER", "auto")
    if mode == "auto":
        mode = "thread"
    writers = {"thread": RunWriter, "process": ProcessRunWriter, "inline": InlineRunWriter}
    if mode not in writers:
        raise ValueError(f"writer mode {mode!r}: choose thread, process, inline or auto")
    precision = precision or os.environ.get("ATTNSCOPE_PRECISION") or "fp16"
    return writers[mode](*args, precision=precision, **kwargs)


def _shm_free() -> int:
    return shutil.disk_usage(SHM_DIR).free if os.path.isdir(SHM_DIR) else 0


class ProcessRunWriter(RunWriter):
    """:class:`RunWriter`'s API and semantics, with the zarr writes in a spawned writer process.

    The staging thread inherited from ``RunWriter`` (``_drain``) runs the ``_do_*`` methods below: it waits for
    a step's copies, stages the slabs into shared memory and forwards everything to the process in order, so
    ``flush`` (a round trip to the process) still means "everything written so far is on disk" and an error in
    the process is raised at the caller's next call.
    """

    def __init__(self, *args, **kwargs) -> None:
        self._blocks: dict[str, SharedMemory] = {}  # every block made, by name: unlinked at close
        self._free: dict[int, list[str]] = {}  # free block names by size
        self._in_use = 0  # bytes of blocks the process has not handed back
        self._steps = 0
        ctx = mp.get_context("spawn")  # a fork would copy the CUDA context and the caller's threads
        self._inbox, self._outbox = ctx.Queue(), ctx.Queue()
        self._proc = None
        super().__init__(*args, **kwargs)  # creates the Run folder here, so its errors are raised now
        self._proc = ctx.Process(target=_serve, args=(self.store, self._inbox, self._outbox),
                                 name="attnscope-writer", daemon=True)
        self._proc.start()

    @property
    def steps_recorded(self) -> int:
        """Steps whose slabs are on disk (after ``flush``)."""
        return self._steps

    # ---- staging thread ---------------------------------------------------------------------------------------
    def _do_step(self, step: int, layers: dict[int, tuple[dict, object]], entry: dict[str, Any]) -> None:
        positions, slabs = host_step(layers, self.precision)
        self._wait_for_room(sum(sum(value.nbytes for value in values) for values in slabs.values()))
        blocks = {name: self._stage(values) for name, values in slabs.items()}
        self._release_host(layers)
        self._inbox.put(("step", step, positions, blocks, host_entry(entry)))

    def _do_preview(self, step: int, frames: np.ndarray) -> None:
        self._inbox.put(("preview", step, frames))

    def _do_meta(self, items: dict[str, Any]) -> None:
        self._inbox.put(("meta", items))

    def _do_sync(self) -> None:
        self._inbox.put(("sync",))
        self._until("synced")

    def _do_close(self, complete: bool) -> None:
        try:
            if self._proc is not None:
                self._inbox.put(("close", bool(complete) and self._error is None))
                self._until("closed")
                self._proc.join()
                for q in (self._inbox, self._outbox):
                    q.close()
        finally:
            for block in self._blocks.values():
                block.close()
                block.unlink()

    def _wait_for_room(self, nbytes: int) -> None:
        """Block until a step of ``nbytes`` fits under ``SHM_BYTES`` (or nothing else is in flight)."""
        while self._receive(block=False):
            pass
        while self._in_use and self._in_use + nbytes > SHM_BYTES:
            self._receive(block=True)
            if self._error is not None:  # the process failed: it writes nothing more, so stop staging
                raise self._error

    def _stage(self, values: list[np.ndarray]) -> tuple[str, tuple[int, ...], str]:
        """Copy one array's slabs (stacked in layer order) into a free shared block; its name, shape, dtype."""
        shape, dtype = (len(values), *values[0].shape), values[0].dtype
        nbytes = int(np.prod(shape)) * dtype.itemsize
        free = self._free.get(nbytes)
        block = self._blocks[free.pop()] if free else self._new_block(nbytes)
        self._in_use += nbytes
        dst = np.ndarray(shape, dtype, buffer=block.buf)
        for i, value in enumerate(values):
            np.copyto(dst[i], value)  # a plain memory copy: numpy releases the GIL
        del dst  # a block with a live view cannot be closed
        return block.name, shape, dtype.str

    def _new_block(self, nbytes: int) -> SharedMemory:
        free = _shm_free() if os.path.isdir(SHM_DIR) else nbytes
        if free < nbytes:  # a tmpfs past its size raises SIGBUS on the first write, not an error on creation
            raise RuntimeError(f"{SHM_DIR} has {free / 1e6:.0f} MB free, a capture step needs {nbytes / 1e6:.0f} MB "
                               "more; enlarge it (docker: --shm-size) or set ATTNSCOPE_WRITER=thread")
        block = SharedMemory(create=True, size=nbytes)
        self._blocks[block.name] = block
        return block

    def _until(self, kind: str) -> None:
        while self._receive(block=True) != kind:
            pass

    def _receive(self, block: bool) -> str | None:
        """Handle one reply from the process (None when none is waiting and ``block`` is false)."""
        try:
            reply = self._outbox.get(timeout=POLL_SECONDS) if block else self._outbox.get_nowait()
        except queue.Empty:
            if block and not self._proc.is_alive():
                raise RuntimeError(f"the writer process exited (code {self._proc.exitcode})") from None
            return None
        kind = reply[0]
        if kind == "free":
            for name in reply[1]:
                size = self._blocks[name].size
                self._free.setdefault(size, []).append(name)
                self._in_use -= size
        elif kind == "error":
            self._error = RuntimeError(f"the writer process failed:\n{reply[1]}")
        else:
            self._steps, self.bytes_written, self.busy_seconds = reply[1:]
        return kind


def _serve(store: RunStore, inbox, outbox) -> None:
    """The writer process: apply messages to ``store`` in order until "close"; after an error, only answer.

    Ends by itself when its parent died (a killed capture leaves its finished steps, not an orphan).
    """
    attached: dict[str, SharedMemory] = {}
    failed = False
    written, busy = 0, 0.0
    parent = mp.parent_process()
    try:
        while True:
            try:
                msg = inbox.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if parent is not None and not parent.is_alive():
                    return
                continue
            kind = msg[0]
            try:
                if kind == "step":
                    _, step, positions, blocks, entry = msg
                    try:
                        if not failed:
                            t0 = time.perf_counter()
                            arrays = {name: np.ndarray(shape, dtype, buffer=_attach(attached, block).buf)
                                      for name, (block, shape, dtype) in blocks.items()}
                            if positions:
                                written += store.write_step(step, positions, arrays)
                            del arrays
                            busy += time.perf_counter() - t0
                            store.record_step(entry)
                    finally:
                        outbox.put(("free", [block for block, _, _ in blocks.values()]))
                elif failed:
                    pass
                elif kind == "preview":
                    store.write_preview(msg[1], msg[2])
                elif kind == "meta":
                    store.update_meta(msg[1])
                elif kind == "close":
                    store.close(msg[1])
            except BaseException:  # sent to the caller, raised there at its next call
                failed = True
                outbox.put(("error", traceback.format_exc()))
            if kind in ("sync", "close"):
                outbox.put(("synced" if kind == "sync" else "closed", len(store.meta["steps"]), written, busy))
            if kind == "close":
                return
    finally:
        for shm in attached.values():
            shm.close()


def _attach(attached: dict[str, SharedMemory], name: str) -> SharedMemory:
    """Open a block of the caller's by name, once (blocks are recycled); the caller unlinks it."""
    if name not in attached:
        attached[name] = SharedMemory(name=name)
    return attached[name]
