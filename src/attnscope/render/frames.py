"""Frame builders: uint8 [T, H, W, 3] arrays for heatmaps, overlays, word segmentation and the timeline.

Vectorized: a map is upsampled once per latent frame (with ``time="hold"`` the pixel frames of one latent frame
share it), coloured by table lookup, and only then gathered to pixel frames and blended, in integer arithmetic.
Every builder takes ``frames`` (pixel frame indices) so a viewer can build one frame without the rest, and
``maps`` (a :func:`select` result) so it can reuse a selection across frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from ..errors import SelectionError
from ..store import Run
from ..video import read_mp4
from .colors import colorbar_image, colorize, fmt, font_size, legend_image, paste, text_image, word_colors
from .geometry import fit, geometry
from .normalize import Normalized, normalize
from .selection import Spec, select
from .upscale import as_tensor, default_device, time_weights, upscale_space

CHUNK = 16  # pixel frames blended at once on CUDA: bounds memory, large enough to stay vectorized
MAX_BYTES = 3 * 2**30  # a timeline is built in memory before encoding


def _frames(frames: Sequence[int] | None, total: int) -> np.ndarray:
    if frames is None:
        return np.arange(total)
    chosen = np.asarray(list(frames), dtype=np.int64)
    if chosen.size == 0 or chosen.min() < 0 or chosen.max() >= total:
        raise SelectionError(f"frame(s) {list(chosen)} out of range; this video has frames 0-{total - 1}")
    return chosen


def upscaled(values: np.ndarray, size: tuple[int, int], pixel_frames: int, temporal: int,
             frames: np.ndarray, time: str, device) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Upsample (..., F', Y, X) maps for the pixel ``frames``: (maps [..., n_u, H, W], output -> unique index,
    latent frame of each unique map). With ``time="hold"`` only the distinct latent frames are upsampled."""
    a, b, w = time_weights(pixel_frames, values.shape[-3], temporal, time)
    a, b, w = a[frames], b[frames], w[frames]
    x = as_tensor(values, device)
    if time == "hold":
        used, inverse = np.unique(a, return_inverse=True)
        small = upscale_space(x.index_select(-3, torch.as_tensor(used, device=x.device)), size)
        return small, inverse, used
    big = upscale_space(x, size)  # [..., F', H, W]
    wb = torch.as_tensor(w, device=big.device).view(-1, 1, 1)
    ia, ib = torch.as_tensor(a, device=big.device), torch.as_tensor(b, device=big.device)
    mixed = big.index_select(-3, ia) * (1 - wb) + big.index_select(-3, ib) * wb
    return mixed, np.arange(len(frames)), np.where(w < 0.5, a, b)


def _label(maps: xr.DataArray, norm: Normalized) -> str:
    return f"{maps.attrs.get('word', '')} · {maps.attrs.get('estimator', 'raw')} · {norm.label}".strip(" ·")


def draw_bars(out: np.ndarray, norm: Normalized, latent: np.ndarray, inverse: np.ndarray, cmap: str,
              label: str, index: dict[str, int] | None = None) -> None:
    """Paste a colour bar with the range in force onto each output frame (one paste per distinct range)."""
    _, h, w, _ = out.shape
    width = int(min(w - 8, max(150, 0.42 * w)))
    groups: dict[tuple[float, float], list[int]] = {}
    for u, lat in enumerate(latent):
        groups.setdefault(norm.range_at(frame=int(lat), **(index or {})), []).append(u)
    for (lo, hi), members in groups.items():
        bar = colorbar_image(lo, hi, cmap, label, width, font_size(h, w))
        pick = np.flatnonzero(np.isin(inverse, members))
        if len(pick) == len(out):
            paste(out, bar)
        else:
            sub = out[pick]
            out[pick] = paste(sub, bar)


def heatmap_frames(run: Run, word: str, *, step: Spec = "mean", layer: Spec = "mean", head: Spec = "mean",
                   estimator: str = "raw", norm: str = "global", clip: float | None = None,
                   cmap: str = "inferno", frames: Sequence[int] | None = None, size: tuple[int, int] | None = None,
                   time: str = "hold", colorbar: bool = True, maps: xr.DataArray | None = None,
                   device=None) -> np.ndarray:
    """The word's map alone, coloured, at pixel resolution: uint8 [len(frames), H, W, 3]."""
    geo = geometry(run)
    maps = maps if maps is not None else select(run, word, step, layer, head, estimator)
    n = normalize(maps, norm, clip)
    size = size or (geo.height, geo.width)
    chosen = _frames(frames, geo.frames)
    small, inverse, latent = upscaled(n.values.values, size, geo.frames, geo.temporal, chosen, time, device)
    rgb = colorize(small, cmap)  # [n_u, H, W, 3] uint8
    out = rgb.index_select(0, torch.as_tensor(inverse, device=rgb.device)).cpu().numpy()
    if colorbar:
        draw_bars(out, n, latent, inverse, cmap, _label(maps, n))
    return out


def load_video_path(run: Run, kind: str) -> Path:
    """The run's video, or an error that says what to do instead."""
    if run.video_path is None:
        raise SelectionError(f"{run.path} has no video.mp4, which --kind {kind} draws on; use --kind heatmap, "
                             "or a run made by `attnscope generate` (files here: "
                             f"{', '.join(sorted(p.name for p in run.path.iterdir()))})")
    return run.video_path


def blend(video: np.ndarray, colors: torch.Tensor, inverse: np.ndarray, frames: np.ndarray, alpha: float,
          mask: torch.Tensor | None = None) -> np.ndarray:
    """``(1-alpha)·video + alpha·colors`` for each pixel frame in ``frames``; where ``mask`` is False the video
    shows unchanged. ``colors`` holds one frame per distinct map, ``inverse`` picks them for each output frame.

    CUDA tensors blend with torch; on the CPU numpy's in-place uint16 arithmetic, one frame at a time (it stays
    in cache), is several times faster than torch's integer kernels.
    """
    if colors.is_cuda:
        return blend_torch(video, colors, inverse, frames, alpha, mask)
    a = int(round(np.clip(alpha, 0, 1) * 128))  # alpha in 1/128: 255·128 + 64 fits uint16
    out = np.empty((len(frames), *video.shape[1:]), dtype=np.uint8)
    colors_np = colors.numpy()
    mask_np = mask.numpy() if mask is not None else None
    mixed = np.empty(video.shape[1:], np.uint16)  # [H, W, 3]
    tint = np.empty(video.shape[1:], np.uint16)
    for j, t in enumerate(frames):
        np.multiply(video[t], 128 - a, out=mixed, dtype=np.uint16)
        np.multiply(colors_np[inverse[j]], a, out=tint, dtype=np.uint16)
        mixed += tint
        mixed += 64
        mixed >>= 7
        if mask_np is not None:
            np.copyto(out[j], video[t])
            np.copyto(out[j], mixed, where=mask_np[inverse[j]][..., None], casting="unsafe")
        else:
            np.copyto(out[j], mixed, casting="unsafe")
    return out


def blend_torch(video: np.ndarray, colors: torch.Tensor, inverse: np.ndarray, frames: np.ndarray,
                alpha: float, mask: torch.Tensor | None = None) -> np.ndarray:
    """:func:`blend` in torch on ``colors.device``, CHUNK frames at a time."""
    out = np.empty((len(frames), *video.shape[1:]), dtype=np.uint8)
    for start in range(0, len(frames), CHUNK):
        part = slice(start, start + CHUNK)
        pick = torch.as_tensor(inverse[part], device=colors.device)
        v = torch.as_tensor(video[frames[part]], device=colors.device)
        mixed = torch.lerp(v.float(), colors.index_select(0, pick).float(), float(alpha)).round_().to(torch.uint8)
        if mask is not None:
            mixed = torch.where(mask.index_select(0, pick)[..., None], mixed, v)
        out[part] = mixed.cpu().numpy()
    return out


def overlay_frames(run: Run, word: str, *, alpha: float = 0.6, step: Spec = "mean", layer: Spec = "mean",
                   head: Spec = "mean", estimator: str = "raw", norm: str = "global", clip: float | None = None,
                   cmap: str = "inferno", frames: Sequence[int] | None = None, time: str = "hold",
                   colorbar: bool = True, maps: xr.DataArray | None = None, video: np.ndarray | None = None,
                   device=None) -> np.ndarray:
    """The word's map alpha-blended on the run's video: uint8 [len(frames), H, W, 3] at the video's size."""
    video = video if video is not None else read_mp4(load_video_path(run, "overlay"))
    geo = geometry(run)
    maps = maps if maps is not None else select(run, word, step, layer, head, estimator)
    n = normalize(maps, norm, clip)
    total, h, w = video.shape[:3]
    chosen = _frames(frames, total)
    small, inverse, latent = upscaled(n.values.values, (h, w), total, geo.temporal, chosen, time, device)
    out = blend(video, colorize(small, cmap), inverse, chosen, alpha)
    if colorbar:
        draw_bars(out, n, latent, inverse, cmap, _label(maps, n))
    return out


def segmentation_frames(run: Run, words: Sequence[str], *, threshold: float = 0.3, alpha: float = 0.6,
                        step: Spec = "mean", layer: Spec = "mean", head: Spec = "mean", estimator: str = "raw",
                        norm: str = "global", clip: float | None = None, frames: Sequence[int] | None = None,
                        time: str = "hold", legend: bool = True, maps: xr.DataArray | None = None,
                        video: np.ndarray | None = None, device=None) -> np.ndarray:
    """Per pixel the word whose normalized map is highest, one colour per word; below ``threshold`` clear.

    Each word is normalized on its own range (``norm`` says how), so a word that gets little attention overall
    still owns the region it attends most. Drawn on the run's video when there is one, else on black.
    """
    words = [words] if isinstance(words, str) else list(words)
    geo = geometry(run)
    if video is None and run.video_path is not None:
        video = read_mp4(run.video_path)
    if video is None:
        video, alpha = np.zeros((geo.frames, geo.height, geo.width, 3), np.uint8), 1.0
    maps = maps if maps is not None else select(run, words, step, layer, head, estimator)
    n = normalize(maps, norm, clip, per=("word",))
    total, h, w = video.shape[:3]
    chosen = _frames(frames, total)
    vals, inverse, _ = upscaled(n.values.values, (h, w), total, geo.temporal, chosen, time, device)
    best, owner = vals.max(dim=0)  # over words: [n_u, H, W]
    palette = torch.as_tensor(word_colors(len(words)), device=vals.device)
    out = blend(video, palette[owner], inverse, chosen, alpha, mask=best >= threshold)
    if legend:
        size = font_size(h, w)
        ranges = [n.range_at(word=i) for i in range(len(words))]
        labels = [f"{wd}  {fmt(lo)}-{fmt(hi)}" if norm in ("global", "absolute") else wd
                  for wd, (lo, hi) in zip(words, ranges, strict=True)]
        paste(out, legend_image(labels, word_colors(len(words)), size), corner="top-left")
        paste(out, text_image(f"{maps.attrs.get('estimator', 'raw')} · {n.label} · clear below {threshold:g}",
                              size), corner="bottom-left")
    return out


def _preview_panels(run: Run, steps: Sequence[int], pixel_frames: np.ndarray, total: int,
                    size: tuple[int, int], device) -> np.ndarray | None:
    """The decoded x0 estimate of each step at the chosen pixel frames: uint8 [S, n, H, W, 3], or None."""
    if run.previews is None:
        return None
    count = run.previews.sizes["frame"]
    index = np.rint(pixel_frames * (count - 1) / max(total - 1, 1)).astype(int)
    raw = run.previews.isel(step=list(steps), frame=list(index)).values  # [S, n, h, w, 3]
    x = torch.as_tensor(raw, device=device).permute(0, 1, 4, 2, 3).float()  # [S, n, 3, h, w]
    up = upscale_space(x, size)  # [S, n, 3, H, W]
    return up.round().clamp(0, 255).to(torch.uint8).permute(0, 1, 3, 4, 2).cpu().numpy()


def timeline_frames(run: Run, word: str, *, step: Spec = "mean", layer: Spec = "mean", head: Spec = "mean",
                    estimator: str = "raw", norm: str = "global", clip: float | None = None,
                    cmap: str = "inferno", frame: int | None = None, frames_in_steps: bool = False,
                    step_seconds: float = 0.25, long_side: int = 480, colorbar: bool = True,
                    device=None) -> np.ndarray:
    """The word's map at every denoising step, beside the model's clean-video estimate at that step.

    Time runs over denoising steps: each step is held ``step_seconds`` at the run's fps, showing pixel frame
    ``frame`` (default: the middle one). With ``frames_in_steps`` each step instead plays through every pixel
    frame. Output: uint8 [N, H, 2W, 3] (preview | map), or [N, H, W, 3] without previews.
    """
    geo = geometry(run)
    device = device or default_device()
    maps = select(run, word, step, layer, head, estimator, keep=("step",))  # (step, frame, y, x)
    n = normalize(maps, norm, clip)
    size = fit(geo.height, geo.width, min(long_side, max(geo.height, geo.width)))
    pix = np.arange(geo.frames) if frames_in_steps else _frames([geo.middle if frame is None else frame],
                                                                 geo.frames)
    needed = maps.sizes["step"] * len(pix) * size[0] * size[1] * 3 * (1 if run.previews is None else 2)
    if needed > MAX_BYTES:
        raise SelectionError(f"this timeline would hold {needed / 2**30:.1f} GiB of frames ({maps.sizes['step']} "
                             f"steps × {len(pix)} frames); choose fewer steps with --step A-B")
    small, inverse, latent = upscaled(n.values.values, size, geo.frames, geo.temporal, pix, time="hold",
                                      device=device)  # [S, n_u, H, W]
    heat = colorize(small, cmap)[:, torch.as_tensor(inverse)].cpu().numpy()
    steps = [int(s) for s in maps["step"].values]
    previews = _preview_panels(run, steps, pix, geo.frames, size, device)
    info = {s["index"]: s for s in run.meta.get("steps", [])}
    label = _label(maps, n)
    font = font_size(*size)
    for i, s in enumerate(steps):
        if colorbar:
            draw_bars(heat[i], n, latent, inverse, cmap, label, index={"step": i})
        t = info.get(s, {}).get("timestep")
        text = f"step {s + 1}/{run.meta['num_steps']}" + (f"  t={float(t):.0f}" if t is not None else "")
        paste(heat[i], text_image(text, font), corner="top-left")
        if previews is not None:
            paste(previews[i], text_image("x0 estimate", font), corner="top-left")
    panels = heat if previews is None else np.concatenate([previews, heat], axis=3)  # [S, n, H, W', 3]
    if not frames_in_steps:
        hold = max(1, int(round(step_seconds * geo.fps)))
        panels = np.repeat(panels, hold, axis=1)
    return panels.reshape(-1, *panels.shape[2:])  # [S·n, H, W', 3]
