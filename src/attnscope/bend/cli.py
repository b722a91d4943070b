"""``attnscope bend-eval``: score the bends on held-out toy prompts with the detector (see bend.evaluate)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from .evaluate import DX, OPS, CaseResult, format_summary, picture_grid, run_bend_eval, summarize, write_json


def bend_eval_command(
    prompts: int = typer.Option(40, help="Held-out prompts (half one object, half two)."),
    split: int = typer.Option(0, help="Held-out split (world seeds 10^9 + split*100000 + i)."),
    start: int = typer.Option(0, help="First prompt index of the split (to run a split in parts)."),
    ops: str = typer.Option(",".join(OPS), help="Comma list of suppress,translate,scale,swap."),
    steps: int = typer.Option(20, help="Denoising steps."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    out: Path = typer.Option(Path("docs/bend"), help="Folder for bend_eval.json and bend_eval_grid.png."),
    examples: int = typer.Option(4, help="Cases shown in the picture grid."),
    merge: list[Path] = typer.Option(None, help="Instead of running: merge the JSON of runs made in parts "
                                     "(--start, or --ops; a later file's ops replace an earlier one's) into "
                                     "OUT/bend_eval.json (repeatable)."),
) -> None:
    """Generate baseline and bent videos at the same seed with the toy model and score them with the detector.

    The JSON is rewritten after every case, so an interrupted run keeps what it scored.
    Example: attnscope bend-eval --prompts 8 --out runs/bend-eval
    """
    if merge:
        _merge(merge, out)
        return
    import attnscope

    chosen = {op: {} for op in ops.split(",") if op}  # every field from the model's measured defaults
    pipe = attnscope.load_pipeline("toy", device=device)
    out.mkdir(parents=True, exist_ok=True)
    name = "bend_eval" if start == 0 else f"bend_eval_{start}"
    settings = {"prompts": prompts, "split": split, "start": start, "dx": DX, "steps": steps, "device": device,
                "ops": chosen}
    done: list[CaseResult] = []
    t0 = time.time()

    def on_case(result: CaseResult) -> None:
        done.append(result)
        write_json(out / f"{name}.json", done, {**settings, "cases_done": len(done),
                                               "seconds": round(time.time() - t0, 1)})
        typer.echo(f"[{time.time() - t0:.0f}s] {result.prompt}", err=True)

    results, extra = run_bend_eval(pipe, n_prompts=prompts, split=split, start=start, ops=chosen, steps=steps,
                                   keep=examples, on_case=on_case)
    if extra["examples"]:
        picture_grid(extra["examples"], out / f"{name}_grid.png")
    typer.echo(format_summary(summarize(results)))
    typer.echo(json.dumps({"wrote": str(out / f"{name}.json")}))


def _merge(paths: list[Path], out: Path) -> None:
    """One report from parts of one split: their cases in prompt order, summarized again."""
    from ..errors import AttnscopeError

    reports = [json.loads(Path(p).read_text()) for p in paths]
    splits = {r["settings"]["split"] for r in reports}
    if len(splits) != 1:
        raise AttnscopeError(f"--merge: the parts come from different splits {sorted(splits)}; merge one split")
    by_seed: dict[int, CaseResult] = {}
    for report in reports:  # parts by prompt range, or by op (--ops): a later part's ops replace an earlier one's
        for case in report["cases"]:
            if case["seed"] in by_seed:
                by_seed[case["seed"]].ops.update(case["ops"])
            else:
                by_seed[case["seed"]] = CaseResult(**case)
    results = [by_seed[k] for k in sorted(by_seed)]
    settings = {**reports[0]["settings"], "prompts": len(results), "start": 0, "cases_done": len(results),
                "merged_from": [str(p) for p in paths],
                "devices": sorted({d for r in reports for d in r["settings"].get("devices", [r["settings"]["device"]])}),
                "seconds": round(sum(r["settings"].get("seconds", 0) for r in reports), 1)}
    write_json(out / "bend_eval.json", results, settings)
    typer.echo(format_summary(summarize(results)))
    typer.echo(json.dumps({"wrote": str(out / "bend_eval.json"), "cases": len(results)}))
