"""``attnscope bend-eval``: do the bends do what they say? Measured on held-out toy prompts with the detector.

For each held-out prompt (world seeds from ``EVAL_SEED_BASE`` up, as ``toy check`` and ``eval`` draw them; prompt
i has one object when i is even, two when odd) the *target* is the prompt's first object. Baseline and bent videos
share the seed; the detector (:mod:`attnscope.toy.detect`) reads both:

- ``suppress`` (``reweight`` 0 of the object): *removed* when no detection has the object's colour and shape and
  none covers its baseline place (mask IoU >= 0.3); *kept* when every other object is still there (colour and
  shape);
- ``translate`` (the object by ``dx`` = 0.3 of the width, towards the side with more room): the centroid's shift
  in fractions of the width (the ``shift / dx`` ratio; success: >= 0.15 the same way);
- ``scale`` (the object's maps zoomed by ``factor``): the object's area ratio, bent / baseline;
- ``swap`` (Prompt-to-Prompt: prompt B names the object in another colour; B's run takes A's maps): *colour
  changed* when a detection of the new colour covers the baseline object (IoU >= 0.7) and the old colour and
  shape are gone; the unbent prompt B at the same seed is the control (does the seed alone keep the layout?);
- *collateral*, for every op: 1 - the mean mask IoU of the other objects between baseline and bent (0: untouched).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..toy.detect import Detection, detect_objects
from ..toy.world import COLOURS, EVAL_SEED_BASE, SIZE, ToyObject, caption, scene_for_seed

__all__ = ["OPS", "BendCase", "cases", "run_bend_eval", "summarize"]

OPS = ("suppress", "translate", "scale", "swap")
DX = 0.3
FACTOR = 1.5
IN_PLACE_IOU = 0.3
SWAP_IOU = 0.7


@dataclass
class BendCase:
    prompt: str
    seed: int
    objects: list[ToyObject]

    @property
    def target(self) -> ToyObject:
        return self.objects[0]

    @property
    def phrase(self) -> str:
        return f"{self.target.colour} {self.target.shape}"

    @property
    def clause(self) -> str:
        """The object's whole description: "a red circle moving left" (every word that localizes on it)."""
        return self.target.phrase

    def swap_colour(self) -> str:
        used = {o.colour for o in self.objects}
        return next(c for c in COLOURS if c not in used)

    def swapped_prompt(self) -> str:
        new = self.swap_colour()
        objs = [ToyObject(new, o.shape, o.motion) if i == 0 else o for i, o in enumerate(self.objects)]
        return caption(objs)


def cases(n: int, split: int = 0, start: int = 0) -> list[BendCase]:
    """Held-out prompts: world seed ``EVAL_SEED_BASE + split * 100_000 + i`` (``toy check``'s), 1 or 2 objects."""
    out = []
    for i in range(start, start + n):
        seed = EVAL_SEED_BASE + split * 100_000 + i
        objects = scene_for_seed(seed, n_objects=1 + i % 2)
        out.append(BendCase(caption(objects), seed, objects))
    return out


# ---- reading videos -------------------------------------------------------------------------------------------
def _find(found: list[Detection], colour: str, shape: str | None = None) -> Detection | None:
    same = [d for d in found if d.colour == colour]
    exact = [d for d in same if d.shape == shape]
    return (exact or same or [None])[0]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def _centre(d: Detection) -> np.ndarray:
    return np.nanmean(d.centroids, axis=0)


def _area(d: Detection) -> float:
    areas = d.masks.sum(axis=(1, 2))
    seen = areas > 0
    return float(areas[seen].mean()) if seen.any() else 0.0


def _others(case: BendCase, base: list[Detection], bent: list[Detection]) -> tuple[bool, float | None]:
    """(every other object kept with its colour and shape, collateral = 1 - mean mask IoU), over the others the
    baseline drew."""
    kept, ious = True, []
    for obj in case.objects[1:]:
        b0 = _find(base, obj.colour, obj.shape)
        if b0 is None or b0.shape != obj.shape:
            continue
        b1 = _find(bent, obj.colour, obj.shape)
        ok = b1 is not None and b1.shape == obj.shape
        kept &= ok
        ious.append(_iou(b0.masks, b1.masks) if b1 is not None else 0.0)
    return kept, (1.0 - float(np.mean(ious)) if ious else None)


def score(op: str, case: BendCase, base: list[Detection], bent: list[Detection], extra: dict[str, Any],
          control: list[Detection] | None = None) -> dict[str, Any]:
    """One bent video against its baseline; ``skipped`` when the baseline lacks the target object."""
    t = case.target
    b0 = _find(base, t.colour, t.shape)
    if b0 is None or b0.shape != t.shape:
        return {"skipped": "baseline lacks the object"}
    kept, collateral = _others(case, base, bent)
    out: dict[str, Any] = {"others_kept": kept, "collateral": collateral}
    if op == "suppress":
        named = any(d.colour == t.colour and d.shape == t.shape for d in bent)
        in_place = [f"{d.colour} {d.shape}" for d in bent if _iou(d.masks, b0.masks) >= IN_PLACE_IOU]
        out.update(named_gone=not named, in_place=in_place, removed=not named and not in_place,
                   success=not named and not in_place and kept)
    elif op == "translate":
        b1 = _find(bent, t.colour, t.shape)
        dx = extra["dx"]
        if b1 is None:
            out.update(shift=None, ratio=None, success=False, lost=True)
        else:
            shift = float((_centre(b1) - _centre(b0))[0] / SIZE)
            shift_y = float((_centre(b1) - _centre(b0))[1] / SIZE)
            out.update(shift=shift, shift_y=shift_y, ratio=shift / dx, success=shift * np.sign(dx) >= 0.15,
                       lost=False)
    elif op == "scale":
        b1 = _find(bent, t.colour, t.shape)
        ratio = _area(b1) / _area(b0) if b1 is not None else 0.0
        out.update(area_ratio=ratio, lost=b1 is None, success=b1 is not None and ratio >= 1.25)
    elif op == "swap":
        out.update(_swap_score(case, b0, bent))
        if control is not None:
            out["control"] = _swap_score(case, b0, control)
    return out


def _swap_score(case: BendCase, b0: Detection, video: list[Detection]) -> dict[str, Any]:
    new, t = case.swap_colour(), case.target
    cand = [d for d in video if d.colour == new]
    iou = max((_iou(d.masks, b0.masks) for d in cand), default=0.0)
    old_gone = not any(d.colour == t.colour and d.shape == t.shape for d in video)
    changed = bool(cand) and old_gone
    return {"colour_changed": changed, "iou": iou, "success": changed and iou >= SWAP_IOU}


# ---- recipes --------------------------------------------------------------------------------------------------
def recipe_for(op: str, case: BendCase, extra: dict[str, Any], base_x: float | None,
               source: Path | None = None) -> list[dict[str, Any]]:
    """The bend of ``op`` on the case's target; ``extra`` adds/overrides fields (steps, layers, eos, ...)."""
    opts = {k: v for k, v in extra.items() if k not in ("dx", "factor", "clause")}
    target = case.clause if extra.get("clause", True) else case.phrase
    if op == "suppress":
        bend = {"target": "attention", "op": "reweight", "object": target, "scale": 0.0}
    elif op == "translate":
        bend = {"target": "attention", "op": "translate", "object": target, "dx": extra["dx"]}
    elif op == "scale":
        bend = {"target": "attention", "op": "scale", "object": target, "factor": extra.get("factor", FACTOR)}
    elif op == "swap":
        bend = {"target": "attention", "op": "swap", "source": str(source),
                "replace": {case.swap_colour(): case.target.colour}}
    else:
        raise ValueError(f"unknown op {op!r}; choose from {', '.join(OPS)}")
    return [{**bend, **opts}]


# ---- running --------------------------------------------------------------------------------------------------
@dataclass
class CaseResult:
    prompt: str
    seed: int
    target: str
    base: list[str] = field(default_factory=list)
    ops: dict[str, dict[str, Any]] = field(default_factory=dict)


def _describe(found: list[Detection]) -> list[str]:
    return [f"{d.colour} {d.shape} {d.motion}" for d in found]


def _video(pipe, prompt: str, seed: int, steps: int, guidance: float, bends=None, store: Path | None = None,
           scratch: Path | None = None):
    """One toy video; ``store``: captured in full (the source of a swap); ``bends``: bent (capturing one slab)."""
    import shutil

    from ..toy.check import generate_video
    from ..tracing import trace

    if bends is None and store is None:
        return generate_video(pipe, prompt, seed, steps, guidance)
    if store is not None:
        with trace(pipe, words=None, store=store, bends=bends, overwrite=True):
            return generate_video(pipe, prompt, seed, steps, guidance)
    try:
        with trace(pipe, words=None, store=scratch, bends=bends, overwrite=True, steps=[0], layers=[0],
                   heads="mean"):
            return generate_video(pipe, prompt, seed, steps, guidance)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run_bend_eval(pipe, n_prompts: int = 40, split: int = 0, ops: dict[str, dict[str, Any]] | None = None,
                  steps: int = 20, guidance: float = 4.0, controls: bool = True, keep: int = 0, start: int = 0,
                  work: Path | None = None,
                  on_case: Callable[[CaseResult], None] | None = None) -> tuple[list[CaseResult], dict]:
    """Run every op on ``n_prompts`` held-out prompts; returns per-case results and kept example videos.

    ``ops``: op name -> extra bend fields (e.g. ``{"steps": [0.0, 0.3]}``); fields left out take the model's
    measured defaults. ``keep``: how many cases' videos (baseline and each bent) to return for the picture grid.
    """
    ops = {op: {} for op in OPS} if ops is None else ops
    pipe.set_progress_bar_config(disable=True)
    results, examples = [], []
    tmp = tempfile.TemporaryDirectory(prefix="attnscope-bend-eval-") if work is None else None
    root = Path(work if work is not None else tmp.name)
    try:
        for ci, case in enumerate(cases(n_prompts, split, start)):
            source = root / f"source-{ci}"
            base_video = _video(pipe, case.prompt, case.seed, steps, guidance, store=source if any(k.startswith("swap") for k in ops)
                                else None)
            base = detect_objects(base_video)
            b0 = _find(base, case.target.colour, case.target.shape)
            base_x = float(_centre(b0)[0] / SIZE) if b0 is not None else 0.5
            res = CaseResult(case.prompt, case.seed, case.phrase, _describe(base))
            videos = {"baseline": base_video}
            control = None
            for key, extra in ops.items():
                op = key.split("@")[0]  # "translate@early": a variant of translate
                extra = dict(extra)
                if op == "translate":
                    extra["dx"] = extra.get("dx", DX) * (1.0 if base_x < 0.5 else -1.0)
                prompt = case.swapped_prompt() if op == "swap" else case.prompt
                bends = recipe_for(op, case, extra, base_x, source)
                bent_video = _video(pipe, prompt, case.seed, steps, guidance, bends=bends, scratch=root / "bent")
                if op == "swap" and controls and control is None:
                    control_video = _video(pipe, prompt, case.seed, steps, guidance)
                    control = detect_objects(control_video)
                    videos["swap control (B unbent)"] = control_video
                bent = detect_objects(bent_video)
                res.ops[key] = {"prompt": prompt, "bend": bends[0], "seen": _describe(bent),
                                **score(op, case, base, bent, extra, control if op == "swap" else None)}
                videos[key] = bent_video
            results.append(res)
            if len(examples) < keep:
                examples.append((case, videos))
            if on_case is not None:
                on_case(res)
            if source.exists():
                import shutil

                shutil.rmtree(source, ignore_errors=True)
    finally:
        if tmp is not None:
            tmp.cleanup()
    return results, {"examples": examples}


def _rate(values: list[bool]) -> float | None:
    return float(np.mean(values)) if values else None


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def summarize(results: list[CaseResult]) -> dict[str, dict[str, Any]]:
    """Per op: how many cases were scored, success rates, means (see the module docstring)."""
    out: dict[str, dict[str, Any]] = {}
    keys = list(dict.fromkeys(k for r in results for k in r.ops))
    for key in keys:
        op = key.split("@")[0]
        scored = [r for r in results if key in r.ops and "skipped" not in r.ops[key]]
        rows = [r.ops[key] for r in scored]
        two = [r.ops[key] for r in scored if " and " in r.prompt]
        s: dict[str, Any] = {"cases": len(rows), "skipped": sum(key in r.ops and "skipped" in r.ops[key]
                                                                 for r in results),
                             "success": _rate([row["success"] for row in rows]),
                             "others_kept": _rate([row["others_kept"] for row in two]),
                             "collateral": _mean([row["collateral"] for row in two])}
        if op == "suppress":
            s.update(named_gone=_rate([row["named_gone"] for row in rows]),
                     removed=_rate([row["removed"] for row in rows]))
        elif op == "translate":
            shifts = [row["shift"] * np.sign(row["bend"]["dx"]) for row in rows if row["shift"] is not None]
            s.update(mean_shift=_mean(shifts), median_ratio=float(np.median(shifts) / DX) if shifts else None,
                     lost=_rate([row["lost"] for row in rows]))
        elif op == "scale":
            ratios = [row["area_ratio"] for row in rows if not row["lost"]]
            s.update(median_area_ratio=float(np.median(ratios)) if ratios else None,
                     lost=_rate([row["lost"] for row in rows]))
        elif op == "swap":
            s.update(colour_changed=_rate([row["colour_changed"] for row in rows]),
                     mean_iou=_mean([row["iou"] for row in rows]),
                     iou_at_least_0_7=_rate([row["iou"] >= SWAP_IOU for row in rows]))
            ctrl = [row["control"] for row in rows if "control" in row]
            if ctrl:
                s["control"] = {"success": _rate([c["success"] for c in ctrl]),
                                "colour_changed": _rate([c["colour_changed"] for c in ctrl]),
                                "mean_iou": _mean([c["iou"] for c in ctrl])}
        out[key] = s
    return out


def write_json(path: Path, results: list[CaseResult], settings: dict[str, Any]) -> dict[str, Any]:
    report = {"settings": settings, "summary": summarize(results), "cases": [asdict(r) for r in results]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, default=float))
    return report


def picture_grid(examples: list[tuple[BendCase, dict[str, np.ndarray]]], path: Path, frame: int = 8) -> Path:
    """One row per example case, one column per video (baseline, each op), frame ``frame``; labelled."""
    from PIL import Image, ImageDraw

    columns = list(examples[0][1])
    tile, head, label = 192, 18, 14
    img = Image.new("RGB", (tile * len(columns), head + len(examples) * (tile + label)), (40, 40, 40))
    draw = ImageDraw.Draw(img)
    for j, name in enumerate(columns):
        draw.text((j * tile + 4, 3), name, fill=(255, 255, 255))
    for i, (case, videos) in enumerate(examples):
        y = head + i * (tile + label)
        draw.text((4, y + 1), f"{case.prompt}   (target: {case.phrase})", fill=(220, 220, 220))
        for j, name in enumerate(columns):
            if name in videos:
                f = Image.fromarray(videos[name][min(frame, len(videos[name]) - 1)]).resize((tile, tile))
                img.paste(f, (j * tile, y + label))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def format_summary(summary: dict[str, dict[str, Any]]) -> str:
    def pct(v):
        return "—" if v is None else f"{v:.0%}"

    def num(v, fmt="{:+.2f}"):
        return "—" if v is None else fmt.format(v)

    lines = []
    for key, s in summary.items():
        op = key.split("@")[0]
        line = f"{key}: {s['cases']} cases, success {pct(s['success'])}, others kept {pct(s['others_kept'])}, " \
               f"collateral {num(s['collateral'], '{:.2f}')}"
        if op == "suppress":
            line += f", named object gone {pct(s['named_gone'])}, nothing in its place {pct(s['removed'])}"
        elif op == "translate":
            line += f", mean shift {num(s['mean_shift'])}, lost {pct(s['lost'])}"
        elif op == "scale":
            line += f", median area ratio {num(s['median_area_ratio'], '{:.2f}')}, lost {pct(s['lost'])}"
        elif op == "swap":
            line += f", colour changed {pct(s['colour_changed'])}, mean IoU {num(s['mean_iou'], '{:.2f}')}"
            if "control" in s:
                c = s["control"]
                line += f" (control, unbent B: success {pct(c['success'])}, IoU {num(c['mean_iou'], '{:.2f}')})"
        lines.append(line)
    return "\n".join(lines)


def timed(fn, *args, **kwargs):
    start = time.time()
    out = fn(*args, **kwargs)
    return out, time.time() - start
