"""The viewer's state: the runs folder, opened runs, decoded videos and selected maps, all cached.

Why caches: a 1.3B run's store holds gigabytes; one (step, layer) slab is one chunk of a few MB. Opening a run
and decoding its video happen once; a selection (word x steps x layers x heads) is read once from its chunks and
then reused by every control that only changes how it is drawn (colormap, normalization, opacity, frame). A
word's head-mean summary is read once too, so every step x layer mean over all heads is a sum in memory.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
import xarray as xr

from ..errors import RunFormatError
from ..render import select
from ..render.selection import Spec, describe, resolve, summary_block
from ..store import Run, open_run
from ..video import read_mp4
from .cache import LRU
from .runs import meta_mtime
from .safety import inside

RUN_FILES = ("meta.json", "maps.zarr", "video.mp4", "previews.zarr")
PREVIEW_SLABS = 4  # a preview reads this many slabs: ~8-10 ms each on a 1.3B run, so it lands within 150 ms


class Viewer:
    """One runs folder seen through the app; every path is checked to resolve inside it."""

    def __init__(self, runs_dir: str | Path, out_dir: str | Path | None = None) -> None:
        self.root = Path(runs_dir).resolve()
        if not self.root.is_dir():
            raise RunFormatError(f"{runs_dir} is not a folder; pass the folder that holds your runs "
                                 "(e.g. runs/)")
        if out_dir is None:  # renders are copied into Gradio's cache when served; ours go when the process ends
            self.out = Path(tempfile.mkdtemp(prefix="attnscope-view-"))
            atexit.register(shutil.rmtree, self.out, ignore_errors=True)
        else:
            self.out = Path(out_dir)
            self.out.mkdir(parents=True, exist_ok=True)
        self._runs: LRU[Run] = LRU(8)
        self._videos: LRU[np.ndarray | None] = LRU(3)
        self._maps: LRU[xr.DataArray] = LRU(64)
        self._summaries: LRU[np.ndarray | None] = LRU(8)  # ~100 MB each for a 1.3B run (50 x 30 x 21x30x52 fp16)
        self._prefetch = ThreadPoolExecutor(1, thread_name_prefix="attnscope-prefetch")
        self._thumbs: LRU[np.ndarray | None] = LRU(256)

    def path(self, rel: str | Path) -> Path:
        """The run folder named ``rel`` (relative to the runs folder), checked to stay inside it."""
        if not rel:
            raise RunFormatError("no run selected; pick one in the run list (press Refresh if it is empty)")
        return inside(self.root, rel)

    def run(self, rel: str | Path) -> Run:
        """The opened run, reopened when meta.json changed (a run still being written gains steps)."""
        path = self.path(rel)
        for name in RUN_FILES:  # a symlinked file must not lead outside the runs folder either
            if (path / name).exists():
                inside(self.root, path / name)
        return self._runs.get((path, meta_mtime(path)), lambda: open_run(path))

    def video(self, run: Run) -> np.ndarray | None:
        """The run's decoded video uint8 [T, H, W, 3], or None when it has none."""
        if run.video_path is None:
            return None
        path = inside(self.root, run.video_path)
        return self._videos.get((path, path.stat().st_mtime_ns), lambda: read_mp4(path))

    def selection(self, run: Run, word: str, step: Spec, layer: Spec, head: Spec,
                  estimator: str = "raw") -> xr.DataArray:
        """``render.select`` cached by everything that decides its values (float32 (frame, y, x))."""
        return self._maps.get(_map_key(run, word, step, layer, head, estimator),
                              lambda: self._select(run, word, step, layer, head, estimator))

    def _select(self, run: Run, word: str, step: Spec, layer: Spec, head: Spec, estimator: str) -> xr.DataArray:
        """Means over all heads come from the word's summary. Some heads over several slabs are picked from the
        means of every head, kept: reading those slabs decodes all heads anyway, so the head slider then moves
        without reading them again."""
        _, where = resolve(run, word, step, layer, head, estimator)
        heads = where["head"]
        if len(where["step"]) * len(where["layer"]) == 1 or len(heads) == len(run.meta["heads"]):
            return select(run, word, step, layer, head, estimator, summary=lambda w, e: self.summary(run, w, e))
        each = self._maps.get(_map_key(run, word, step, layer, EACH_HEAD, estimator),
                              lambda: select(run, word, step, layer, "mean", estimator, keep=("head",)))
        out = each.sel(head=heads).mean("head")
        out.attrs.update(each.attrs, head=describe(heads))
        return out

    def slow_slabs(self, run: Run, word: str, step: Spec, layer: Spec, head: Spec, estimator: str = "raw") -> int:
        """How many slabs the exact selection still has to read from the store, when that is more than a
        preview reads; else 0. Only a mean over some heads across a range is slow: one slab, a cached selection
        and a mean over all heads (the summary) are quick."""
        if _map_key(run, word, step, layer, head, estimator) in self._maps:
            return 0
        _, where = resolve(run, word, step, layer, head, estimator)
        slabs = len(where["step"]) * len(where["layer"])
        if slabs <= PREVIEW_SLABS or len(where["head"]) == len(run.meta["heads"]):
            return 0
        if _map_key(run, word, step, layer, EACH_HEAD, estimator) in self._maps:
            return 0
        return slabs

    def preview(self, run: Run, word: str, step: Spec, layer: Spec, head: Spec,
                estimator: str = "raw") -> xr.DataArray:
        """An approximate ``selection``: the mean of ``PREVIEW_SLABS`` (step, layer) slabs spread evenly over the
        range. Why: a mean over one head across 50 steps x 30 layers reads 1,500 chunks (seconds); the viewer
        shows this first, then the exact map."""
        _, where = resolve(run, word, step, layer, head, estimator)
        pairs = [(s, layer_) for s in where["step"] for layer_ in where["layer"]]
        picked = [pairs[i] for i in np.unique(np.linspace(0, len(pairs) - 1, PREVIEW_SLABS).round().astype(int))]
        maps = [select(run, word, s, layer_, where["head"], estimator) for s, layer_ in picked]
        out = sum(maps[1:], maps[0]) / len(maps)
        out.attrs.update(maps[0].attrs, step=describe(where["step"]), layer=describe(where["layer"]),
                         preview=f"{len(picked)} of {len(pairs)} slabs")
        return out

    def summary(self, run: Run, word: str, estimator: str) -> np.ndarray | None:
        """The word's head-mean summary of every step and layer, read once per run state: a mean over any step x
        layer range is then a sum in memory (``render.selection.mean_map``). The run's other words are then
        read in the background, so switching word under a mean does not wait for the disk."""
        block = self._summaries.get(_summary_key(run, word, estimator), lambda: summary_block(run, word, estimator))
        for other in run.words if block is not None else ():
            self.prefetch(run, other, estimator)
        return block

    def prefetch(self, run: Run, word: str, estimator: str = "raw") -> None:
        """Start reading ``word``'s summary in the background when a run opens, so the first mean over a range
        does not wait for the whole read (a few hundred ms on a 1.3B run)."""
        key = _summary_key(run, word, estimator)
        if key not in self._summaries:
            self._prefetch.submit(self._summaries.get, key, lambda: summary_block(run, word, estimator))

    def thumbnail(self, rel: str, long_side: int = 160) -> np.ndarray | None:
        """First video frame (else the last preview), downscaled; None when the run has neither."""
        path = self.path(rel)
        return self._thumbs.get((path, meta_mtime(path)), lambda: _thumbnail(self.root, path, long_side))

    def new_file(self, suffix: str) -> Path:
        """A fresh file in the viewer's output folder (renders served back to the browser)."""
        return self.out / f"{uuid.uuid4().hex[:12]}{suffix}"


EACH_HEAD = "each head"  # the head "spec" of a cached selection that keeps every head of its range


def _map_key(run: Run, word: str, step: Spec, layer: Spec, head: Spec, estimator: str) -> tuple:
    """What decides a cached selection's values, the run's state (meta.json's mtime) included."""
    return run.path, meta_mtime(run.path), word, str(step), str(layer), str(head), estimator


def _summary_key(run: Run, word: str, estimator: str) -> tuple:
    return run.path, meta_mtime(run.path), word, estimator


def _thumbnail(root: Path, path: Path, long_side: int) -> np.ndarray | None:
    from PIL import Image

    video = path / "video.mp4"
    frame = None
    if video.is_file():
        with av.open(str(inside(root, video))) as container:
            first = next(container.decode(video=0), None)
            frame = first.to_ndarray(format="rgb24") if first is not None else None
    elif (path / "previews.zarr").exists():
        run = open_run(path)
        done = run.steps_done
        if run.previews is not None and done:
            frame = run.previews.isel(step=done[-1], frame=run.previews.sizes["frame"] // 2).values
    if frame is None:
        return None
    image = Image.fromarray(np.ascontiguousarray(frame))
    image.thumbnail((long_side, long_side))
    return np.asarray(image)
