"""The mean over noise draws: a run of levels × draws steps folded into a run of one step per level.

Why a second run: the trace writes one slab per (step, layer) as the forwards go, and a draw is one forward; the
draws are captured as steps i·N … i·N + N − 1 of a scratch run, then averaged here into the Run folder the user
asked for, through the store's own writer (same arrays, same summaries, same meta), so nothing reading runs
needs to know there were draws.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..store import Run
from ..store.inline import InlineRunWriter

SLABS = ("maps", "prompt_mass", "value_norm", "value_proj", "self_prop")
WRITER_KEYS = ("format", "complete", "num_steps", "grid", "layers", "heads", "steps")  # the writer sets these


def average_draws(scratch: Run, out: Path, draws: int, *, overwrite: bool = False,
                  previews: list[np.ndarray] | None = None) -> None:
    """Write ``out``: step i = the mean of ``scratch``'s steps i·draws … i·draws + draws − 1 (float32, stored
    float16 like every run); meta steps keep the level's timestep, sigma and expert. ``previews``: one decoded
    frame stack per level."""
    meta = {k: v for k, v in scratch.meta.items() if k not in WRITER_KEYS}
    levels = scratch.meta["num_steps"] // draws
    g = scratch.meta["grid"]
    names = [n for n in SLABS if scratch.array(n) is not None]
    writer = InlineRunWriter(out, meta, words=scratch.words, layers=list(scratch.meta["layers"]),
                             heads=list(scratch.meta["heads"]), num_steps=levels,
                             grid=(g["frames"], g["height"], g["width"]), extras=tuple(names[2:]),
                             overwrite=overwrite)
    entries = {s["index"]: s for s in scratch.meta["steps"]}
    done = 0
    for i in range(levels):
        steps = range(i * draws, (i + 1) * draws)
        if not all(s in entries for s in steps):
            break
        mean = {n: sum(scratch.array(n)[s].astype(np.float32) for s in steps) / draws for n in names}  # [L, ...]
        for pos, layer in enumerate(scratch.meta["layers"]):
            writer.write(i, layer, mean["maps"][pos], mean["prompt_mass"][pos],
                         {n: mean[n][pos] for n in names[2:]})
        first = entries[i * draws]
        writer.end_step(i, {k: first.get(k) for k in ("timestep", "sigma", "expert")})
        if previews is not None:
            writer.write_preview(i, previews[i])
        done += 1
    writer.close(complete=bool(scratch.complete) and done == levels)
