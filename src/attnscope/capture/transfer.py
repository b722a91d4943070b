"""Device → host copies that do not stall the denoising loop.

On CUDA, captured slabs are cast to fp16 on the GPU, copied into pinned host memory on a side stream and handed
to the writer thread with an event; the writer waits on the event, not the GPU's main stream. On the CPU the
tensors are already on the host and pass straight through.
"""

from __future__ import annotations

import torch


class HostTransfer:
    """Start an asynchronous copy of tensors to the host; ``fetch`` on the writer thread waits for it."""

    def __init__(self) -> None:
        self._stream: torch.cuda.Stream | None = None

    def start(self, tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.cuda.Event | None]:
        first = next(iter(tensors.values()))
        if first.device.type != "cuda":
            return {k: v.to(torch.float16) for k, v in tensors.items()}, None
        if self._stream is None:
            self._stream = torch.cuda.Stream(device=first.device)
        main = torch.cuda.current_stream(first.device)
        half = {k: v.to(torch.float16) for k, v in tensors.items()}  # cast on the main stream (cheap)
        self._stream.wait_stream(main)
        host = {}
        with torch.cuda.stream(self._stream):
            for k, v in half.items():
                host[k] = torch.empty(v.shape, dtype=v.dtype, pin_memory=True)
                host[k].copy_(v, non_blocking=True)
                v.record_stream(self._stream)  # keep the device buffer alive until the copy ran
            event = torch.cuda.Event()
            event.record(self._stream)
        return host, event
