"""Existing footage in, the model's pixel grid out: read a clip, crop and resize it, cut it to 4k+1 frames.

Why a fixed recipe: a Wan model only takes 4k+1 frames whose sides are multiples of VAE × patch, and it has
only learnt the sizes it was trained at; so the clip is centre-cropped to the target's aspect (nothing is
stretched), resized, and trailing frames are dropped. What was done is kept (``Footage.resize``) for the run's
meta and printed as one line, so a map is never read against a picture the user did not know was changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import FootageError
from ..models.wan import WanGeometry

MIN_FRAMES = 5  # one latent frame more than a still: fewer frames are an image, and leave Wan's time axis empty
DEFAULT_FPS = 16.0  # Wan's own frame rate, for arrays that come without one


@dataclass
class Footage:
    """Frames uint8 [T, H, W, 3] at ``fps``; ``source`` names where they came from (a path or "array")."""

    frames: np.ndarray
    fps: float
    source: str
    resize: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        t, h, w, _ = self.frames.shape
        return t, h, w


def read_footage(video: str | Path | np.ndarray | Footage, fps: float | None = None) -> Footage:
    """A video file (anything PyAV decodes) or an array [T, H, W, 3] uint8, checked; raises FootageError.
    A :class:`Footage` passes through (the CLI reads the clip before loading the model, and only once)."""
    if isinstance(video, Footage):
        return video
    if isinstance(video, np.ndarray):
        frames, rate, source = video, fps or DEFAULT_FPS, "array"
    else:
        path = Path(video).expanduser()
        if not path.is_file():
            raise FootageError(f"no video at {path}")
        frames, rate = _decode(path)
        rate, source = fps or rate, str(path)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise FootageError(f"footage must be uint8 frames [T, H, W, 3]; got {frames.dtype} {tuple(frames.shape)}")
    if frames.shape[0] < MIN_FRAMES:
        raise FootageError(f"{source} has {frames.shape[0]} frame(s); analyze needs at least {MIN_FRAMES} "
                           "(one latent frame beyond the first)")
    return Footage(np.ascontiguousarray(frames), float(rate), source)


def _decode(path: Path) -> tuple[np.ndarray, float]:
    import av

    from ..video import read_mp4

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise FootageError(f"{path} has no video stream")
            rate = container.streams.video[0].average_rate
        frames = read_mp4(path)
    except FootageError:
        raise
    except (av.error.FFmpegError, ValueError) as exc:  # ValueError: no frame decoded (np.stack of nothing)
        raise FootageError(f"cannot read {path} as a video ({type(exc).__name__}: {exc})") from exc
    return frames, float(rate) if rate else DEFAULT_FPS


def fit(footage: Footage, geometry: WanGeometry, frames: int | None, height: int, width: int) -> Footage:
    """``footage`` on the model's grid: at most ``frames`` frames cut down to 4k+1, centre-cropped to
    ``width / height`` and resized to it (antialiased when shrinking). ``height`` and ``width`` must already fit
    the model (``geometry.grid`` says why not)."""
    t, h, w = footage.shape
    geometry.grid(1, height, width)  # raises ShapeError with the nearest size that fits
    keep = min(t, frames) if frames else t
    keep = (keep - 1) // geometry.vae_temporal * geometry.vae_temporal + 1
    if frames and keep < MIN_FRAMES:
        raise FootageError(f"--frames {frames} leaves {keep} frame(s); analyze needs at least {MIN_FRAMES}")
    crop_h, crop_w = (h, round(h * width / height)) if w * height > h * width else (round(w * height / width), w)
    crop_h, crop_w = min(crop_h, h), min(crop_w, w)
    y0, x0 = (h - crop_h) // 2, (w - crop_w) // 2
    clip = footage.frames[:keep, y0:y0 + crop_h, x0:x0 + crop_w]
    if (crop_h, crop_w) != (height, width):
        clip = _resize(clip, height, width)
    resize = {
        "source": {"frames": t, "height": h, "width": w, "fps": footage.fps},
        "crop": {"y": y0, "x": x0, "height": crop_h, "width": crop_w},
        "size": {"frames": keep, "height": height, "width": width},
        "frames_dropped": t - keep,
    }
    resize["note"] = describe(resize)
    return Footage(np.ascontiguousarray(clip), footage.fps, footage.source, resize)


def _resize(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()  # [T, 3, H, W]
    shrink = height < x.shape[2] or width < x.shape[3]
    x = torch.nn.functional.interpolate(x, size=(height, width), mode="bilinear", align_corners=False,
                                        antialias=shrink)
    return x.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()  # [T, H, W, 3]


def describe(resize: dict[str, Any]) -> str:
    """One line saying what was done to the clip, e.g. "1920×1080, 300 frames @ 30 fps → centre crop 1080×1080
    → resized to 256×256; first 17 frames kept (283 dropped)"."""
    src, crop, size = resize["source"], resize["crop"], resize["size"]
    parts = [f"{src['width']}×{src['height']}, {src['frames']} frames @ {src['fps']:g} fps"]
    if (crop["height"], crop["width"]) != (src["height"], src["width"]):
        parts.append(f"centre crop {crop['width']}×{crop['height']}")
    if (crop["height"], crop["width"]) != (size["height"], size["width"]):
        parts.append(f"resized to {size['width']}×{size['height']}")
    line = " → ".join(parts) if len(parts) > 1 else f"{parts[0]}, size kept"
    dropped = resize["frames_dropped"]
    return line + (f"; first {size['frames']} frames kept ({dropped} dropped)" if dropped else
                   f"; all {size['frames']} frames kept")
