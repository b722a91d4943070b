"""The ``attnscope`` command line. Each sub-command's body lives in its package; this file only wires them.

Bad input exits with code 2 and one line on stderr (``AttnscopeError``); anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from .errors import AttnscopeError

app = typer.Typer(
    name="attnscope", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="See and bend what Wan text-to-video models attend to.",
)


@app.command()
def generate(
    prompt: str = typer.Argument(..., help='Prompt; mark words to capture with parentheses: "a (red) circle".'),
    model: str = typer.Option("toy", help="toy (shipped), tiny, a hub id/alias or a local diffusers folder."),
    words: list[str] = typer.Option(None, "--words", "-w", help="Word or phrase to capture (repeatable). "
                                    "Default: the (marked) words, else every word."),
    out: Path = typer.Option(None, help="Run folder to write. Default: runs/<prompt>-s<seed>."),
    seed: int = typer.Option(0, help="Random seed (same seed, same video)."),
    frames: int = typer.Option(None, help="Number of frames, 4k+1 (model default if unset)."),
    height: int = typer.Option(None, help="Height in pixels (model default if unset)."),
    width: int = typer.Option(None, help="Width in pixels (model default if unset)."),
    steps: int = typer.Option(None, help="Denoising steps (model default if unset)."),
    guidance: float = typer.Option(None, help="Classifier-free guidance scale (model default if unset)."),
    negative: str = typer.Option(None, help="Negative prompt."),
    heads: str = typer.Option("all", help='"all", "mean" (averaged at capture), a comma list like 0,3 or a range '
                              "like 0-5."),
    layers: str = typer.Option("all", help='"all", a comma list like 0,5,10 or a range like 10-20.'),
    capture_steps: str = typer.Option("all", help='Denoising steps to capture: "all", a comma list like 0,10 or '
                                      "a range like 20-49 (the others still run, uncaptured)."),
    bend: Path = typer.Option(None, help="Bend recipe (YAML/JSON) to apply while generating."),
    compare: bool = typer.Option(False, help="With --bend: also generate the unbent baseline at the same seed "
                                 "and a side-by-side video (baseline | bent | difference)."),
    value_norm: bool = typer.Option(False, help="Also capture value norms (the value-norm estimator)."),
    self_prop: bool = typer.Option(False, help="Also capture the maps propagated through each block's "
                                   "self-attention (the self-prop estimator: sharper objects; about one more "
                                   "self-attention per captured layer and step)."),
    self_prop_steps: str = typer.Option(None, help='With --self-prop: the captured steps that also get it ("all", '
                                        '"10-19", ...). Default: the steps the model\'s recommended view reads '
                                        "(toy: the second half), the same map at a fraction of the cost."),
    compact: bool = typer.Option(False, help="Store the maps compactly: a byte per value with a scale per map "
                                 "(a quarter to 40 % of the lossless size; every read value within 0.25 % of its "
                                 "map's maximum, recorded in meta.json)."),
    probe: list[str] = typer.Option(None, "--probe", help="Also capture where a point attends in space-time: "
                                    "its self-attention row (mean over heads) at every captured step and layer. "
                                    "F,Y,X on the latent token grid (repeatable), e.g. --probe 2,8,13; the Probe "
                                    "tab of `attnscope view` draws it."),
    previews: bool = typer.Option(None, "--previews/--no-previews", help="Decode the model's clean-video "
                                  "estimate at every step, for `render --kind timeline` (default: on a GPU only; "
                                  "costs one VAE decode per step)."),
    overwrite: bool = typer.Option(False, help="Replace a run already at --out."),
    device: str = typer.Option(None, help="cpu or cuda (default: cuda when available)."),
    parallel: str = typer.Option(None, help="ulysses or ring: split one video over the GPUs of a torchrun launch "
                                 "(diffusers' context parallelism), e.g. torchrun --nproc_per_node 2 -m "
                                 "attnscope.cli generate ... --parallel ulysses"),
) -> None:
    """Generate a video while capturing cross-attention; writes video.mp4 and maps.zarr into a Run folder.

    Example: attnscope generate "a red circle moving left and a blue square moving up" --seed 3
    """
    from .commands import run_generate

    run_generate(prompt=prompt, model=model, words=words or None, out=out, seed=seed, frames=frames,
                 height=height, width=width, steps=steps, guidance=guidance, negative=negative, heads=heads,
                 layers=layers, bend=bend, compare=compare, value_norm=value_norm, self_prop=self_prop,
                 self_prop_steps=self_prop_steps, compact=compact, overwrite=overwrite, device=device,
                 previews=previews, parallel=parallel, probe=probe or None)


def _mount() -> None:
    """Attach the sub-commands that live in their own packages."""
    from .app.cli import export_command, view_command
    from .bench.cli import app as bench_app
    from .bend.cli import bend_eval_command
    from .eval.cli import eval_command
    from .footage.cli import analyze_command
    from .render.cli import render_command
    from .sweep.cli import sweep_command
    from .toy.cli import app as toy_app

    app.command("render")(render_command)
    app.command("analyze")(analyze_command)
    app.command("view")(view_command)
    app.command("export")(export_command)
    app.command("sweep")(sweep_command)
    app.command("eval")(eval_command)
    app.command("bend-eval")(bend_eval_command)
    app.add_typer(bench_app, name="bench", help="Measure capture cost side by side.")
    app.add_typer(toy_app, name="toy", help="The toy world: train and check the shipped toy model.")


def main() -> None:
    # Library chatter (deprecation notes, processor fallbacks) would bury the one-line errors; users can
    # still raise the level with TRANSFORMERS_VERBOSITY / DIFFUSERS_VERBOSITY.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    _mount()
    try:
        app()
    except AttnscopeError as exc:
        typer.echo(f"attnscope: error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
