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

    The headline mIoU normalizes each frame of a map on its own and cuts it at the threshold chosen on the
    selection half of the prompts; the fixed 0.4 of DAAM, over the whole video, is reported beside it.

    Example: attnscope eval --prompts 30 --json eval.json --out docs/eval
    """
    from .run import run_eval

    result = run_eval(model, prompts, seed, out=out, json_path=json_out, workdir=workdir, steps=steps)
    paired = result.get("paired_vs_raw", {})
    for name, e in sorted(result["estimators"].items(), key=lambda kv: -kv[1]["miou_frame_best_threshold"]):
        vs = paired.get(name)
        delta = f", {vs['delta']:+.3f} vs raw [{vs['ci95'][0]:+.3f}, {vs['ci95'][1]:+.3f}]" if vs and vs["n"] else ""
        typer.echo(f"{name:12s} mIoU {e['miou_frame_best_threshold']:.3f} per frame at t={e['frame_best_threshold']:.2f}"
                   f"{delta}  (whole video at 0.4: {e['miou']:.3f}, pixels {e['miou_pixel']:.3f})")
    rec = result["recommended"]
    typer.echo(f"recommended: {rec['estimator']}, normalized per frame")
    if out:
        typer.echo(f"report: {out / 'report.md'}")
