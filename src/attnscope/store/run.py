"""Open a Run folder as lazy, named arrays."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import xarray as xr
import zarr

from ..errors import RunFormatError, SelectionError
from .chain import ATTR, StepChained
from .compact import SCALE, Dequantized
from .layout import MAPS_DIMS, MASS_DIMS, PREVIEW_DIMS, PROBE, PROBE_DIMS, SUMMARIES, SUMMARY_DIMS

NO_PROBE = ("this run has no probe rows; capture them with `attnscope generate ... --probe F,Y,X` or "
            "`attnscope.trace(..., probe_points=[(frame, y, x)])` (latent token grid units)")


class Run:
    """A captured run: ``maps``, ``prompt_mass`` (lazy xarray over zarr), ``meta``, ``words``.

    Arrays are read lazily chunk by chunk (one chunk = one (step, layer) slab), so selecting one step and layer
    reads one chunk, whatever the size of the run. A compact run (``precision`` "uint8") reads back as the same
    float16 arrays, within ``meta["precision"]["max_abs_error"]`` of each map's maximum.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        meta_file = self.path / "meta.json"
        if not meta_file.exists():
            raise RunFormatError(f"{self.path} is not an attnscope run (no meta.json); pass a folder written by "
                                 "`attnscope generate` or `attnscope.trace(..., store=...)`")
        try:
            self.meta: dict[str, Any] = json.loads(meta_file.read_text())
        except json.JSONDecodeError as exc:
            raise RunFormatError(f"{meta_file} is not valid JSON ({exc}); the run is damaged") from exc
        self._arrays: dict[str, zarr.Array | None] = {}
        for key in ("grid", "layers", "heads", "num_steps"):
            if key not in self.meta:
                raise RunFormatError(f"{meta_file} lacks '{key}'; the run is damaged or from another tool")

    @property
    def words(self) -> list[str]:
        return [w["label"] for w in self.meta.get("words", [])]

    @property
    def complete(self) -> bool:
        return bool(self.meta.get("complete"))

    @property
    def steps_done(self) -> list[int]:
        return [s["index"] for s in self.meta.get("steps", [])]

    def steps_of(self, name: str) -> list[int]:
        """The finished steps that hold array ``name``: every finished step, except that a capture may keep
        ``self_prop`` at fewer (meta ``capture.self_prop_steps``; its other steps are unwritten)."""
        kept = self.meta.get("capture", {}).get("self_prop_steps") if name == "self_prop" else None
        if kept is None or kept == "all":
            return self.steps_done
        return [s for s in self.steps_done if s in set(kept)]

    @property
    def precision(self) -> str:
        """"fp16" (lossless; runs written before the option existed) or "uint8" (compact)."""
        return "uint8" if self.meta.get("precision", {}).get("dtype") == "uint8" else "fp16"

    @property
    def video_path(self) -> Path | None:
        p = self.path / "video.mp4"
        return p if p.exists() else None

    @cached_property
    def _group(self) -> zarr.Group:
        store = self.path / "maps.zarr"
        if not store.exists():
            raise RunFormatError(f"{self.path} has no maps.zarr; the run never captured a step")
        return zarr.open_group(store, mode="r")

    def array(self, name: str) -> zarr.Array | Dequantized | StepChained | None:
        """The zarr array ``name`` (e.g. "maps"), or None when the run lacks it: for direct indexing, where a
        lazy xarray's graph would cost more than reading one chunk. A compact array comes as a
        :class:`~attnscope.store.compact.Dequantized` view: indexing it gives float16 values all the same."""
        if name not in self._arrays:
            array = self._group.get(name, None)
            scale = self._group.get(name + SCALE, None) if array is not None else None
            if array is not None and ATTR in array.attrs:
                array = StepChained(array, array.attrs[ATTR], finished=self.steps_done)
            self._arrays[name] = array if scale is None else Dequantized(array, scale)
        return self._arrays[name]

    def summary(self, estimator: str = "raw") -> zarr.Array | None:
        """The mean over heads for ``estimator`` as a zarr array (step, layer, word, frame, y, x); None for runs
        written before summaries existed and for estimators without one (value-norm)."""
        return self.array(SUMMARIES[estimator]) if estimator in SUMMARIES else None

    def _coords(self, dims: tuple[str, ...]) -> dict[str, Any]:
        coords = {
            "step": list(range(self.meta["num_steps"])),
            "layer": list(self.meta["layers"]),
            "head": list(self.meta["heads"]),
            "word": self.words,
            "point": list(range(len(self.probe_points))),
        }
        return {d: coords[d] for d in dims if d in coords}

    def _lazy(self, name: str, dims: tuple[str, ...]) -> xr.DataArray | None:
        array = self.array(name)
        if array is None:
            return None
        import dask.array as da  # lazy: only readers need dask

        if isinstance(array, zarr.Array):
            data = da.from_zarr(array, chunks=array.chunks)
        else:
            # a chained array's steps are read a chain at a time: one dask chunk per chain, not per step
            codes = array.codes if isinstance(array, Dequantized) else array
            chunks = (codes.group, *array.chunks[1:]) if isinstance(codes, StepChained) else array.chunks
            data = da.from_array(array, chunks=chunks, name=False, asarray=True)
        return xr.DataArray(data, dims=dims, coords=self._coords(dims), name=name)

    @cached_property
    def maps(self) -> xr.DataArray:
        """Probabilities (step, layer, head, word, frame, y, x); NaN where a step was not captured."""
        return self._lazy("maps", MAPS_DIMS)

    @cached_property
    def prompt_mass(self) -> xr.DataArray:
        """Attention on the real prompt tokens (not padding) per query, to renormalize maps."""
        return self._lazy("prompt_mass", MASS_DIMS)

    @cached_property
    def head_mean(self) -> xr.DataArray | None:
        """Maps averaged over the kept heads (step, layer, word, frame, y, x), written beside ``maps`` so long
        step/layer means read few chunks; None for runs written before it existed."""
        return self._lazy(SUMMARIES["raw"], SUMMARY_DIMS)

    @cached_property
    def value_norm(self) -> xr.DataArray | None:
        """Optional: ‖p·v·W_o‖ per word and query (the value-norm estimator), when captured."""
        return self._lazy("value_norm", MAPS_DIMS)

    @cached_property
    def value_proj(self) -> xr.DataArray | None:
        """Optional: each word's contribution projected on the query's whole attention output, ⟨p·v·W_o, y⟩/‖y‖
        (the value-proj estimator), when captured; summed over heads it is exact for the layer's output."""
        return self._lazy("value_proj", MAPS_DIMS)

    @cached_property
    def self_prop(self) -> xr.DataArray | None:
        """Optional: the maps propagated through the same block's self-attention, Ā·m (the self-prop
        estimator), when captured with ``self_prop=True``."""
        return self._lazy("self_prop", MAPS_DIMS)

    @property
    def probe_points(self) -> list[tuple[int, int, int]]:
        """The (frame, y, x) latent tokens whose self-attention rows were captured (``probe``), in ``point`` order."""
        return [tuple(p) for p in self.meta.get("capture", {}).get("probe_points") or []]

    @cached_property
    def probe(self) -> xr.DataArray | None:
        """Optional: where each probe point attends in space-time, the head-mean self-attention row of its token
        (step, layer, point, frame, y, x) float32, each row summing to one; None without probe points."""
        return self._lazy(PROBE, PROBE_DIMS)

    def probe_rows(self, point: int | tuple[int, int, int] | None = None, step: int | None = None,
                   layer: int | None = None) -> xr.DataArray:
        """The probe rows, read: ``point`` (its index, or its (frame, y, x)), ``step`` and ``layer`` pick one each
        (None keeps the dim); float32 with named dims (frame, y, x last)."""
        rows = self.probe
        if rows is None:
            raise SelectionError(NO_PROBE)
        if point is not None:
            rows = rows.isel(point=self._probe_position(point))
        if step is not None:
            if step not in self.steps_done:
                raise SelectionError(f"step {step} is not captured in this run; its steps are {self.steps_done}")
            rows = rows.sel(step=step)
        if layer is not None:
            if layer not in self.meta["layers"]:
                raise SelectionError(f"layer {layer} is not captured in this run; its layers are {self.meta['layers']}")
            rows = rows.sel(layer=layer)
        return rows.load()

    def _probe_position(self, point: int | tuple[int, int, int]) -> int:
        points = self.probe_points
        if isinstance(point, int):
            if not 0 <= point < len(points):
                raise SelectionError(f"probe point index {point}: this run has {len(points)} ({points})")
            return point
        if tuple(point) not in points:
            raise SelectionError(f"{tuple(point)} is not a probe point of this run; it probed {points}")
        return points.index(tuple(point))

    @cached_property
    def previews(self) -> xr.DataArray | None:
        """Decoded x0 predictions per step (step, frame, y, x, channel) uint8, when captured."""
        p = self.path / "previews.zarr"
        if not p.exists():
            return None
        import dask.array as da

        array = zarr.open_array(p, mode="r")
        return xr.DataArray(da.from_zarr(array, chunks=array.chunks), dims=PREVIEW_DIMS, name="previews")

    def __repr__(self) -> str:
        state = "complete" if self.complete else "incomplete"
        return f"Run({str(self.path)!r}, {state}, words={self.words}, prompt={self.meta.get('prompt')!r})"


def open_run(path: str | Path) -> Run:
    """Open a Run folder written by ``attnscope.trace`` or ``attnscope generate``."""
    return Run(path)
