"""Mattes for compositing: a word's map alone, at the run's pixel size and frame count, no colour bar.

``matte_frames`` gives float32 [T, H, W] in [0, 1] (normalized as asked); writers turn it into a grayscale
H.264 MP4 (the grey value in all three channels), a 16-bit grayscale PNG sequence, or RGBA PNG overlays (the
colormap in RGB, the matte as alpha).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr
from PIL import Image

from ..store import Run
from ..video import write_mp4
from .colors import colorize
from .geometry import geometry
from .normalize import normalize
from .selection import Spec, select
from .upscale import as_tensor, time_weights, upscale_space


def matte_frames(run: Run, word: str, *, step: Spec = "mean", layer: Spec = "mean", head: Spec = "mean",
                 estimator: str = "raw", norm: str = "global", clip: float | None = None,
                 frames: Sequence[int] | None = None, time: str = "hold",
                 maps: xr.DataArray | None = None) -> np.ndarray:
    """The word's normalized map at pixel resolution: float32 [len(frames), H, W] in [0, 1]."""
    geo = geometry(run)
    maps = maps if maps is not None else select(run, word, step, layer, head, estimator)
    values = normalize(maps, norm, clip).values.values  # (F', Y, X)
    chosen = np.arange(geo.frames) if frames is None else np.asarray(list(frames), dtype=np.int64)
    a, b, w = time_weights(geo.frames, values.shape[0], geo.temporal, time)
    big = upscale_space(as_tensor(values, "cpu"), (geo.height, geo.width)).numpy()  # [F', H, W]
    wa = w[chosen][:, None, None]
    out = big[a[chosen]] * (1 - wa) + big[b[chosen]] * wa
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def write_matte_mp4(path: str | Path, matte: np.ndarray, fps: float) -> Path:
    """Grayscale H.264 (yuv420p, the grey in every channel): one video frame per matte frame."""
    grey = np.rint(matte * 255).astype(np.uint8)
    return write_mp4(Path(path), np.repeat(grey[..., None], 3, axis=-1), fps=fps)


def write_matte_pngs(folder: str | Path, matte: np.ndarray, stem: str = "matte") -> list[Path]:
    """16-bit grayscale PNGs ``stem_0000.png`` ... (0..65535 = normalized 0..1)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for t, frame in enumerate(np.rint(matte * 65535).astype(np.uint16)):
        path = folder / f"{stem}_{t:04d}.png"
        Image.fromarray(frame).save(path)
        paths.append(path)
    return paths


def write_rgba_pngs(folder: str | Path, matte: np.ndarray, cmap: str = "inferno",
                    stem: str = "overlay") -> list[Path]:
    """RGBA PNGs: the colormap of the matte in RGB, the matte itself as alpha (8 bit)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rgb = colorize(as_tensor(matte, "cpu"), cmap).numpy()  # [T, H, W, 3] uint8
    alpha = np.rint(matte * 255).astype(np.uint8)[..., None]
    paths = []
    for t, frame in enumerate(np.concatenate([rgb, alpha], axis=-1)):
        path = folder / f"{stem}_{t:04d}.png"
        Image.fromarray(frame, mode="RGBA").save(path)
        paths.append(path)
    return paths
