"""The inline writer: :class:`~.writer.RunWriter`'s API with every write done in the caller's thread; and
:func:`open_writer`, which picks a capture's writer.

Used where a run is written in one go from memory (``attnscope analyze --draws`` averaging noise draws), and
selectable for captures (``writer="inline"``), where a benchmark found it no cheaper than the thread writer on the
2-core CPU (+9.5 % against +6.5 %, docs/benchmarks.md).
"""

from __future__ import annotations

import os
import time

from .writer import RunWriter


class InlineRunWriter(RunWriter):
    """:class:`RunWriter`'s API with every write done in the caller's thread, at ``end_step``.

    Why: on a machine with few cores (the 2-core CPU box) a writer thread takes a core from torch's intra-op
    threads for the whole step, which costs more than the write itself; writing a small run's step in place
    costs only the write. On a GPU the thread writer keeps the disk off the denoising loop's critical path.
    """

    def __init__(self, *args, **kwargs) -> None:
        self._thread = None
        super().__init__(*args, **kwargs)

    def _start(self) -> None:
        return None

    def _run(self, fn, args) -> None:
        self._check()
        c0 = time.thread_time()
        try:
            fn(*args)
        except Exception as exc:
            self._error = exc
            raise RuntimeError(f"writing {self.path} failed") from exc
        finally:
            self._account(fn.__name__, time.thread_time() - c0)

    def flush(self) -> None:
        self._check()

    def close(self, complete: bool) -> None:
        c0 = time.thread_time()
        self._do_close(bool(complete))  # after an error: leaves the run marked incomplete
        self._account("_do_close", time.thread_time() - c0)
        self._check()


WRITER_MODES = ("auto", "thread", "inline")


def open_writer(*args, mode: str = "auto", precision: str = "fp16", **kwargs) -> RunWriter:
    """The writer for a capture: ``mode`` "auto" (``ATTNSCOPE_WRITER``, else the thread writer), "thread" or
    "inline"; ``precision`` "fp16" (lossless, the default) or "uint8" (compact, :mod:`.compact`).

    A writer in its own process was measured too and dropped: on an H200 at Wan2.1-1.3B size it cost more per
    captured forward than the thread writer (+1.9 % against +0.9 %, docs/benchmarks.md, run 3).
    """
    if mode == "auto":
        mode = os.environ.get("ATTNSCOPE_WRITER", "thread")
    if mode == "auto":
        mode = "thread"
    writers = {"thread": RunWriter, "inline": InlineRunWriter}
    if mode not in writers:
        raise ValueError(f"writer mode {mode!r}: choose {', '.join(WRITER_MODES)}")
    return writers[mode](*args, precision=precision, **kwargs)
