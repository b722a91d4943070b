"""The Run folder: a zarr store of maps plus meta.json, written step by step and read lazily."""

from .run import Run, open_run
from .writer import RunWriter, write_meta

__all__ = ["Run", "RunWriter", "open_run", "write_meta"]
