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


def check_launch(kind: str) -> None:
    """Refuse a context-parallel generation that cannot run, before the model loads (seconds to minutes): a kind
    diffusers does not have, a process torchrun did not start as one of several, a machine without GPUs."""
    import torch.distributed as dist

    if kind not in KINDS:
        raise AttnscopeError(f"--parallel {kind!r}: choose {' or '.join(KINDS)}")
    world = dist.get_world_size() if dist.is_initialized() else int(os.environ.get("WORLD_SIZE", "1"))
    if world < 2:
        raise AttnscopeError(f"--parallel {kind} splits one video over several GPUs, one process each: launch it "
                             f"with `torchrun --nproc_per_node N -m attnscope.cli generate ... --parallel {kind}` "
                             "(N ≥ 2, one per GPU); without --parallel the video is generated on one device")
    if torch.accelerator.device_count() == 0:
        raise AttnscopeError("diffusers' context parallelism needs GPUs (it places each rank on an accelerator); "
                             "on this machine generate without --parallel")


def rank_device(device: str | None) -> str | None:
    """The device this torchrun process loads the model on: its own GPU (``cuda:LOCAL_RANK``, also made the
    current one, so a plain ``--device cuda`` lands there too); without CUDA, what was asked for."""
    if not torch.cuda.is_available():
        return device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local)
    return device or f"cuda:{local}"


def enable_context_parallel(pipe, kind: str) -> int:
    """Split ``pipe``'s video sequence over the ``torchrun`` processes; returns this process's rank."""
    import torch.distributed as dist
    from diffusers import ContextParallelConfig

    check_launch(kind)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    world = dist.get_world_size()
    for transformer in wan.transformers_of(pipe).values():
        config = ContextParallelConfig(ulysses_degree=world) if kind == "ulysses" else ContextParallelConfig(
            ring_degree=world)
        transformer.enable_parallelism(config=config)
    return dist.get_rank()
