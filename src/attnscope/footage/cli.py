"""``attnscope analyze``: the command's body (mounted by attnscope.cli)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import NoiseLevelError


def parse_sigmas(value: str | None) -> list[float] | None:
    """'0.2,0.5,0.8' → [0.2, 0.5, 0.8]; None stays None (the default levels)."""
    if value is None:
        return None
    try:
        return [float(part) for part in value.split(",") if part.strip()]
    except ValueError as exc:
        raise NoiseLevelError(f"--sigmas {value!r} is not a comma list of numbers like 0.2,0.5,0.8") from exc


def analyze_command(
    video: Path = typer.Argument(..., help="Video file to analyze (anything PyAV/FFmpeg reads: mp4, mov, webm)."),
    caption: str = typer.Option(..., "--caption", "-c", help='What the clip shows, e.g. "a cat playing with a '
                                'ball"; mark words to capture with parentheses or pass -w.'),
    words: list[str] = typer.Option(None, "--words", "-w", help="Word or phrase of the caption to capture "
                                    "(repeatable). Default: the (marked) words, else every word."),
    out: Path = typer.Option(None, help="Run folder to write. Default: runs/<video name>-analyze."),
    model: str = typer.Option("toy", help="toy (shipped), tiny, a hub id/alias or a local diffusers folder."),
    sigmas: str = typer.Option(None, help="Noise levels σ in (0, 1], comma list (default 0.2,0.5,0.8): x_t = "
                               "(1-σ)·x0 + σ·noise; step i of the run is sigmas[i]."),
    steps: int = typer.Option(None, help="Instead of --sigmas: the first N levels of the scheduler's own N-step "
                              "schedule (noisiest first, as a generation visits them)."),
    draws: int = typer.Option(1, help="Noise draws per level, averaged (the run stores the mean)."),
    seed: int = typer.Option(0, help="Seed of the noise draws."),
    frames: int = typer.Option(None, help="At most this many frames (cut to 4k+1; default: the model's)."),
    height: int = typer.Option(None, help="Height to resize to after a centre crop (default: the model's)."),
    width: int = typer.Option(None, help="Width to resize to after a centre crop (default: the model's)."),
    heads: str = typer.Option("all", help='"all", "mean" or a comma list like 0,3.'),
    layers: str = typer.Option("all", help='"all" or a comma list like 0,5,10.'),
    value_norm: bool = typer.Option(False, help="Also capture value norms (the value-norm estimator)."),
    self_prop: bool = typer.Option(False, help="Also capture the maps propagated through each block's "
                                   "self-attention (the self-prop estimator)."),
    previews: bool = typer.Option(None, "--previews/--no-previews", help="Decode the model's clean-clip "
                                  "estimate at each level, for `render --kind timeline` (default: GPU only)."),
    overwrite: bool = typer.Option(False, help="Replace a run already at --out."),
    device: str = typer.Option(None, help="cpu or cuda (default: cuda when available)."),
) -> None:
    """Capture what a model attends to in existing footage: the clip is re-noised to each level and read by
    the model with its caption; writes a Run folder (steps = noise levels) that render and view read as usual.

    Example: attnscope analyze clip.mp4 --caption "a cat playing with a ball" -w cat -w ball --out runs/cat-footage
    """
    from ..commands import try_preview
    from ..models.loading import load_pipeline
    from ..selection import parse_selection
    from .clip import read_footage
    from .run import analyze

    levels = parse_sigmas(sigmas)
    heads_sel = parse_selection(heads, "--heads", allow_mean=True)
    layers_sel = parse_selection(layers, "--layers")
    footage = read_footage(video)  # an unreadable clip fails before the model loads
    out = out or Path("runs") / f"{video.stem}-analyze"
    pipe = load_pipeline(model, device=device)
    pipe.set_progress_bar_config(disable=True)
    run = analyze(pipe, footage, caption, out=out, words=words or None, sigmas=levels, steps=steps, draws=draws,
                  seed=seed, frames=frames, height=height, width=width, heads=heads_sel, layers=layers_sel,
                  value_norm=value_norm, self_prop=self_prop, previews=previews, overwrite=overwrite)
    typer.echo(f"wrote {run.path} (video.mp4, maps.zarr; words: {', '.join(run.words)}; "
               f"levels σ = {', '.join(f'{s:g}' for s in run.meta['source']['sigmas'])})")
    try_preview(run.path)
