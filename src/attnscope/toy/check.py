"""`attnscope toy check`: generate held-out prompts with a toy pipeline and score the videos with the detector.

Prompts come from world seeds at or above `EVAL_SEED_BASE` (10^9), which training never uses; prompt i has one
object when i is even and two when odd. Per requested object: "present" = a detection of its colour and
shape; "motion" = the detection of its colour moves as asked. Per video: "clean" = no detection of an
unrequested colour and at most one per requested colour.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .detect import Detection, detect_objects
from .model import TOY_DEFAULTS
from .world import EVAL_SEED_BASE, ToyObject, caption, scene_for_seed


@dataclass
class PromptResult:
    prompt: str
    seed: int
    objects: list[dict] = field(default_factory=list)  # colour, shape, motion, present, motion_ok, seen
    unrequested: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.unrequested


@dataclass
class CheckReport:
    results: list[PromptResult]
    seconds: float
    settings: dict

    def _objects(self) -> list[dict]:
        return [o for r in self.results for o in r.objects]

    @property
    def present_rate(self) -> float:
        return float(np.mean([o["present"] for o in self._objects()]))

    @property
    def motion_rate(self) -> float:
        return float(np.mean([o["motion_ok"] for o in self._objects()]))

    @property
    def clean_rate(self) -> float:
        return float(np.mean([r.clean for r in self.results]))

    def totals(self) -> dict:
        return {"prompts": len(self.results), "objects": len(self._objects()), "present": self.present_rate,
                "motion": self.motion_rate, "clean": self.clean_rate, "seconds": round(self.seconds, 1),
                **self.settings}


def check_prompts(n: int, seed: int = 0) -> list[tuple[str, int]]:
    """(caption, world seed) of held-out prompts: half with one object, half with two."""
    out = []
    for i in range(n):
        world_seed = EVAL_SEED_BASE + seed * 100_000 + i
        out.append((caption(scene_for_seed(world_seed, n_objects=1 + i % 2)), world_seed))
    return out


def score(prompt: str, seed: int, requested: list[ToyObject], found: list[Detection]) -> PromptResult:
    result = PromptResult(prompt, seed)
    colours = {o.colour for o in requested}
    for obj in requested:
        same_colour = [d for d in found if d.colour == obj.colour]
        best = next((d for d in same_colour if d.shape == obj.shape), same_colour[0] if same_colour else None)
        result.objects.append({
            "colour": obj.colour, "shape": obj.shape, "motion": obj.motion,
            "present": best is not None and best.shape == obj.shape,
            "motion_ok": best is not None and best.motion == obj.motion,
            "seen": None if best is None else f"{best.colour} {best.shape} {best.motion}",
        })
    for colour in {d.colour for d in found}:
        count = sum(d.colour == colour for d in found)
        if colour not in colours:
            result.unrequested += [f"{d.colour} {d.shape}" for d in found if d.colour == colour]
        elif count > 1:
            result.unrequested.append(f"{count - 1} extra {colour}")
    return result


def generate_video(pipe, prompt: str, seed: int, steps: int, guidance: float) -> np.ndarray:
    """uint8 [T, H, W, 3] from the pipeline at the toy's size, seeded with a CPU generator."""
    out = pipe(prompt=prompt, num_frames=TOY_DEFAULTS["num_frames"], height=TOY_DEFAULTS["height"],
               width=TOY_DEFAULTS["width"], num_inference_steps=steps, guidance_scale=guidance,
               generator=torch.Generator().manual_seed(seed), output_type="np")
    return (np.clip(out.frames[0], 0.0, 1.0) * 255.0).round().astype(np.uint8)


def run_check(pipe, n_prompts: int = 50, seed: int = 0, steps: int | None = None, guidance: float | None = None,
              sheet: Path | None = None, sheet_rows: int = 12,
              on_result: Callable[[PromptResult], None] | None = None, shift: float | None = None) -> CheckReport:
    """Generate and score ``n_prompts`` held-out prompts; optionally save a contact sheet PNG of the first few.

    ``on_result`` sees each prompt's result as soon as it is scored (progress for long checks). ``shift``
    replaces the scheduler's flow shift (how much of the schedule is spent at high noise, where the layout is
    decided) for this check, to compare samplers on the same prompts.
    """
    steps = steps or TOY_DEFAULTS["num_inference_steps"]
    guidance = TOY_DEFAULTS["guidance_scale"] if guidance is None else guidance
    if shift is not None:
        pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, flow_shift=shift)
    pipe.set_progress_bar_config(disable=True)
    start = time.time()
    results, rows = [], []
    for prompt, world_seed in check_prompts(n_prompts, seed):
        video = generate_video(pipe, prompt, world_seed, steps, guidance)
        results.append(score(prompt, world_seed, scene_for_seed(world_seed, n_objects=prompt.count(" and ") + 1),
                             detect_objects(video)))
        if on_result is not None:
            on_result(results[-1])
        if sheet is not None and len(rows) < sheet_rows:
            rows.append(_sheet_row(video, prompt))
    if sheet is not None and rows:
        from PIL import Image

        Image.fromarray(np.concatenate(rows, axis=0)).save(sheet)
    return CheckReport(results, time.time() - start, {"steps": steps, "guidance": guidance, "seed": seed,
                                                     "shift": pipe.scheduler.config.flow_shift})


def _sheet_row(video: np.ndarray, prompt: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    strip = np.concatenate([video[t] for t in (0, 4, 8, 12, 16) if t < len(video)], axis=1)  # [H, 5W, 3]
    img = Image.fromarray(np.pad(strip, ((16, 2), (0, 0), (0, 0))))
    ImageDraw.Draw(img).text((4, 2), prompt, fill=(255, 255, 255))
    return np.asarray(img)


def format_result(r: PromptResult) -> str:
    marks = "; ".join(
        f"{o['colour']} {o['shape']} {'ok' if o['present'] else 'MISSING'}"
        f"/{'ok' if o['motion_ok'] else 'motion-wrong'} (seen: {o['seen']})" for o in r.objects)
    extra = f"; unrequested: {', '.join(r.unrequested)}" if r.unrequested else ""
    return f"[{r.seed}] {r.prompt}: {marks}{extra}"


def format_report(report: CheckReport, per_prompt: bool = True) -> str:
    lines = [format_result(r) for r in report.results] if per_prompt else []
    t = report.totals()
    lines.append(
        f"prompts {t['prompts']}, objects {t['objects']}: colour+shape present {t['present']:.0%}, "
        f"motion right {t['motion']:.0%}, videos without unrequested objects {t['clean']:.0%} "
        f"({t['steps']} steps, CFG {t['guidance']}, shift {t['shift']}, {t['seconds']} s)")
    return "\n".join(lines)
