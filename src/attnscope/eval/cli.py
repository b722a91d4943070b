"""``attnscope eval``: how faithful are the maps, measured on the toy world."""

from __future__ import annotations

from pathlib import Path

import typer


def eval_command(
    model: str = typer.Option("toy", help="Model to evaluate (the toy world's ground truth is needed)."),
    prompts: int = typer.Option(30, help="Held-out prompts from the toy grammar (half with two objects)."),
    seed: int = typer.Option(0, help="Which held-out prompts (seeds never used in training)."),
    json_out: Path = typer.Option(None, "--json", help='Write {"estimators": {name: {"miou": ...}}, ...} here.'),
    out: Path = typer.Option(None, help="Write a markdown report and plots into this folder."),
    workdir: Path = typer.Option(Path("runs/eval"), help="Where the evaluated runs are written (and reused)."),
    steps: int = typer.Option(None, help="Denoising steps (default: the model's)."),
) -> None:
    """Score attention-map estimators against object masks (mIoU, as DAAM) per word kind, layer, head, step.

    Example: attnscope eval --prompts 30 --json eval.json --out docs/eval
    """
    from .run import run_eval

    result = run_eval(model, prompts, seed, out=out, json_path=json_out, workdir=workdir, steps=steps)
    for name, e in sorted(result["estimators"].items(), key=lambda kv: -kv[1]["miou"]):
        typer.echo(f"{name:12s} mIoU {e['miou']:.3f}  (pixels {e['miou_pixel']:.3f}, best threshold "
                   f"{e['miou_best_threshold']:.3f}; per-frame normalization {e['miou_frame']:.3f}, best threshold "
                   f"{e['miou_frame_best_threshold']:.3f} at t={e['frame_best_threshold']:.2f})")
    if out:
        typer.echo(f"report: {out / 'report.md'}")
