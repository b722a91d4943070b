"""Channel clusters for activation bends (Broad et al.): k-means on the channels' activation maps.

Each channel of a block's output is described by its activation map over the video grid (average-pooled to at
most 4 x 16 x 16 positions, standardized so clusters group channels by *where* they fire, not how strongly).
k-means (k-means++ start, Lloyd iterations) runs in float64 on the CPU, so a seed gives the same clusters on any
device. Clusters are numbered by size, largest first (ties: lowest first channel), so ``cluster: 0`` means the
same thing across runs. A clustering is saved as JSON and reused when the recipe names the file again.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from .recipe import BendRecipeError

FORMAT = "attnscope.bend.clusters/1"
POOL = (4, 16, 16)  # most (frames, y, x) positions a channel's map keeps for clustering


def channel_features(hidden: torch.Tensor) -> torch.Tensor:
    """(C, D) float64 features from hidden states (B, F, Y, X, C): pooled, standardized maps, batch averaged."""
    maps = hidden.detach().float().mean(dim=0).permute(3, 0, 1, 2)  # (C, F, Y, X)
    size = tuple(min(n, p) for n, p in zip(maps.shape[1:], POOL, strict=True))
    pooled = F.adaptive_avg_pool3d(maps.unsqueeze(0), size).squeeze(0).flatten(1).double().cpu()  # (C, D)
    pooled = pooled - pooled.mean(dim=1, keepdim=True)
    return pooled / pooled.norm(dim=1, keepdim=True).clamp_min(1e-12)


def kmeans(features: torch.Tensor, k: int, seed: int = 0, iterations: int = 100) -> torch.Tensor:
    """Labels (N,) of a k-means clustering of ``features`` (N, D), renumbered by cluster size, largest first."""
    n = features.shape[0]
    if k > n:
        raise BendRecipeError(f"cannot make {k} clusters of {n} channels; ask for at most {n}")
    gen = torch.Generator().manual_seed(seed)
    centres = features[torch.randint(n, (1,), generator=gen)]
    for _ in range(1, k):  # k-means++: far points are likelier next centres
        dist = torch.cdist(features, centres).amin(dim=1) ** 2
        pick = torch.multinomial(dist / dist.sum(), 1, generator=gen) if dist.sum() > 0 else torch.tensor([0])
        centres = torch.cat([centres, features[pick]])
    labels = torch.full((n,), -1, dtype=torch.long)
    for _ in range(iterations):
        dist = torch.cdist(features, centres)
        new = dist.argmin(dim=1)
        if torch.equal(new, labels):
            break
        labels = new
        for j in range(k):
            members = labels == j
            if members.any():
                centres[j] = features[members].mean(dim=0)
            else:  # an empty cluster takes the point farthest from its centre
                far = int(dist.gather(1, labels[:, None]).squeeze(1).argmax())
                centres[j] = features[far]
    sizes = torch.bincount(labels, minlength=k)
    first = torch.stack([torch.nonzero(labels == j)[0, 0] if sizes[j] else torch.tensor(n) for j in range(k)])
    order = sorted(range(k), key=lambda j: (-int(sizes[j]), int(first[j])))
    rank = torch.empty(k, dtype=torch.long)
    rank[torch.tensor(order)] = torch.arange(k)
    return rank[labels]


class ClusterFile:
    """Clusterings per (expert, layer) in one JSON file: loaded when it exists, written when a layer is added."""

    def __init__(self, path: Path | None, k: int, seed: int) -> None:
        self.path, self.k, self.seed = path, k, seed
        self.labels: dict[str, list[int]] = {}
        if path is not None and path.is_file():
            data = json.loads(path.read_text())
            if data.get("format") != FORMAT:
                raise BendRecipeError(f"{path} is not an attnscope channel clustering (format {FORMAT})")
            if (data["of"], data["seed"]) != (k, seed):
                raise BendRecipeError(f"{path} holds {data['of']} clusters made with seed {data['seed']}, the "
                                      f"recipe asks for {k} with seed {seed}; name another file or fix the recipe")
            self.labels = {key: list(v) for key, v in data["layers"].items()}

    @staticmethod
    def key(expert: str, layer: int) -> str:
        return f"{expert}/{layer}"

    def get(self, expert: str, layer: int, hidden: torch.Tensor) -> torch.Tensor:
        """Labels (C,) for this layer; computed from ``hidden`` (B, F, Y, X, C) and saved when missing."""
        key = self.key(expert, layer)
        if key not in self.labels:
            self.labels[key] = kmeans(channel_features(hidden), self.k, self.seed).tolist()
            self.save()
        labels = torch.tensor(self.labels[key])
        if labels.numel() != hidden.shape[-1]:
            raise BendRecipeError(f"the clustering for {key} in {self.path} has {labels.numel()} channels, the "
                                  f"model's block has {hidden.shape[-1]}; it was made for another model")
        return labels

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"format": FORMAT, "of": self.k, "seed": self.seed, "layers": self.labels}
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.path)
