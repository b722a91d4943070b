"""Device → host copies that do not stall the denoising loop.

On CUDA, captured slabs are cast to fp16 on the GPU and copied on a side stream into pinned host buffers taken
from a pool that is allocated once and recycled (allocating pinned memory per call is slow and can synchronize
the device). The writer thread waits on the copy's event, then hands the buffer back to the pool. On the CPU
the tensors are already on the host and pass straight through.
"""

from __future__ import annotations

import threading
from collections import defaultdict

import torch

from ..store.layout import FLOAT32_ARRAYS


class PinnedPool:
    """Reusable pinned host buffers keyed by (shape, dtype)."""

    def __init__(self) -> None:
        self._free: dict[tuple, list[torch.Tensor]] = defaultdict(list)
        self._lock = threading.Lock()

    def take(self, shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
        with self._lock:
            free = self._free[(tuple(shape), dtype)]
            if free:
                return free.pop()
        return torch.empty(shape, dtype=dtype, pin_memory=True)

    def give(self, tensor: torch.Tensor) -> None:
        with self._lock:
            self._free[(tuple(tensor.shape), tensor.dtype)].append(tensor)


class HostTransfer:
    """Start an asynchronous copy of tensors to the host; the writer waits on the returned event."""

    def __init__(self) -> None:
        self._stream: torch.cuda.Stream | None = None
        self.pool = PinnedPool()

    def start(self, tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.cuda.Event | None]:
        first = next(iter(tensors.values()))
        if first.device.type != "cuda":
            return {k: _stored(k, v) for k, v in tensors.items()}, None
        if self._stream is None:
            self._stream = torch.cuda.Stream(device=first.device)
        main = torch.cuda.current_stream(first.device)
        half = {k: _stored(k, v) for k, v in tensors.items()}  # cast on the main stream (cheap)
        self._stream.wait_stream(main)
        host = {}
        with torch.cuda.stream(self._stream):
            for k, v in half.items():
                host[k] = self.pool.take(v.shape, v.dtype)
                host[k].copy_(v, non_blocking=True)
                v.record_stream(self._stream)  # keep the device buffer alive until the copy ran
            # blocking: the writer thread sleeps in event.synchronize() instead of spinning a core for the
            # whole step it waits on (a default event busy-waits in cudaEventSynchronize)
            event = torch.cuda.Event(blocking=True)
            event.record(self._stream)
        return host, event


def _stored(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """The tensor in the dtype the store keeps: float16, except a compact store's uint8 codes and their float32
    scales (``<name>_scale``), which pass unchanged, and the float32 arrays (the probe rows)."""
    if tensor.dtype == torch.uint8 or name.endswith("_scale"):
        return tensor
    return tensor.to(torch.float32 if name in FLOAT32_ARRAYS else torch.float16)
