"""``attnscope sweep``: the command body (cli.py mounts it)."""

from __future__ import annotations

from pathlib import Path

import typer


def sweep_command(
    spec: Path = typer.Argument(..., help="Sweep file (YAML): model, prompts, seeds, bends, generate."),
    out: Path = typer.Option(None, "--out", "-o", help="Folder for the runs, index.json and the contact sheet. "
                             "Default: sweeps/<sweep file name>."),
    address: str = typer.Option(None, help="Ray cluster to join (else RAY_ADDRESS, else a local Ray instance)."),
    word: str = typer.Option(None, help="Word whose attention the contact sheet shows (default: the sweep's "
                             "'word', else the first word a bend names)."),
    workers: int = typer.Option(None, help="At most this many actors (default: one per GPU, else one per core)."),
) -> None:
    """Generate every prompt x seed x bend recipe of a sweep file on Ray, one Run folder each.

    Re-running the same command skips complete runs and redoes incomplete ones.

    Writes OUT/index.json (one row per job) and OUT/contact_sheet_WORD.png and .mp4 (rows: prompt x seed).

    Exits 1 when a job failed; its error is in index.json.

    Example: attnscope sweep examples/sweeps/toy_reweight.yaml --out sweeps/reweight --word circle
    """
    from .runner import run

    result = run(spec, out or Path("sweeps") / spec.stem, address=address, workers=workers, word=word)
    if result.failed:
        raise typer.Exit(code=1)
