"""Bodies of the core CLI commands (kept out of cli.py so the wiring stays readable)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

from .errors import SelectionError
from .store import open_run, write_meta
from .video import read_mp4, write_mp4


def parse_selection(value: str, name: str, allow_mean: bool = False):
    """'all' | 'mean' | '0,3,5' | '2-5' → what trace() takes."""
    value = value.strip()
    if value == "all" or (allow_mean and value == "mean"):
        return value
    picked: list[int] = []
    for part in value.split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part.strip())
        if not m:
            choices = '"all", "mean"' if allow_mean else '"all"'
            raise SelectionError(f"--{name} {value!r} is not valid; use {choices}, a comma list or a range like 2-5")
        a, b = int(m.group(1)), int(m.group(2) or m.group(1))
        picked.extend(range(a, b + 1))
    return picked


def default_out(prompt: str, seed: int, suffix: str = "") -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:48] or "run"
    return Path("runs") / f"{slug}-s{seed}{suffix}"


def side_by_side(baseline: np.ndarray, bent: np.ndarray) -> np.ndarray:
    """[T, H, 3W] frames: baseline | bent | absolute difference (x4 so small changes show)."""
    diff = np.clip(np.abs(bent.astype(np.int16) - baseline.astype(np.int16)) * 4, 0, 255).astype(np.uint8)
    return np.concatenate([baseline, bent, diff], axis=2)


def run_generate(*, prompt, model, words, out, seed, frames, height, width, steps, guidance, negative, heads,
                 layers, bend, compare, value_norm, overwrite, device, previews=None, self_prop=False,
                 parallel=None) -> None:
    from .generation import generate
    from .models.loading import load_pipeline

    heads_sel = parse_selection(heads, "heads", allow_mean=True)
    layers_sel = parse_selection(layers, "layers")
    recipe = None
    if bend is not None:
        from .bend.recipe import load_recipe

        recipe = load_recipe(bend)
    if compare and recipe is None:
        raise SelectionError("--compare needs --bend RECIPE: it compares a bent run with its unbent baseline")
    out = out or default_out(prompt, seed, "-bent" if recipe is not None else "")
    rank = 0
    if parallel is not None:
        import os

        import torch

        from .parallel import enable_context_parallel

        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            device = device or f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    pipe = load_pipeline(model, device=device)
    if parallel is not None:
        rank = enable_context_parallel(pipe, parallel)
    kwargs = dict(num_frames=frames, height=height, width=width, num_inference_steps=steps, guidance_scale=guidance)
    common = dict(words=words, seed=seed, negative_prompt=negative, heads=heads_sel, layers=layers_sel,
                  value_norm=value_norm, self_prop=self_prop, overwrite=overwrite, previews=previews, **kwargs)
    run = generate(pipe, prompt, out, bends=recipe.to_json() if recipe is not None else None, **common)
    if rank != 0:
        return  # rank 0 wrote the run
    print(f"wrote {run.path} (video.mp4, maps.zarr; words: {', '.join(run.words)})")
    if compare:
        base_out = out.with_name(out.name + "-baseline")
        base = generate(pipe, prompt, base_out, **common)
        video = side_by_side(read_mp4(base.video_path), read_mp4(run.video_path))
        write_mp4(run.path / "compare.mp4", video, fps=run.meta["pixel"]["fps"])
        meta = open_run(run.path).meta
        meta["baseline"] = str(Path("..") / base_out.name)
        write_meta(run.path, meta)
        print(f"wrote {base.path} (baseline) and {run.path / 'compare.mp4'} (baseline | bent | difference)")
    try_preview(run.path)


def try_preview(path: Path) -> None:
    """Render an overlay of the first word so the user sees something right away."""
    from .render import render

    run = open_run(path)
    if not run.words:
        return
    target = render(run, run.words[0], kind="overlay")
    print(f"rendered {target}", file=sys.stderr)
