"""How big a store will be, and whether it fits."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import DiskSpaceError


def estimate_store_bytes(steps: int, layers: int, heads: int, words: int, grid: tuple[int, int, int],
                         value_norm: bool = False, self_prop: bool = False, precision: str = "fp16",
                         probes: int = 0) -> int:
    """Upper bound (uncompressed) of maps + prompt_mass (+ value_norm and value_proj, + self_prop): two bytes a
    value, one under the compact "uint8" precision (value_proj, which can be negative, keeps two); + the float32
    rows of ``probes`` probe points."""
    f, y, x = grid
    b = 1 if precision == "uint8" else 2
    per_word = words * (b + value_norm * (b + 2) + self_prop * b) + b
    return steps * layers * (heads * per_word + 4 * probes) * f * y * x


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TB"


def check_fits(path: Path, needed: int) -> None:
    """Refuse before generating when the disk under ``path`` cannot hold ``needed`` bytes."""
    probe = Path(path).resolve()
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed > free:
        raise DiskSpaceError(
            f"the store needs up to {human_bytes(needed)} but only {human_bytes(free)} is free under {probe}; "
            "capture fewer words/heads/layers/steps (e.g. --heads mean) or choose another --out"
        )
