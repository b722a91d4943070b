"""Names shared by the Run-folder writer and reader."""

from __future__ import annotations

from pathlib import Path

MAPS_DIMS = ("step", "layer", "head", "word", "frame", "y", "x")
MASS_DIMS = ("step", "layer", "head", "frame", "y", "x")
PREVIEW_DIMS = ("step", "frame", "y", "x", "channel")
SUMMARY_DIMS = ("step", "layer", "word", "frame", "y", "x")
# Mean over the kept heads of every (step, layer) slab, per estimator: a step x layer range averaged over all
# heads reads these (one chunk per (step, word), all layers) instead of every (step, layer) chunk of ``maps``.
SUMMARIES = {"raw": "head_mean", "renorm": "head_mean_renorm"}
EPS = 1e-8  # renorm divides by prompt mass + EPS (a query with no mass on the prompt stays finite)


def is_run(path: Path) -> bool:
    """A folder is a run when it has a meta.json or a maps.zarr."""
    return (path / "meta.json").exists() or (path / "maps.zarr").exists()
