"""Contact sheets: layers x heads for one word, or words x layers for several, as one labelled PNG."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..errors import SelectionError
from .colors import BOX, colorbar_image, colorize, fmt, font
from .geometry import fit, geometry
from .normalize import normalize
from .selection import Spec, check_words, select
from .upscale import latent_frame_index, upscale_space

BACKGROUND = (24, 24, 24)
INK = (230, 230, 230)


def grid_image(run, word: str | Sequence[str], *, step: Spec = "mean", layer: Spec = "mean",
               head: Spec = "mean", estimator: str = "raw", norm: str = "global", clip: float | None = None,
               cmap: str = "inferno", frame: int | None = None, panel: int = 112, device=None) -> Image.Image:
    """One word: rows are layers, columns heads. Several words: rows are words, columns layers (heads
    averaged). Each panel shows pixel frame ``frame`` (default: the middle one) of the map averaged over the
    chosen steps. ``norm="global"``/``"absolute"`` share one colour bar; ``"frame"``/``"step"`` scale each panel
    on its own and print its maximum in the panel.
    """
    geo = geometry(run)
    words = check_words(run, word)
    frame = geo.middle if frame is None else frame
    if not 0 <= frame < geo.frames:
        raise SelectionError(f"frame {frame} out of range; this video has frames 0-{geo.frames - 1}")
    latent = int(latent_frame_index(geo.frames, geo.latent[0], geo.temporal)[frame])
    if len(words) == 1:
        maps = select(run, words[0], step, layer, head, estimator, keep=("layer", "head"))
        rows, cols = "layer", "head"
    else:
        maps = select(run, words, step, layer, head, estimator, keep=("layer",)).transpose("word", "layer", ...)
        rows, cols = "word", "layer"
    maps = maps.isel(frame=latent)
    shared = norm in ("global", "absolute")
    n = normalize(maps, norm if shared else "global", clip, per=() if shared else (rows, cols))
    ph, pw = fit(geo.height, geo.width, panel)
    tiles = colorize(upscale_space(n.values.values, (ph, pw), device=device), cmap).cpu().numpy()  # [R, C, ph, pw, 3]
    row_labels = [_name(rows, v) for v in maps[rows].values]
    col_labels = [_name(cols, v) for v in maps[cols].values]
    size = 12
    f = font(size)
    gap = 2
    left = int(max(f.getlength(t) for t in row_labels)) + 3 * size
    top = 3 * size + 10
    n_r, n_c = tiles.shape[:2]
    width = left + n_c * (pw + gap) + 8
    bar_w = int(min(max(240, width * 0.5), max(width - 16, 240)))
    bar = colorbar_image(*n.range_at(), cmap, f"{estimator} · {n.label}", bar_w, size) if shared else None
    height = top + n_r * (ph + gap) + 8 + (bar.height + 8 if bar else 0)
    sheet = Image.new("RGB", (max(width, bar_w + 16), height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    title = (f"{', '.join(words)} · steps {maps.attrs['step']} · frame {frame} · "
             f"rows: {rows}s, columns: {cols}s" + ("" if shared else " · each panel on its own scale"))
    draw.text((8, 6), title, font=f, fill=INK)
    mosaic = tiles.transpose(0, 2, 1, 3, 4)  # [R, ph, C, pw, 3]
    for r in range(n_r):
        y = top + r * (ph + gap)
        draw.text((left - size, y + ph // 2), row_labels[r], font=f, fill=INK, anchor="rm")
        for c in range(n_c):
            x = left + c * (pw + gap)
            sheet.paste(Image.fromarray(np.ascontiguousarray(mosaic[r, :, c])), (x, y))
            if not shared:
                draw.text((x + 2, y + ph - 2), fmt(n.range_at(**{rows: r, cols: c})[1]), font=f,
                          fill=INK, anchor="ld", stroke_width=1, stroke_fill=BOX[:3])
    for c in range(n_c):
        draw.text((left + c * (pw + gap) + pw // 2, top - 4), col_labels[c], font=f, fill=INK, anchor="md")
    if bar is not None:
        sheet.paste(bar, (8, top + n_r * (ph + gap) + 4), bar)
    return sheet


def _name(dim: str, value) -> str:
    if dim in ("layer", "head") and str(value).isdigit():
        return f"{dim[0].upper() if dim == 'layer' else 'h'}{value}"
    return str(value)

