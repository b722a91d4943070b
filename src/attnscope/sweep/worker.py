"""The sweep worker: holds one loaded pipeline and runs jobs on it, one after another.

Plain Python so it can be tested and reused without Ray; :mod:`.execute` wraps it as a Ray actor (one per GPU,
or a few on the CPU). Loading once per worker matters: on a real model loading takes longer than a short job.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from pathlib import Path
from typing import Any

from .index import now
from .jobs import Job


def error_record(exc: BaseException) -> dict[str, str]:
    """What the index keeps of a failure: the exception's type, its message and where it happened."""
    return {"type": type(exc).__name__, "message": str(exc),
            "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))}


class SweepWorker:
    """One pipeline, many jobs. ``threads`` bounds torch's CPU threads so CPU workers do not oversubscribe."""

    def __init__(self, model: str, device: str | None = None, threads: int | None = None) -> None:
        self.model, self.device, self.threads = model, device, threads
        self.pipe = None
        self.label = f"{socket.gethostname()}:{os.getpid()}"

    def load(self) -> dict[str, Any]:
        """Load the pipeline; returns where it lives and how long loading took."""
        import torch

        from ..models import wan
        from ..models.loading import load_pipeline

        if self.threads:
            torch.set_num_threads(self.threads)
        start = time.perf_counter()
        self.pipe = load_pipeline(self.model, device=self.device)
        self.pipe.set_progress_bar_config(disable=True)
        device = str(wan.execution_device(self.pipe))
        if device.startswith("cuda"):
            self.label += f":{torch.cuda.get_device_name()}"
        return {"worker": self.label, "device": device, "threads": torch.get_num_threads(),
                "seconds": time.perf_counter() - start}

    def run(self, job: dict[str, Any], folder: str) -> dict[str, Any]:
        """Generate ``job`` into ``folder`` (replacing an incomplete run there). Failures are returned, not raised,
        so one bad job does not stop the sweep; the caller records them in the index."""
        from ..generation import generate

        spec = Job.from_dict(job)
        started, start = now(), time.perf_counter()
        error = None
        try:
            generate(self.pipe, spec.prompt, Path(folder), seed=spec.seed, bends=spec.bends, overwrite=True,
                     quiet=True, **spec.options)
        except Exception as exc:  # recorded in index.json with type, message and traceback
            error = error_record(exc)
            self._release_memory()
        timings = {"started": started, "finished": now(), "seconds": round(time.perf_counter() - start, 3)}
        return {"status": "failed" if error else "complete", "error": error, "timings": timings,
                "worker": self.label}

    def _release_memory(self) -> None:
        """After a failure (often out-of-memory) give cached GPU memory back before the next job."""
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
