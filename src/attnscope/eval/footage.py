"""``attnscope eval --source footage``: how well maps of *existing* videos localize, per noise level.

The held-out toy scenes of the generated-video eval (same captions, same select/test split) are rendered by the
toy world itself, so each object's mask is exact ground truth (no detector in between); ``attnscope.analyze``
reads every clip at each noise level; every estimator is scored per level (step i of such a run is level i)
and over all levels together, with eval's own metrics. The level that localizes best is chosen on the
selection split and reported on the test split, as eval picks its thresholds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ..footage import analyze
from ..models.loading import load_pipeline
from ..render.selection import missing_source
from ..store import open_run
from ..toy.world import render
from . import estimators as est
from .evaluate import HEADLINE, Sample, _scores, _summary
from .run import _labels, eval_prompts, weights_fingerprint

LEVELS = (0.1, 0.3, 0.5, 0.7, 0.9)
GENERATED = Path(__file__).resolve().parents[3] / "docs" / "eval" / "eval.json"  # generated-video numbers


def collect_footage(model: str = "toy", n_prompts: int = 12, seed: int = 0, workdir: str | Path = "runs/eval-footage",
                    sigmas: tuple[float, ...] = LEVELS, progress: bool = True) -> list[Sample]:
    """Render each held-out scene, analyze it at ``sigmas`` (reusing complete runs made the same way), and pair
    every captured word with its object's true mask."""
    pipe = load_pipeline(model)
    pipe.set_progress_bar_config(disable=True)
    workdir = Path(workdir)
    weights = weights_fingerprint(pipe)
    samples = []
    for i, (text, scene) in enumerate(eval_prompts(n_prompts, seed)):
        video, masks = render(scene)
        out = workdir / f"f{i:03d}"
        made = {"prompt": text, "seed": i, "weights": weights, "sigmas": list(sigmas)}
        previous = open_run(out) if (out / "meta.json").exists() else None
        if previous is not None and previous.complete and previous.meta.get("eval") == made:
            run = previous
        else:
            words = list(dict.fromkeys(w for o in scene for w in (o.colour, o.shape)))
            run = analyze(pipe, video.numpy(), text, words=words, out=out, sigmas=list(sigmas), seed=i,
                          value_norm=True, self_prop=True, overwrite=True, quiet=True, meta={"eval": made})
        split = "select" if (i // 2) % 2 == 0 else "test"  # as the generated-video eval splits its prompts
        slot = {o.colour: k for k, o in enumerate(scene)}
        for label, kind, colour in _labels(scene):
            samples.append(Sample(run, label, kind, masks[slot[colour]].numpy(), split))
        if progress:
            print(f"[{i + 1}/{n_prompts}] {text}", file=sys.stderr)
    return samples


def evaluate_footage(samples: list[Sample], sigmas: tuple[float, ...]) -> dict:
    """Per estimator: its summary (eval's metrics) at each level and over all levels, and the level chosen on the
    selection split."""
    result: dict = {"levels": list(sigmas), "estimators": {}}
    for name, fn in est.ESTIMATORS.items():
        if missing_source(samples[0].run, name):
            continue
        per_level = {}
        for i, sigma in enumerate(sigmas):
            rows = [_scores(fn(s.run, s.word, steps=[i]), s) for s in samples]
            per_level[f"{sigma:g}"] = {**_summary(rows, samples), "select": _select_score(rows, samples)}
        rows = [_scores(fn(s.run, s.word), s) for s in samples]
        chosen = max(per_level, key=lambda k: per_level[k]["select"])
        result["estimators"][name] = {"per_level": per_level, "all_levels": _summary(rows, samples),
                                      "best_level": float(chosen),
                                      "best_level_test": per_level[chosen][HEADLINE]}
    return result


def _select_score(rows: list[dict], samples: list[Sample]) -> float:
    """The headline metric on the selection split (each split's threshold is its own best)."""
    select = [r for r, s in zip(rows, samples, strict=True) if s.split == "select"] or rows
    return float(np.mean([r["curve_frame"] for r in select], axis=0).max())


def generated_numbers(path: Path = GENERATED) -> dict[str, float]:
    """The headline mIoU per estimator of the generated-video eval (docs/eval/eval.json), for comparison."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return {name: e[HEADLINE] for name, e in data["estimators"].items()}


def run_footage_eval(model: str = "toy", n_prompts: int = 12, seed: int = 0, json_path: str | Path | None = None,
                     workdir: str | Path = "runs/eval-footage", sigmas: tuple[float, ...] = LEVELS) -> dict:
    """Everything ``attnscope eval --source footage`` does; returns the result (also written as JSON when asked)."""
    samples = collect_footage(model, n_prompts, seed, workdir, sigmas)
    result = evaluate_footage(samples, sigmas)
    result["generated"] = generated_numbers()
    result["settings"] = {"model": model, "prompts": n_prompts, "seed": seed, "samples": len(samples),
                          "test_samples": sum(s.split == "test" for s in samples), "draws": 1,
                          "masks": "toy world ground truth", "metric": HEADLINE}
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=1))
    return result


def report_lines(result: dict) -> list[str]:
    """The table the command prints: per estimator, the headline mIoU at each level, all levels, generated."""
    levels = [f"{s:g}" for s in result["levels"]]
    head = f"{'estimator':12s} " + " ".join(f"σ={lv:>5s}" for lv in levels) + "   all    best σ   generated"
    lines = [head]
    for name, e in sorted(result["estimators"].items(), key=lambda kv: -kv[1]["best_level_test"]):
        cells = " ".join(f"{e['per_level'][lv][HEADLINE]:7.3f}" for lv in levels)
        gen = result["generated"].get(name)
        lines.append(f"{name:12s} {cells} {e['all_levels'][HEADLINE]:7.3f}   {e['best_level']:<6g}"
                     f"   {gen:.3f}" if gen is not None else f"{name:12s} {cells} {e['all_levels'][HEADLINE]:7.3f}"
                     f"   {e['best_level']:<6g}   —")
    lines.append(f"mIoU per frame at the threshold chosen on the selection split (test split, "
                 f"{result['settings']['test_samples']} samples); best σ chosen on the selection split")
    return lines
