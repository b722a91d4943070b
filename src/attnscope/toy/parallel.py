"""Data parallelism for toy training over the GPUs of one host, started by ``torchrun``.

Why not ``DistributedDataParallel``: the VAE trains through ``encode``/``decode`` rather than ``forward``, and
the denoiser steps are long (hundreds of ms), so one flat all-reduce of the gradients per step is as fast and
reads plainly. Every process holds the same weights, draws different data, and applies the same averaged
gradients; rank 0 alone logs and saves. A single process (no ``torchrun``) runs the same code with no
communication, so the CPU tests cover it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors


@dataclass(frozen=True)
class Parallel:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls, device: str | None) -> Parallel:
        """The process group ``torchrun`` describes in the environment (WORLD_SIZE, RANK, LOCAL_RANK), if any."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        if not dist.is_initialized():
            on_cuda = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
            dist.init_process_group("nccl" if on_cuda else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def device(self, requested: str | None) -> torch.device:
        """This process's device: its own GPU (``cuda:LOCAL_RANK``) under torchrun, else what was asked for."""
        name = requested or ("cuda" if torch.cuda.is_available() else "cpu")
        if name == "cuda":
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return torch.device(name)

    def broadcast(self, params: list[torch.Tensor]) -> None:
        """Give every process rank 0's weights (they already agree when built from one seed or file; this makes
        it certain)."""
        if self.world == 1:
            return
        with torch.no_grad():
            flat = _flatten_dense_tensors([p.data for p in params])
            dist.broadcast(flat, 0)
            for p, synced in zip(params, _unflatten_dense_tensors(flat, [p.data for p in params]), strict=True):
                p.copy_(synced)

    def average_gradients(self, params: list[torch.Tensor]) -> None:
        """Average the gradients over processes in one all-reduce (a missing gradient counts as zero)."""
        if self.world == 1:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = _flatten_dense_tensors(grads)
        dist.all_reduce(flat)
        flat /= self.world
        for p, synced in zip(params, _unflatten_dense_tensors(flat, grads), strict=True):
            if p.grad is None:
                p.grad = synced
            else:
                p.grad.copy_(synced)

    def agree(self, value: float, device: torch.device) -> float:
        """The largest of every process's ``value``: elapsed seconds must be equal everywhere, or processes would
        stop a stage at different steps and wait on each other forever."""
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t.item())

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum of ``tensor`` over processes (in place, returned)."""
        if self.world > 1:
            dist.all_reduce(tensor)
        return tensor

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
