"""Activation bends: transforms of a block's output hidden states seen as (B, F, Y, X, C) (Broad et al., 2021).

The spatial and temporal transforms are those of :mod:`attnscope.bend.maps`, applied to each chosen channel's map.
The numeric ones: ``multiply`` (by ``factor``), ``invert`` (negation: -x, the sign flip of a feature; note this
differs from the attention ``invert``, which reflects a probability map within its range), ``threshold`` (zero
values whose magnitude is below ``level`` times the frame's largest magnitude, per channel), ``ablate`` (zero),
``noise`` (add Gaussian noise with standard deviation ``std`` times that of the chosen channels in this call,
drawn from a CPU generator seeded by the bend's seed, the step, the layer and the branch, so a run repeats
exactly and different calls get different noise).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from . import maps
from .clusters import ClusterFile
from .recipe import ActivationBend, ClusterChannels, ShareChannels

__all__ = ["ChannelPicker", "bend_hidden", "noise_seed"]


def noise_seed(seed: int, step: int, layer: int, branch: str) -> int:
    """One reproducible seed per (bend seed, step, layer, branch)."""
    return (seed * 1_000_003 + step * 10_007 + layer * 101 + (branch == "uncond")) % (2**63)


def _numeric(x: torch.Tensor, bend: ActivationBend, seed: int, params: dict[str, Any]) -> torch.Tensor:
    op = bend.op
    if op == "multiply":
        return x * bend.factor
    if op == "invert":
        return -x
    if op == "threshold":
        return maps.threshold(x, bend.level, magnitude=True)
    if op == "ablate":
        return torch.zeros_like(x)
    if op == "noise":
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn(x.shape, generator=gen, dtype=torch.float32).to(x.device)
        return x + bend.std * x.std() * noise
    return maps.transform(x, op, **params)


def bend_hidden(hidden: torch.Tensor, bend: ActivationBend, channels: torch.Tensor | None,
                seed: int = 0, params: dict[str, Any] | None = None) -> torch.Tensor:
    """Bend hidden states (B, F, Y, X, C) on ``channels`` (indices; None = all); returns a new tensor.
    ``params``: the op's parameters at this step (:meth:`Bend.params_at`; default: as written)."""
    dtype = hidden.dtype
    picked = hidden if channels is None else hidden.index_select(-1, channels)  # (B, F, Y, X, k)
    as_maps = picked.float().permute(0, 4, 1, 2, 3)  # (B, k, F, Y, X): one map per channel
    bent = _numeric(as_maps, bend, seed, bend.params() if params is None else params)
    bent = bent.permute(0, 2, 3, 4, 1).to(dtype)  # back to (B, F, Y, X, k)
    if channels is None:
        return bent.contiguous()
    return hidden.index_copy(-1, channels, bent)


class ChannelPicker:
    """Which channels each activation bend acts on, resolved once per (bend, expert, layer) and kept."""

    def __init__(self, run_dir: str | Path | None = None) -> None:
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.files: dict[str, ClusterFile] = {}
        self._cache: dict[tuple[int, str, int], torch.Tensor | None] = {}

    def cluster_path(self, index: int, spec: ClusterChannels) -> Path | None:
        """Where a bend's clustering lives: the recipe's ``file``, else ``RUN/bend-clusters-<index>.json``."""
        if spec.file:
            return Path(spec.file)
        return self.run_dir / f"bend-clusters-{index}.json" if self.run_dir is not None else None

    def pick(self, index: int, bend: ActivationBend, expert: str, layer: int,
             hidden: torch.Tensor) -> torch.Tensor | None:
        """Channel indices (on ``hidden``'s device) for this bend at this layer; None means every channel."""
        key = (index, expert, layer)
        if key not in self._cache:
            self._cache[key] = self._resolve(index, bend, expert, layer, hidden)
        chosen = self._cache[key]
        return chosen.to(hidden.device) if chosen is not None else None

    def _resolve(self, index: int, bend: ActivationBend, expert: str, layer: int,
                 hidden: torch.Tensor) -> torch.Tensor | None:
        spec, n = bend.channels, hidden.shape[-1]
        if isinstance(spec, ShareChannels):
            count = max(1, round(spec.share * n))
            order = torch.randperm(n, generator=torch.Generator().manual_seed(spec.seed))
            return order[:count].sort().values
        if isinstance(spec, ClusterChannels):
            path = self.cluster_path(index, spec)
            name = str(path) if path is not None else f"memory:{index}"
            if name not in self.files:
                self.files[name] = ClusterFile(path, spec.of, spec.seed)
            labels = self.files[name].get(expert, layer, hidden)
            return torch.nonzero(labels == spec.cluster).flatten()
        return None
