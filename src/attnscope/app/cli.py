"""``attnscope view`` and ``attnscope export`` (mounted by attnscope.cli)."""

from __future__ import annotations

from pathlib import Path

import typer


def view_command(
    runs_dir: Path = typer.Argument(..., help="Folder that holds Run folders (searched 3 levels deep)."),
    port: int = typer.Option(7860, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind. Anything but loopback exposes your runs to "
                             "whoever can reach this machine (a warning is printed)."),
) -> None:
    """Browse runs in a local web app: overlays by word, step, layer and head, timeline, charts, compare.

    Example: attnscope view runs/ --port 7860   (then open http://127.0.0.1:7860)
    """
    from .server import serve

    serve(runs_dir, host=host, port=port, block=True)


def export_command(
    run: Path = typer.Argument(..., help="Run folder to export."),
    out: Path = typer.Option(Path("report.html"), "--out", "-o", help="HTML file to write."),
    words: list[str] = typer.Option(None, "--words", "-w", help="Words to include (repeatable). Default: the "
                                    "words marked or passed at capture, else the prompt's content words."),
    step: str = typer.Option(None, help='Steps to average: "mean", an index or a range like 10-30. '
                             "Default: the preset's (as `attnscope render`)."),
    layer: str = typer.Option(None, help='Layers to average: "mean", an index or a range like 0-9. '
                              "Default: the preset's."),
    head: str = typer.Option(None, help='Heads to average: "mean", an index or a list like 0,3. Default: mean.'),
    estimator: str = typer.Option(None, help="raw, renorm, value-norm, value-proj or self-prop. Default: the "
                                  "preset's."),
    preset: str = typer.Option("recommended", help="recommended (what `attnscope eval` measured for the run's "
                               "model) or none (plain mean)."),
) -> None:
    """Write one self-contained HTML page (videos and images embedded, no server) to share a finding.

    Example: attnscope export runs/cat -o cat.html --step 20-49
    """
    from .export import export_report

    path = export_report(run, out, words=words or None, step=step, layer=layer, head=head, estimator=estimator,
                         preset=preset)
    typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
