"""Bodies of the core CLI commands (kept out of cli.py so the wiring stays readable)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .errors import SelectionError
from .names import slug
from .options import GenerationOptions
from .store import Run, open_run, write_meta
from .video import read_mp4, write_mp4


def default_out(prompt: str, seed: int, suffix: str = "") -> Path:
    return Path("runs") / f"{slug(prompt)}-s{seed}{suffix}"


def side_by_side(baseline: np.ndarray, bent: np.ndarray) -> np.ndarray:
    """[T, H, 3W] frames: baseline | bent | absolute difference (x4 so small changes show)."""
    diff = np.clip(np.abs(bent.astype(np.int16) - baseline.astype(np.int16)) * 4, 0, 255).astype(np.uint8)
    return np.concatenate([baseline, bent, diff], axis=2)


def run_generate(*, prompt, model, out, seed, bend, compare, overwrite, device, parallel=None, **values) -> None:
    """``attnscope generate``: ``values`` are the generation options (:class:`attnscope.options.GenerationOptions`
    fields, as the CLI names them). ``parallel`` ("ulysses" or "ring") is how the processes of a torchrun launch
    share the video, not a generation option; under it every rank generates and rank 0 alone writes and prints."""
    from .generation import generate

    options = GenerationOptions.from_cli(**values)
    recipe = None
    if bend is not None:
        from .bend.recipe import load_recipe

        recipe = load_recipe(bend)
    if compare and recipe is None:
        raise SelectionError("--compare needs --bend RECIPE: it compares a bent run with its unbent baseline")
    if parallel is not None:  # before minutes of model loading
        from .tracing import check_parallel

        check_parallel(options.self_prop or bool(options.probe), recipe)
    out = out or default_out(prompt, seed, "-bent" if recipe is not None else "")
    pipe = _pipeline(model, device, parallel)
    common = dict(seed=seed, overwrite=overwrite, **options.generate_kwargs())
    run = generate(pipe, prompt, out, bends=recipe.to_json() if recipe is not None else None, **common)
    if run is not None:  # None: a context-parallel rank other than 0, which handed its tokens to rank 0
        print(f"wrote {run.path} (video.mp4, maps.zarr; words: {', '.join(run.words)})")
    if compare:
        base_out = out.with_name(out.name + "-baseline")
        base = generate(pipe, prompt, base_out, **common)  # under --parallel every rank takes part in it too
        if run is not None:
            _write_compare(run, base, base_out)
    if run is not None:
        try_preview(run.path)


def _pipeline(model: str, device: str | None, parallel: str | None):
    """The loaded pipeline; with ``parallel``, the launch is checked before the model loads (a plain process
    gets one error saying to use torchrun), each rank loads on its own GPU and the sequence is split."""
    from .models.loading import load_pipeline

    if parallel is None:
        return load_pipeline(model, device=device)
    from .parallel import check_launch, enable_context_parallel, rank_device

    check_launch(parallel)
    pipe = load_pipeline(model, device=rank_device(device))
    enable_context_parallel(pipe, parallel)
    return pipe


def _write_compare(run: Run, base: Run, base_out: Path) -> None:
    """The bent run's compare.mp4 (baseline | bent | difference) and its meta.json's link to the baseline."""
    video = side_by_side(read_mp4(base.video_path), read_mp4(run.video_path))
    write_mp4(run.path / "compare.mp4", video, fps=run.meta["pixel"]["fps"])
    meta = open_run(run.path).meta
    meta["baseline"] = str(Path("..") / base_out.name)
    write_meta(run.path, meta)
    print(f"wrote {base.path} (baseline) and {run.path / 'compare.mp4'} (baseline | bent | difference)")


def try_preview(path: Path) -> None:
    """Render what the user asked to see so they see something right away: the words marked or passed at capture,
    else the prompt's content words (one word: its overlay; several: which word owns each pixel)."""
    from .render import render
    from .render.view import default_words

    run = open_run(path)
    if not run.words:
        return
    words = default_words(run)
    target = render(run, words[0] if len(words) == 1 else words, kind="overlay" if len(words) == 1 else
                    "segmentation")
    print(f"rendered {target}", file=sys.stderr)
