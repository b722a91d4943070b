"""``attnscope bend-eval``: score the bends on held-out toy prompts with the detector (see bend.evaluate)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from .evaluate import DX, OPS, format_summary, picture_grid, run_bend_eval, summarize, write_json


def bend_eval_command(
    prompts: int = typer.Option(40, help="Held-out prompts (half one object, half two)."),
    split: int = typer.Option(0, help="Held-out split (world seeds 10^9 + split*100000 + i)."),
    start: int = typer.Option(0, help="First prompt index of the split (to run a split in parts)."),
    ops: str = typer.Option(",".join(OPS), help="Comma list of suppress,translate,scale,swap."),
    steps: int = typer.Option(20, help="Denoising steps."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    out: Path = typer.Option(Path("docs/bend"), help="Folder for bend_eval.json and bend_eval_grid.png."),
    examples: int = typer.Option(4, help="Cases shown in the picture grid."),
) -> None:
    """Generate baseline and bent videos at the same seed with the toy model and score them with the detector.

    Example: attnscope bend-eval --prompts 8 --out runs/bend-eval
    """
    import attnscope

    chosen = {op: ({"eos": False} if op == "translate" else {}) for op in ops.split(",") if op}
    pipe = attnscope.load_pipeline("toy", device=device)
    t0 = time.time()
    results, extra = run_bend_eval(pipe, n_prompts=prompts, split=split, start=start, ops=chosen, steps=steps,
                                   keep=examples, on_case=lambda r: typer.echo(f"[{time.time() - t0:.0f}s] "
                                                                               f"{r.prompt}", err=True))
    out.mkdir(parents=True, exist_ok=True)
    name = "bend_eval" if start == 0 else f"bend_eval_{start}"
    write_json(out / f"{name}.json", results, {"prompts": prompts, "split": split, "start": start, "dx": DX,
                                              "steps": steps, "device": device, "ops": chosen,
                                              "seconds": round(time.time() - t0, 1)})
    if extra["examples"]:
        picture_grid(extra["examples"], out / f"{name}_grid.png")
    typer.echo(format_summary(summarize(results)))
    typer.echo(json.dumps({"wrote": str(out / f"{name}.json")}))
