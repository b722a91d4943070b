"""Probe a pixel: how much each captured word gets at one point of the video, over the denoising steps.

A click on a frame names a pixel; the token that carries it is found on the latent grid the way the renders
upscale maps (``latent_frame_index`` for time, the grid's cell for space), so the chart reads the same values the
overlay shows there. The value is the word's attention probability at that token (mean over heads and layers;
per layer on request), one line per word.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..errors import SelectionError
from ..render import select
from ..render.geometry import Geometry, geometry
from ..render.upscale import latent_frame_index
from ..store import Run


def token_at(run: Run, frame: int, x: int, y: int) -> tuple[int, int, int]:
    """(latent frame, row, column) of the token that carries pixel (x, y) of pixel frame ``frame``."""
    return pixel_token(geometry(run), frame, x, y)


def pixel_token(geo: Geometry, frame: int, x: int, y: int,
                fix: str = "click inside the picture") -> tuple[int, int, int]:
    """:func:`token_at` for a video's geometry, which need not be a run's yet: the Generate tab converts typed
    pixels with it before the run exists, so a typed point and a click on the finished video name the same
    token. ``fix`` ends the message for a pixel outside the video (what the user should do instead)."""
    if not (0 <= frame < geo.frames and 0 <= x < geo.width and 0 <= y < geo.height):
        raise SelectionError(f"pixel ({x}, {y}) of frame {frame} is outside the {geo.width}×{geo.height}×"
                             f"{geo.frames} video; {fix}")
    lf, lh, lw = geo.latent
    t = int(latent_frame_index(geo.frames, lf, geo.temporal)[frame])
    return t, min(y * lh // geo.height, lh - 1), min(x * lw // geo.width, lw - 1)


def point_series(run: Run, frame: int, x: int, y: int, per_layer: bool = False) -> xr.DataArray:
    """Each word's probability at the pixel's token per finished step: (word, step), or (word, step, layer)."""
    if not run.steps_done:
        raise SelectionError("this run has no finished step yet; probe it once a step is written")
    t, i, j = token_at(run, frame, x, y)
    keep = ("step", "layer") if per_layer else ("step",)
    maps = select(run, list(run.words), "all", "mean", "mean", keep=keep)
    return maps.isel(frame=t, y=i, x=j).astype("float32").transpose("word", "step", ...)


def figure(series: xr.DataArray, where: str) -> Figure:
    """The chart: one line per word over steps; with layers, one panel per word, a line per layer."""
    if "layer" not in series.dims:
        fig = Figure(figsize=(7, 3.4), dpi=100)
        ax = fig.add_subplot()
        for word in series["word"].values:
            ax.plot(series["step"].values, series.sel(word=word).values, marker="o", label=str(word))
        ax.set(xlabel="denoising step", ylabel="attention probability", title=f"each word at {where}")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        fig.tight_layout()
        return fig
    words = list(series["word"].values)
    fig = Figure(figsize=(7, 2.4 * len(words) + 0.6), dpi=100)
    for n, word in enumerate(words):
        ax = fig.add_subplot(len(words), 1, n + 1)
        part = series.sel(word=word)
        for layer in part["layer"].values:
            ax.plot(part["step"].values, part.sel(layer=layer).values, label=f"layer {layer}", lw=1.2)
        ax.set(ylabel="probability", title=f"{word} at {where}, per layer")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=4)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.axes[-1].set_xlabel("denoising step")
    fig.tight_layout()
    return fig


def table(series: xr.DataArray) -> str:
    """The chart as text (Markdown): each word's value at the last step and where it peaked."""
    mean = series.mean("layer") if "layer" in series.dims else series
    rows = ["| word | last step | peak | at step |", "|---|---|---|---|"]
    for word in mean["word"].values:
        values = mean.sel(word=word).values
        peak = int(np.argmax(values))
        rows.append(f"| {word} | {values[-1]:.4f} | {values[peak]:.4f} | {int(mean['step'].values[peak])} |")
    return "\n".join(rows)
