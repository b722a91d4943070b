"""The contact sheet: every run of a sweep side by side, rows = prompt x seed, columns = bend recipe.

Each cell shows the run's video and, when a word is chosen, the word's mean attention map (mean over steps,
layers and heads) blended on it. All cells share one colour scale, so a reweighted word visibly glows brighter
than its baseline; per-run normalization would hide exactly the differences a sweep is run to see.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont

from ..store import open_run
from ..video import read_mp4, write_mp4

PANEL = 160  # long side of one panel in pixels
PAD = 4
HEADER = 40
ROW_LABEL = 180
ALPHA = 0.6
CMAP = "inferno"
BACKGROUND = (24, 24, 24)
TEXT = (230, 230, 230)


@dataclass
class Cell:
    """One job's frames at panel size: the video and, with a word, its overlay (None when not available)."""

    video: np.ndarray | None  # uint8 [T, h, w, 3]
    overlay: np.ndarray | None
    note: str = ""


def _font(size: int = 13) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _resize(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 [T, H, W, 3] -> [T, h, w, 3]; nearest when enlarging so tiny test videos stay crisp."""
    h, w = size
    method = Image.NEAREST if h >= frames.shape[1] else Image.BILINEAR
    return np.stack([np.asarray(Image.fromarray(f).resize((w, h), method)) for f in frames])


def _latent_index(pixel_frames: int, latent_frames: int, temporal: int) -> np.ndarray:
    """For each pixel frame the latent frame encoding it (0 -> 0; 4i-3..4i -> i with temporal 4)."""
    t = np.arange(pixel_frames)
    return np.minimum((t + temporal - 1) // temporal, latent_frames - 1)


def mean_map(run_path: Path, word: str) -> np.ndarray | None:
    """The word's attention averaged over steps, layers and heads: float [frame, y, x], or None if not captured."""
    run = open_run(run_path)
    if word not in run.words:
        return None
    return run.maps.sel(word=word).astype("float32").mean(("step", "layer", "head")).values


def _overlay(video: np.ndarray, maps: np.ndarray, temporal: int, vmax: float) -> np.ndarray:
    """Blend ``maps`` [F', y, x] (scaled by ``vmax``) on ``video`` [T, h, w, 3]."""
    t, h, w, _ = video.shape
    lut = (colormaps[CMAP](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.float32)  # [256, 3]
    idx = _latent_index(t, maps.shape[0], temporal)
    scaled = np.clip(np.nan_to_num(maps / max(vmax, 1e-12)), 0, 1)
    big = np.stack([np.asarray(Image.fromarray(m.astype(np.float32), mode="F").resize((w, h), Image.BILINEAR))
                    for m in scaled])  # [F', h, w]
    colour = lut[np.clip(big * 255, 0, 255).astype(np.uint8)]  # [F', h, w, 3]
    blended = (1 - ALPHA) * video.astype(np.float32) + ALPHA * colour[idx]
    return np.clip(blended.round(), 0, 255).astype(np.uint8)


def _text_panel(size: tuple[int, int], text: str) -> np.ndarray:
    img = Image.new("RGB", (size[1], size[0]), (60, 60, 60))
    draw = ImageDraw.Draw(img)
    draw.multiline_text((6, 6), "\n".join(textwrap.wrap(text, max(8, size[1] // 8))), font=_font(12), fill=TEXT)
    return np.asarray(img)


@dataclass
class Sheet:
    png: Path
    mp4: Path
    rows: int
    columns: int


def _panel_size(rows: list[dict[str, Any]], out: Path) -> tuple[tuple[int, int], float]:
    """Panel (height, width) keeping the first finished video's aspect, and its frame rate."""
    for r in rows:
        if r["status"] == "complete" and (out / r["path"] / "video.mp4").exists():
            meta = open_run(out / r["path"]).meta["pixel"]
            scale = PANEL / max(meta["height"], meta["width"])
            size = (max(2, round(meta["height"] * scale / 2) * 2), max(2, round(meta["width"] * scale / 2) * 2))
            return size, meta.get("fps", 16)
    return (PANEL, PANEL), 16


def _cells(rows: list[dict[str, Any]], out: Path, word: str | None,
           size: tuple[int, int]) -> tuple[dict[str, Cell], float]:
    maps: dict[str, np.ndarray | None] = {}
    cells: dict[str, Cell] = {}
    for r in rows:
        folder = out / r["path"]
        if r["status"] != "complete" or not (folder / "video.mp4").exists():
            error = r.get("error") or {}
            note = f"failed: {error.get('type', '')}: {error.get('message', '')}" if error else r["status"]
            cells[r["name"]] = Cell(None, None, " ".join(note.split())[:160])
            continue
        cells[r["name"]] = Cell(_resize(read_mp4(folder / "video.mp4"), size), None)
        if word is not None:
            maps[r["name"]] = mean_map(folder, word)
    found = [m for m in maps.values() if m is not None]
    vmax = max((float(np.nanmax(m)) for m in found), default=1.0)
    for name, m in maps.items():
        cell = cells[name]
        if m is None:
            cell.note = f"'{word}' not captured"
        else:
            temporal = open_run(out / name).meta.get("vae", {}).get("temporal", 4)
            cell.overlay = _overlay(cell.video, m, temporal, vmax)
    return cells, vmax


def build_contact_sheet(out: Path, rows: list[dict[str, Any]], word: str | None,
                        target: Path | None = None) -> Sheet:
    """Write ``contact_sheet[_WORD].png`` (the middle frame) and ``.mp4`` (every frame) under ``out``."""
    target = target or out / (f"contact_sheet_{word.replace(' ', '_')}" if word else "contact_sheet")
    row_keys = sorted({(r["prompt_index"], r["seed"]) for r in rows})
    col_keys = sorted({r["bend_index"] for r in rows})
    by_key = {(r["prompt_index"], r["seed"], r["bend_index"]): r for r in rows}
    size, fps = _panel_size(rows, out)
    cells, vmax = _cells(rows, out, word, size)
    panels = 2 if word else 1
    cell_w = panels * size[1] + (panels - 1) * PAD
    width = ROW_LABEL + len(col_keys) * (cell_w + PAD) + PAD
    height = HEADER + len(row_keys) * (size[0] + PAD) + PAD
    total = max((c.video.shape[0] for c in cells.values() if c.video is not None), default=1)

    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    title = (f"video | '{word}' attention, mean of steps, layers, heads; one scale: 0-{vmax:.3g}" if word
             else "videos")
    draw.text((PAD, PAD), title, font=_font(13), fill=TEXT)
    labels = {r["bend_index"]: r["bend"] for r in rows}
    for j, b in enumerate(col_keys):
        draw.text((ROW_LABEL + j * (cell_w + PAD) + PAD, HEADER - 18), f"b{b:02d} {labels[b]}"[:cell_w // 7],
                  font=_font(13), fill=TEXT)
    prompts = {r["prompt_index"]: r["prompt"] for r in rows}
    for i, (p, s) in enumerate(row_keys):
        text = f"p{p:02d} seed {s}\n" + "\n".join(textwrap.wrap(prompts[p], 24)[:5])
        draw.multiline_text((PAD, HEADER + i * (size[0] + PAD)), text, font=_font(12), fill=TEXT)
    base = np.asarray(canvas).copy()

    video = np.repeat(base[None], total, axis=0)  # [T, H, W, 3]
    for i, (p, s) in enumerate(row_keys):
        for j, b in enumerate(col_keys):
            y, x = HEADER + i * (size[0] + PAD), ROW_LABEL + j * (cell_w + PAD) + PAD
            row = by_key.get((p, s, b))
            cell = cells[row["name"]] if row else Cell(None, None, "not in the sweep")
            for k, frames in enumerate([cell.video, cell.overlay][:panels]):
                x0 = x + k * (size[1] + PAD)
                if frames is None:
                    video[:, y:y + size[0], x0:x0 + size[1]] = _text_panel(size, cell.note)
                    continue
                held = frames[np.minimum(np.arange(total), len(frames) - 1)]  # short videos hold the last frame
                video[:, y:y + size[0], x0:x0 + size[1]] = held
    png, mp4 = target.with_suffix(".png"), target.with_suffix(".mp4")
    Image.fromarray(video[total // 2]).save(png)
    write_mp4(mp4, video, fps=fps)
    return Sheet(png=png, mp4=mp4, rows=len(row_keys), columns=len(col_keys))
