"""Jobs: the cross product of a sweep, each with a stable, readable folder name.

A job's folder name starts with what a person scans for (prompt, seed, bend) and ends with a short hash of every
parameter that changes the output (model, prompt, seed, recipe, generation options). Changing a setting in the
sweep file therefore gives new folders instead of silently counting old runs as done.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from .. import names
from .spec import SweepSpec

HASH_LENGTH = 8
SLUG_LENGTH = 40


@dataclass(frozen=True)
class Job:
    """One generation of the sweep."""

    name: str
    model: str
    prompt_index: int
    prompt: str
    seed: int
    bend_index: int
    bends: list[dict[str, Any]] | None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def params_hash(self) -> str:
        return self.name.rsplit("__", 1)[-1]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        return cls(**data)


def slug(text: str, length: int = SLUG_LENGTH) -> str:
    """Lower-case letters, digits and dots; everything else becomes one dash."""
    return names.slug(text, length, keep=".", empty="x")


def _number(value: float) -> str:
    return f"{value:g}"


def bend_label(bends: list[dict[str, Any]] | None) -> str:
    """Short human label of a recipe: ``none``, ``reweight circle 2``, ``reweight ball 0 L0-9 +1`` (+1: one more bend)."""
    if not bends:
        return "none"
    first = bends[0]
    parts = [first["op"]]
    if first.get("word"):
        parts.append(first["word"])
    from ..bend.recipe import parse_bend

    for value in parse_bend(0, first).params().values():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            parts.append(_number(value))
            break
    layers = first.get("layers")
    if layers:
        contiguous = layers == list(range(layers[0], layers[-1] + 1))
        parts.append(f"L{layers[0]}-{layers[-1]}" if contiguous and len(layers) > 1 else
                     f"L{layers[0]}" if len(layers) == 1 else f"{len(layers)}layers")
    if len(bends) > 1:
        parts.append(f"+{len(bends) - 1}")
    return " ".join(parts)


def params_hash(params: dict[str, Any]) -> str:
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:HASH_LENGTH]


def job_name(prompt_index: int, prompt: str, seed: int, bend_index: int, bends, params: dict[str, Any]) -> str:
    """``p00-a-red-circle-moving-left__s0__b01-reweight-circle-2__3fa9c1d2``."""
    return (f"p{prompt_index:02d}-{slug(prompt)}__s{seed}__b{bend_index:02d}-{slug(bend_label(bends), 32)}"
            f"__{params_hash(params)}")


def expand(spec: SweepSpec) -> list[Job]:
    """Every (prompt, seed, bend) combination, prompt-major, so the rows of the contact sheet fill in order."""
    options = spec.generate.generate_kwargs()
    jobs = []
    for pi, prompt in enumerate(spec.prompts):
        for seed in spec.seeds:
            for bi, bends in enumerate(spec.bends):
                params = {"model": spec.model, "prompt": prompt, "seed": seed, "bends": bends, "options": options}
                jobs.append(Job(name=job_name(pi, prompt, seed, bi, bends, params), model=spec.model,
                                prompt_index=pi, prompt=prompt, seed=seed, bend_index=bi, bends=bends,
                                options=dict(options)))
    return jobs
