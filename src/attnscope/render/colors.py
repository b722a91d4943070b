"""Colormaps as lookup tables, colour bars with real numbers, word palettes and legends (drawn with Pillow)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import matplotlib
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..errors import SelectionError

CMAPS = ("inferno", "magma", "viridis", "turbo")
BOX = (16, 16, 16, 190)  # background of colour bars and legends: dark, mostly opaque
TEXT = (235, 235, 235, 255)


@lru_cache(maxsize=32)
def lookup_table(cmap: str = "inferno") -> np.ndarray:
    """The colormap sampled at 256 levels: uint8 [256, 3]. Any matplotlib colormap name is accepted."""
    try:
        colormap = matplotlib.colormaps[cmap]
    except KeyError:
        raise SelectionError(f"unknown colormap '{cmap}'; use one of {', '.join(CMAPS)} "
                             "(or another matplotlib colormap name)") from None
    return (colormap(np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)


@lru_cache(maxsize=32)
def _packed(cmap: str) -> np.ndarray:
    """The table as one uint32 per level (R, G, B, 0 in memory order): one gather per pixel instead of three."""
    lut = lookup_table(cmap).astype(np.uint32)
    return lut[:, 0] | (lut[:, 1] << 8) | (lut[:, 2] << 16)


def colorize(values, cmap: str = "inferno"):
    """Values in [0, 1] (numpy or torch, any shape) -> uint8 RGB with a trailing axis of 3, same library.

    One table lookup per pixel; the 256-level table is finer than 8-bit video can show. On the CPU numpy's
    uint8 indexing into a packed table is several times faster than torch's int64 gather, so CPU tensors take
    that path and come back as tensors.
    """
    if isinstance(values, torch.Tensor):
        if values.is_cuda:
            return colorize_torch(values, cmap)
        return torch.from_numpy(colorize(values.numpy(), cmap))
    values = np.asarray(getattr(values, "values", values), dtype=np.float32)
    index = np.clip(np.nan_to_num(values) * 255 + 0.5, 0, 255).astype(np.uint8)
    rgba = _packed(cmap)[index].view(np.uint8).reshape(*index.shape, 4)  # little-endian: R, G, B, 0
    return np.ascontiguousarray(rgba[..., :3])


def colorize_torch(values: torch.Tensor, cmap: str = "inferno") -> torch.Tensor:
    """:func:`colorize` as a torch gather on the tensor's device (the CUDA path)."""
    lut = torch.as_tensor(lookup_table(cmap), device=values.device)
    return lut[(torch.nan_to_num(values).clamp(0, 1) * 255 + 0.5).floor_().to(torch.int64)]


def word_colors(n: int) -> np.ndarray:
    """``n`` distinct colours for words (matplotlib's tab10, then tab20): uint8 [n, 3]."""
    table = matplotlib.colormaps["tab10"].colors + matplotlib.colormaps["tab20"].colors[1::2]
    if n > len(table):
        raise SelectionError(f"segmentation shows at most {len(table)} words at once, got {n}")
    return (np.asarray(table[:n]) * 255).round().astype(np.uint8)


@lru_cache(maxsize=16)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def font_size(height: int, width: int) -> int:
    """Text size that stays legible from a 256-px toy video to a 1280-px Wan video."""
    return int(np.clip(round(min(height, width) / 22), 9, 20))


def fmt(value: float) -> str:
    """Three significant digits, no exponent for ordinary probabilities."""
    if value == 0:
        return "0"
    return f"{value:.3g}" if 1e-3 <= abs(value) < 1e4 else f"{value:.2e}"


@lru_cache(maxsize=256)
def colorbar_image(lo: float, hi: float, cmap: str, label: str, width: int, size: int = 12) -> Image.Image:
    """An RGBA colour bar: gradient, the numbers at its ends and middle, and the normalization mode."""
    f = font(size)
    pad, bar_h = max(3, size // 3), max(6, size // 2 + 2)
    width = max(width, int(f.getlength(label)) + 2 * pad)  # the mode must be readable in full
    height = pad * 3 + bar_h + 2 * size
    img = Image.new("RGBA", (width, height), BOX)
    draw = ImageDraw.Draw(img)
    draw.text((pad, pad), label, font=f, fill=TEXT)
    bar_w = width - 2 * pad
    gradient = lookup_table(cmap)[np.linspace(0, 255, bar_w).round().astype(int)]  # [bar_w, 3]
    strip = Image.fromarray(np.repeat(gradient[None], bar_h, axis=0)).convert("RGBA")
    top = pad * 2 + size
    img.paste(strip, (pad, top))
    ticks_y = top + bar_h + 1
    for frac, anchor in ((0.0, "la"), (0.5, "ma"), (1.0, "ra")):
        x = pad + frac * (bar_w - 1)
        draw.line([(x, top + bar_h - 2), (x, top + bar_h + 1)], fill=TEXT)
        draw.text((x, ticks_y), fmt(lo + frac * (hi - lo)), font=f, fill=TEXT, anchor=anchor)
    return img


def legend_image(labels: Sequence[str], colors: np.ndarray, size: int = 12) -> Image.Image:
    """An RGBA legend box: one colour swatch and label per line."""
    f = font(size)
    pad = max(3, size // 3)
    text_w = max(int(f.getlength(t)) for t in labels)
    img = Image.new("RGBA", (3 * pad + size + text_w, pad + len(labels) * (size + pad)), BOX)
    draw = ImageDraw.Draw(img)
    for i, (text, color) in enumerate(zip(labels, colors, strict=True)):
        y = pad + i * (size + pad)
        draw.rectangle([pad, y, pad + size, y + size - 1], fill=tuple(int(c) for c in color))
        draw.text((2 * pad + size, y), text, font=f, fill=TEXT)
    return img


def text_image(text: str, size: int = 12) -> Image.Image:
    """A one-line RGBA label on the legend background."""
    f = font(size)
    pad = max(3, size // 3)
    img = Image.new("RGBA", (int(f.getlength(text)) + 2 * pad, size + 2 * pad), BOX)
    ImageDraw.Draw(img).text((pad, pad), text, font=f, fill=TEXT)
    return img


def paste(frames: np.ndarray, patch: Image.Image, corner: str = "bottom-right", margin: int = 4) -> np.ndarray:
    """Alpha-composite an RGBA ``patch`` onto every frame of uint8 [T, H, W, 3] in place (vectorized)."""
    _, h, w, _ = frames.shape
    rgba = np.asarray(patch, dtype=np.uint8)
    ph, pw = min(rgba.shape[0], h), min(rgba.shape[1], w)
    y0 = margin if corner.startswith("top") else max(0, h - ph - margin)
    x0 = margin if corner.endswith("left") else max(0, w - pw - margin)
    ph, pw = min(ph, h - y0), min(pw, w - x0)  # small frames: clip the patch to what fits beside the margin
    rgba = rgba[:ph, :pw]
    region = frames[:, y0:y0 + ph, x0:x0 + pw].astype(np.uint16)  # [T, ph, pw, 3]
    alpha = rgba[None, ..., 3:4].astype(np.uint16)
    blended = (rgba[None, ..., :3] * alpha + region * (255 - alpha) + 127) // 255
    frames[:, y0:y0 + ph, x0:x0 + pw] = blended.astype(np.uint8)
    return frames
