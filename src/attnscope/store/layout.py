"""Names shared by the Run-folder writer and reader."""

from __future__ import annotations

from pathlib import Path

MAPS_DIMS = ("step", "layer", "head", "word", "frame", "y", "x")
MASS_DIMS = ("step", "layer", "head", "frame", "y", "x")
PREVIEW_DIMS = ("step", "frame", "y", "x", "channel")
# the probe points' head-mean self-attention rows (trace(probe_points=...)): one row over every video token per
# point, stored float32 because a row's values sit near 1/S, below float16's smallest normal number (6.1e-5) once a
# video has more than 16k tokens (Wan2.1-1.3B at 480×832×81: 32760), where float16 keeps only a few bits
PROBE = "probe"
PROBE_DIMS = ("step", "layer", "point", "frame", "y", "x")
FLOAT32_ARRAYS = (PROBE,)
SUMMARY_DIMS = ("step", "layer", "word", "frame", "y", "x")
# Mean over the kept heads of every (step, layer) slab, per estimator: a step x layer range averaged over all
# heads reads these (one chunk per (step, word), all layers) instead of every (step, layer) chunk of ``maps``.
SUMMARIES = {"raw": "head_mean", "renorm": "head_mean_renorm"}
EPS = 1e-8  # renorm divides by prompt mass + EPS (a query with no mass on the prompt stays finite)


def is_run(path: Path) -> bool:
    """A folder is a run when it has a meta.json or a maps.zarr."""
    return (path / "meta.json").exists() or (path / "maps.zarr").exists()
