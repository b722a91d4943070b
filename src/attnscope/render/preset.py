"""The "recommended" aggregation: which estimator, layers and steps show a model's words best.

Why a preset and not a fixed default: averaging every step, layer and head (what most tools show) blurs the
map with layers and early steps that do not localize. ``attnscope eval`` measures, against known object masks,
which estimator and which layer/step subset localize best; it writes ``recommended.json``. A model folder that
holds one (the shipped toy model does) gets it as the renderer's and viewer's default. Models nobody measured
get the plain mean, and the preset says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SelectionError
from ..store import Run
from .selection import missing_source

PRESET_FILE = "recommended.json"
PRESETS = ("recommended", "none")


@dataclass(frozen=True)
class Preset:
    """Defaults for a selection: ``layers`` None means all; ``step_fraction`` is a part of the denoising, 0..1;
    ``norm`` the colour normalization the estimator was measured with (``frame``: each frame by its own range),
    ``threshold`` the cut of that normalized map that matched the objects best (None when never measured)."""

    estimator: str = "raw"
    layers: tuple[int, ...] | None = None
    step_fraction: tuple[float, float] = (0.0, 1.0)
    source: str = "plain mean over all steps, layers and heads"
    norm: str = "global"
    threshold: float | None = None

    def steps(self, steps: list[int], num_steps: int) -> list[int]:
        """The finished steps inside ``step_fraction`` of a ``num_steps`` run (at least the last one)."""
        lo, hi = (round(f * num_steps) for f in self.step_fraction)
        chosen = [s for s in steps if lo <= s < hi]
        return chosen or steps[-1:]

    def selection(self, run: Run, step: Any = None, layer: Any = None, estimator: str | None = None) -> dict:
        """step/layer/estimator for ``select``: what the caller gave wins; what it left as None comes from here."""
        est = estimator or self.estimator
        if estimator is None and missing_source(run, est):
            est = "raw"  # the preset's layers and steps still help; the run simply lacks the value vectors' norms
        if step is None:
            step = "mean" if self.step_fraction == (0.0, 1.0) else self.steps(run.steps_done, run.meta["num_steps"])
        if layer is None:
            layers = [x for x in (self.layers or ()) if x in run.meta["layers"]]
            layer = layers or "mean"
        return {"step": step, "layer": layer, "estimator": est}


NO_PRESET = Preset()


def load_preset(path: str | Path) -> Preset:
    """A preset from a ``recommended.json`` written by ``attnscope eval``."""
    data = json.loads(Path(path).read_text())
    estimator = data.get("base", data["estimator"]) if data["estimator"] == "best-layers" else data["estimator"]
    return Preset(estimator=estimator, layers=tuple(data["layers"]) if data.get("layers") else None,
                  step_fraction=tuple(data.get("step_fraction", (0.0, 1.0))),
                  source=data.get("source", f"measured by attnscope eval ({path})"),
                  norm=data.get("norm", "global"), threshold=data.get("threshold"))


def save_preset(result: dict, path: str | Path) -> Path:
    """Write the recommendation of an ``attnscope eval`` result as a ``recommended.json`` preset."""
    rec, scores = result["recommended"], result["estimators"]
    estimator = rec["base"] if rec["estimator"] == "best-layers" else rec["estimator"]
    lo, hi = rec["step_fraction"]
    layers = "all layers" if rec["layers"] is None else f"layers {rec['layers']}"
    metric = rec.get("metric", "miou")
    norm = rec.get("norm", "global")
    how = "normalized per frame" if norm == "frame" else "normalized over the video"
    source = (f"attnscope eval on {result['settings']['prompts']} held-out prompts: {estimator} over {layers}, "
              f"steps {lo:.2f}-{hi:.2f} of the denoising, {how} (mIoU {scores[rec['estimator']][metric]:.2f}"
              f" vs {scores['raw'][metric]:.2f} for the plain raw mean)")
    data = {"estimator": estimator, "layers": rec["layers"], "step_fraction": [lo, hi], "norm": norm,
            "threshold": rec.get("threshold"), "source": source}
    Path(path).write_text(json.dumps(data, indent=1) + "\n")
    return Path(path)


def _model_folder(model_id: str) -> Path | None:
    if model_id == "toy":
        from ..toy.model import TOY_WEIGHTS_DIR

        return TOY_WEIGHTS_DIR
    folder = Path(model_id)
    return folder if folder.is_dir() else None


def model_preset(model_id: str | None) -> Preset:
    """The measured preset of the model loaded as ``model_id``, or the plain mean when its folder holds no
    ``recommended.json`` (or the model was built in code)."""
    folder = _model_folder(str(model_id or ""))
    if folder is not None and (folder / PRESET_FILE).exists():
        return load_preset(folder / PRESET_FILE)
    return NO_PRESET


def recommended(run: Run) -> Preset:
    """The run's model's measured preset (:func:`model_preset`)."""
    return model_preset(run.meta.get("model", {}).get("id"))


def preset_steps(model_id: str | None, num_steps: int) -> str | list[int]:
    """The steps of a ``num_steps`` generation that the model's recommended view reads: "all", or the indices in
    its ``step_fraction``. A capture that keeps an expensive array only there (self-prop) loses nothing the
    recommended view shows."""
    preset = model_preset(model_id)
    if preset.step_fraction == (0.0, 1.0):
        return "all"
    return preset.steps(list(range(num_steps)), num_steps)


def preset_for(run: Run, name: str) -> Preset:
    """``recommended`` (the model's measured preset) or ``none`` (plain mean)."""
    if name not in PRESETS:
        raise SelectionError(f"unknown preset '{name}'; choose one of {', '.join(PRESETS)}")
    return recommended(run) if name == "recommended" else NO_PRESET
