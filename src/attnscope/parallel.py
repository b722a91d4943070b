"""One generation over several GPUs through diffusers' context parallelism (launched with ``torchrun``).

``enable_context_parallel(pipe, "ulysses")`` joins the process group torchrun set up (NCCL on GPUs) and calls
diffusers' own ``transformer.enable_parallelism(config=ContextParallelConfig(...))`` on every expert; a trace
then gathers each rank's exact maps to rank 0 (:mod:`attnscope.capture.parallel`).
"""

from __future__ import annotations

import os

import torch

from .errors import AttnscopeError
from .models import wan

KINDS = ("ulysses", "ring")


def enable_context_parallel(pipe, kind: str) -> int:
    """Split ``pipe``'s video sequence over the ``torchrun`` processes; returns this process's rank."""
    import torch.distributed as dist
    from diffusers import ContextParallelConfig

    if kind not in KINDS:
        raise AttnscopeError(f"--parallel {kind!r}: choose {' or '.join(KINDS)}")
    if "WORLD_SIZE" not in os.environ:
        raise AttnscopeError("--parallel needs one process per GPU: launch with "
                             "`torchrun --nproc_per_node N -m attnscope.cli generate ... --parallel ulysses`")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    world = dist.get_world_size()
    if world < 2:
        raise AttnscopeError("--parallel needs at least 2 processes (torchrun --nproc_per_node 2 or more)")
    if torch.accelerator.device_count() == 0:
        raise AttnscopeError("diffusers' context parallelism needs GPUs (it places each rank on an accelerator)")
    for transformer in wan.transformers_of(pipe).values():
        config = ContextParallelConfig(ulysses_degree=world) if kind == "ulysses" else ContextParallelConfig(
            ring_degree=world)
        transformer.enable_parallelism(config=config)
    return dist.get_rank()
