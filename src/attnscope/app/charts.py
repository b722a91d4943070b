"""Charts that read faster than images: each word's attention mass over denoising steps, and how concentrated
each layer x head's map of a word is (normalized spatial entropy: 0 = one token, 1 = uniform)."""

from __future__ import annotations

import dask
import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from ..errors import SelectionError
from ..render.selection import describe, parse_spec
from ..store import Run
from .explore import Controls, specs
from .session import Viewer

EPS = 1e-12


def word_mass(run: Run, layer, head) -> xr.DataArray:
    """Mean probability per query of each word, per finished step: (step, word), averaged over the chosen
    layers and heads. Reads the chunks of those layers at every finished step."""
    where = {"step": run.steps_done, "layer": parse_spec(layer, run.meta["layers"], "layer"),
             "head": parse_spec(head, run.meta["heads"], "head")}
    with dask.config.set(scheduler="threads"):
        return run.maps.sel(**where).astype("float32").mean(("layer", "head", "frame", "y", "x")).compute()


def spatial_entropy(run: Run, word: str, step) -> xr.DataArray:
    """Normalized entropy of the word's map over (frame, y, x) per (layer, head), at the chosen steps."""
    if word not in run.words:
        raise SelectionError(f"word {word!r} is not in this run; words: {', '.join(run.words)}")
    steps = parse_spec(step, run.steps_done, "step")
    with dask.config.set(scheduler="threads"):
        maps = run.maps.sel(word=word, step=steps).astype("float32").mean("step").compute()
    space = ("frame", "y", "x")
    p = maps / (maps.sum(space) + EPS)
    count = int(np.prod([maps.sizes[d] for d in space]))
    return -(p * np.log(p + EPS)).sum(space) / np.log(count)  # (layer, head)


def plot_mass(mass: xr.DataArray, title: str) -> Figure:
    """Lines of (step, word) mass, one per word."""
    fig = Figure(figsize=(6.4, 3.4), layout="constrained")
    ax = fig.add_subplot()
    for word in mass["word"].values:
        ax.plot(mass["step"].values, mass.sel(word=word).values, marker="o", markersize=3, label=str(word))
    ax.set_xlabel("denoising step")
    ax.set_ylabel("mean probability per query")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, ncols=2)
    ax.grid(alpha=0.3)
    return fig


def mass_figure(viewer: Viewer, rel: str, c: Controls) -> Figure:
    run = viewer.run(rel)
    _, layer, head = specs(run, c)
    layers = describe(parse_spec(layer, run.meta["layers"], "layer"))
    return plot_mass(word_mass(run, layer, head), f"attention mass per word · layers {layers} · heads {head}")


def entropy_figure(viewer: Viewer, rel: str, c: Controls) -> Figure:
    run = viewer.run(rel)
    step, _, _ = specs(run, c)
    ent = spatial_entropy(run, c.word, step)
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(ent.values, cmap="viridis_r", aspect="auto", vmin=float(ent.min()), vmax=float(ent.max()))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_xticks(range(ent.sizes["head"]), [str(h) for h in ent["head"].values], fontsize=7)
    ax.set_yticks(range(ent.sizes["layer"]), [str(v) for v in ent["layer"].values], fontsize=7)
    ax.set_title(f"'{c.word}' · step {step} · spatial entropy (low = concentrated)", fontsize=10)
    fig.colorbar(image, ax=ax, label="normalized entropy")
    return fig
