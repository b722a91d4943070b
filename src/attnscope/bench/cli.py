"""``attnscope bench capture|e2e``: capture cost measured side by side, as a table and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="Measure what capture costs, side by side with stock.")


@app.command("capture")
def capture_command(
    config: str = typer.Option("wan2.1-1.3b", help="wan2.1-1.3b, wan2.1-14b, wan2.2-5b or tiny."),
    repeats: int = typer.Option(5, help="Timed repeats per mode (after one warm-up), interleaved."),
    words: int = typer.Option(8, help="Number of captured words."),
    naive: bool = typer.Option(True, help="Also time the naive full-probability baseline."),
    frames: int = typer.Option(None), height: int = typer.Option(None), width: int = typer.Option(None),
    device: str = typer.Option(None, help="cuda or cpu (default: cuda when available)."),
    writer: str = typer.Option("auto", help="Store writer: auto (the thread writer), thread, inline."),
    self_prop: bool = typer.Option(False, help="Also time capture with the self-attention-propagated maps."),
    json_out: Path = typer.Option(None, "--json", help="Write the raw result here."),
) -> None:
    """One transformer forward: stock vs attnscope capture vs naive, random full-size weights.

    Example: attnscope bench capture --config wan2.1-1.3b --repeats 5 --json bench.json
    """
    from ..errors import AttnscopeError
    from .capture import run_capture_bench, table
    from .configs import CONFIGS

    if config not in CONFIGS:
        raise AttnscopeError(f"unknown config {config!r}; choose one of {', '.join(CONFIGS)}")
    result = run_capture_bench(config, device=device, repeats=repeats, n_words=words, naive=naive,
                               frames=frames, height=height, width=width, writer=writer, self_prop=self_prop)
    typer.echo(table(result))
    typer.echo(f"output identical to stock: {result['output_identical']}; writer: {result['writer']}")
    if json_out:
        json_out.write_text(json.dumps(result, indent=1))


@app.command("e2e")
def e2e_command(
    model: str = typer.Option("toy", help="toy, tiny, or a full-size config (wan2.1-1.3b ...) with random weights."),
    steps: int = typer.Option(None, help="Denoising steps (default: the model's, 50 for full-size configs)."),
    repeats: int = typer.Option(3, help="Timed repeats per mode, interleaved."),
    device: str = typer.Option(None, help="cuda or cpu."),
    writer: str = typer.Option("auto", help="Store writer(s), comma-separated, timed side by side: auto (the "
                               "thread writer), thread, inline. Example: --writer thread,inline"),
    self_prop: bool = typer.Option(False, help="Also time capture with --self-prop (the maps propagated "
                                   "through each block's self-attention), side by side."),
    compact: bool = typer.Option(False, help="Also time capture into a compact store (uint8 codes, one scale "
                                 "per map), side by side."),
    self_prop_steps: str = typer.Option("all", help='With --self-prop: the steps that get it ("all", "10-19").'),
    json_out: Path = typer.Option(None, "--json", help="Write the raw result here."),
) -> None:
    """A whole generation with and without capture (same seed), and the store size.

    Example: attnscope bench e2e --model toy --repeats 3 --writer thread,inline --self-prop --compact
    """
    from .e2e import run_e2e_bench

    result = run_e2e_bench(model, steps=steps, repeats=repeats, device=device,
                           writers=tuple(w.strip() for w in writer.split(",")), self_prop=self_prop,
                           compact=compact, self_prop_steps=self_prop_steps)
    med = result["median_s"]
    captures = ", ".join(f"{m} {med[m]:.3f} s ({result['ratios'][m] * 100:+.1f} % wall, "
                         f"{result['cpu_ratios'][m] * 100:+.1f} % CPU time; paired "
                         f"{result['paired_ratios'][m] * 100:+.1f} % wall, "
                         f"{result['paired_cpu_ratios'][m] * 100:+.1f} % CPU; store "
                         f"{result['store_bytes'].get(m, 0) / 1e6:.1f} MB)" for m in result["ratios"])
    typer.echo(f"{model}: stock {med['stock']:.3f} s, {captures}, identical: {result['output_identical']}")
    for mode, repeats_ in result["thread_cpu_s"].items():  # where the CPU time went, the last repeat's
        top = ", ".join(f"{name} {sec:.2f}" for name, sec in list(repeats_[-1].items())[:6])
        typer.echo(f"  CPU s by thread, {mode}: {top}")
    if json_out:
        json_out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    app()
