"""Names shared by the Run-folder writer and reader."""

from __future__ import annotations

from pathlib import Path

MAPS_DIMS = ("step", "layer", "head", "word", "frame", "y", "x")
MASS_DIMS = ("step", "layer", "head", "frame", "y", "x")
PREVIEW_DIMS = ("step", "frame", "y", "x", "channel")


def is_run(path: Path) -> bool:
    """A folder is a run when it has a meta.json or a maps.zarr."""
    return (path / "meta.json").exists() or (path / "maps.zarr").exists()
