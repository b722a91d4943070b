"""``attnscope eval``: how faithful are the maps, measured on the toy world."""

from __future__ import annotations

from pathlib import Path

import typer


def eval_command(
    model: str = typer.Option("toy", help="Model to evaluate (the toy world's ground truth is needed)."),
    prompts: int = typer.Option(None, help="Held-out prompts from the toy grammar (half with two objects; "
                                "default 30, 12 with --source footage)."),
    seed: int = typer.Option(0, help="Which held-out prompts (seeds never used in training)."),
    json_out: Path = typer.Option(None, "--json", help='Write {"estimators": {name: {"miou": ...}}, ...} here.'),
    out: Path = typer.Option(None, help="Write a markdown report and plots into this folder."),
    workdir: Path = typer.Option(None, help="Where the evaluated runs are written (and reused). Default: "
                                 "runs/eval (runs/eval-footage with --source footage)."),
    steps: int = typer.Option(None, help="Denoising steps (default: the model's)."),
    source: str = typer.Option("generated", help="generated: maps of the model's own videos, masks from the "
                               "detector; footage: maps of toy-world clips read by `attnscope analyze` at each "
                               "noise level, against their true masks."),
    sigmas: str = typer.Option(None, help="--source footage: the noise levels, comma list (default "
                               "0.1,0.3,0.5,0.7,0.9)."),
) -> None:
    """Score attention-map estimators against object masks (mIoU, as DAAM) per word kind, layer, head, step.

    The headline mIoU normalizes each frame of a map on its own and cuts it at the threshold chosen on the
    selection half of the prompts; the fixed 0.4 of DAAM, over the whole video, is reported beside it.

    Example: attnscope eval --prompts 30 --json eval.json --out docs/eval
    (footage: attnscope eval --source footage --json docs/eval/footage.json)
    """
    if source == "footage":
        from ..footage.cli import parse_sigmas
        from .footage import LEVELS, report_lines, run_footage_eval

        levels = tuple(parse_sigmas(sigmas) or LEVELS)
        result = run_footage_eval(model, prompts or 12, seed, json_path=json_out,
                                  workdir=workdir or Path("runs/eval-footage"), sigmas=levels)
        for line in report_lines(result):
            typer.echo(line)
        return
    if source != "generated":
        from ..errors import AttnscopeError

        raise AttnscopeError(f"--source {source!r}: use generated or footage")
    prompts, workdir = prompts or 30, workdir or Path("runs/eval")
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
