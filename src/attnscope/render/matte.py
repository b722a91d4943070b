"""Mattes for compositing: a word's map alone, at the run's pixel size and frame count, no colour bar.

``matte_frames`` gives float32 [T, H, W] in [0, 1] (normalized as asked); writers turn it into a grayscale
H.264 MP4 (the grey value in all three channels), a 16-bit grayscale PNG sequence, or RGBA PNG overlays (the
colormap in RGB, the matte as alpha). :func:`write_matte` is ``attnscope render --kind matte``: the output path
says the format (``.mp4`` a video, ``.png`` one frame, a folder a PNG sequence), and the map is the resolved
view's (:func:`attnscope.render.view.resolve_view`), the same one the overlay shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr
from PIL import Image

from ..errors import SelectionError
from ..store import Run
from ..video import write_mp4
from .colors import colorize
from .geometry import geometry
from .normalize import normalize
from .selection import Spec, select
from .upscale import as_tensor, time_weights, upscale_space
from .view import View, file_stem

TARGETS = ("mp4", "png", "folder")


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


def grey16(frame: np.ndarray) -> Image.Image:
    """One matte frame as a 16-bit grayscale image (0..65535 = normalized 0..1): 256 times finer steps than
    8 bit, so a key or a grade on the matte shows no banding."""
    return Image.fromarray(np.rint(frame * 65535).astype(np.uint16))


def rgba(matte: np.ndarray, cmap: str = "inferno") -> np.ndarray:
    """uint8 [T, H, W, 4]: the colormap of the matte in RGB, the matte itself as alpha."""
    rgb = colorize(as_tensor(matte, "cpu"), cmap).numpy()  # [T, H, W, 3] uint8
    return np.concatenate([rgb, np.rint(matte * 255).astype(np.uint8)[..., None]], axis=-1)


def write_matte_pngs(folder: str | Path, matte: np.ndarray, stem: str = "matte") -> list[Path]:
    """16-bit grayscale PNGs ``stem_0000.png`` ... (0..65535 = normalized 0..1)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for t, frame in enumerate(matte):
        path = folder / f"{stem}_{t:04d}.png"
        grey16(frame).save(path)
        paths.append(path)
    return paths


def write_rgba_pngs(folder: str | Path, matte: np.ndarray, cmap: str = "inferno",
                    stem: str = "overlay") -> list[Path]:
    """RGBA PNGs: the colormap of the matte in RGB, the matte itself as alpha (8 bit)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for t, frame in enumerate(rgba(matte, cmap)):
        path = folder / f"{stem}_{t:04d}.png"
        Image.fromarray(frame).save(path)  # uint8 [H, W, 4]: RGBA
        paths.append(path)
    return paths


def matte_target(path: str | Path) -> str:
    """What an output path asks for: ``mp4`` (a grayscale video), ``png`` (one frame) or ``folder`` (a PNG
    sequence: an existing folder, or a path without a suffix)."""
    path = Path(path)
    if path.is_dir() or not path.suffix:
        return "folder"
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in ("mp4", "png"):
        raise SelectionError(f"--kind matte writes a .mp4 (grayscale video), a .png (one frame) or a folder "
                             f"(a PNG sequence); got -o {path}")
    return suffix


def write_matte(run: Run, view: View, path: str | Path, *, as_rgba: bool = False, cmap: str = "inferno",
                clip: float | None = None, time: str = "hold", frame: int | None = None) -> Path:
    """Write the view's matte of its word to ``path`` (see :func:`matte_target`) and return it.

    A folder gets ``<word>_matte_0000.png`` ... (``<word>_rgba_...`` with ``as_rgba``), one per pixel frame; a
    ``.png`` gets pixel frame ``frame`` (default: the middle one). ``as_rgba`` writes RGBA overlays instead of
    16-bit grey, which only PNGs hold.
    """
    path = Path(path)
    target = matte_target(path)
    if as_rgba and target == "mp4":
        raise SelectionError(f"RGBA overlays are PNGs; give -o a folder (a PNG sequence) or a .png (one frame), "
                             f"not {path.name}")
    geo = geometry(run)
    if frame is not None and not 0 <= frame < geo.frames:
        raise SelectionError(f"frame {frame} out of range; this video has frames 0-{geo.frames - 1}")
    pick = [geo.middle if frame is None else frame] if target == "png" else None
    matte = matte_frames(run, view.word, norm=view.norm, clip=clip, frames=pick, time=time, maps=view.map(run))
    stem = file_stem([view.word])
    if target == "folder":
        if as_rgba:
            write_rgba_pngs(path, matte, cmap, stem=f"{stem}_rgba")
        else:
            write_matte_pngs(path, matte, stem=f"{stem}_matte")
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if target == "mp4":
        return write_matte_mp4(path, matte, geo.fps)
    image = Image.fromarray(rgba(matte, cmap)[0]) if as_rgba else grey16(matte[0])
    image.save(path)
    return path
