"""Capture under diffusers' context parallelism: one video's tokens split over several processes.

With ``transformer.enable_parallelism(config=ContextParallelConfig(ulysses_degree=N | ring_degree=N))``, Wan's
``_cp_plan`` splits the video sequence at ``blocks.0`` and gathers it at ``proj_out``. Cross-attention then runs
with the text replicated and each rank on its own slice of video tokens (diffusers' Wan processor passes no
parallel config to it), so each rank's capture computes the exact maps of its slice. The recorder gathers the
slices to rank 0, in rank order, and only rank 0 writes the store: one copy of the whole grid. Slices may be
uneven (the ``*_anything`` modes); every rank's length is exchanged once per length and the slices padded to
the longest for the collective.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist


@dataclass
class SequenceShards:
    """This rank's place in the context-parallel group and how to bring the slices together."""

    group: Any  # the torch.distributed process group spanning the context-parallel ranks
    rank: int
    world: int
    layout: dict[str, Any]  # what meta.json records: world size, ulysses and ring degrees
    _lengths: dict[int, list[int]] = field(default_factory=dict)

    @property
    def writes(self) -> bool:
        """Rank 0 of the group holds the store."""
        return self.rank == 0

    def lengths(self, local: int, device: torch.device) -> list[int]:
        """Every rank's slice length, in rank order (exchanged once per local length)."""
        if local not in self._lengths:
            mine = torch.tensor([local], device=device)
            every = [torch.zeros_like(mine) for _ in range(self.world)]
            dist.all_gather(every, mine, group=self.group)
            self._lengths[local] = [int(t) for t in every]
        return self._lengths[local]

    def gather(self, tensor: torch.Tensor) -> torch.Tensor | None:
        """The ranks' [..., S_r] slices concatenated along the last dim on rank 0; None on the other ranks."""
        lengths = self.lengths(tensor.shape[-1], tensor.device)
        longest = max(lengths)
        padded = torch.nn.functional.pad(tensor, (0, longest - tensor.shape[-1])).contiguous()
        dst = dist.get_global_rank(self.group, 0)
        parts = [torch.empty_like(padded) for _ in range(self.world)] if self.writes else None
        dist.gather(padded, parts, dst=dst, group=self.group)
        if not self.writes:
            return None
        return torch.cat([p[..., :n] for p, n in zip(parts, lengths, strict=True)], dim=-1)
