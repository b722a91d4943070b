"""Score estimators against object masks: overall, per word kind, per layer × step, per layer × head.

Selection happens on one split and scores are reported on the other, so ``best-layers`` and the best threshold
are not judged on the data that chose them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product

import numpy as np

from ..render.selection import missing_source
from ..store import Run
from . import estimators as est
from .metrics import (
    DAAM_INDEX,
    DAAM_THRESHOLD,
    THRESHOLDS,
    iou_curve,
    latent_mask,
    pixel_heat,
    thresholded_iou,
)

STEP_BINS = 4
# The headline metric, which picks the recommended view: each latent frame normalized on its own (a frame plays
# the part of DAAM's image) and cut at the threshold chosen on the selection split, scored on the test split.
HEADLINE = "miou_frame_best_threshold"
BOOTSTRAP = 2000  # resamples for the paired confidence interval against raw
FULL_SIZE_PX = 1000  # median px per frame; the smallest toy objects (radius 30) cover 1,532 (triangle) to 2,828 (circle)


@dataclass
class Sample:
    """One captured word with the ground-truth pixel mask [T, H, W] of the object it names."""

    run: Run
    word: str
    kind: str  # "shape" or "colour"
    mask: np.ndarray
    split: str  # "select" or "test"
    grid_mask: np.ndarray = field(init=False)

    @property
    def full_size(self) -> bool:
        """Whether the model drew the object at about its size: a tiny or fading blob judges the model, not the
        map (with a 3-token mask, IoU is near 0 however good the map is)."""
        area = self.mask.sum(axis=(1, 2))
        return bool(area.any() and np.median(area[area > 0]) >= FULL_SIZE_PX)

    def __post_init__(self) -> None:
        g = self.run.meta["grid"]
        self.grid_mask = latent_mask(self.mask, (g["frames"], g["height"], g["width"]),
                                     temporal=self.run.meta.get("vae", {}).get("temporal", 4))


def step_bins(num_steps: int, bins: int = STEP_BINS) -> list[list[int]]:
    """Split the denoising steps into ``bins`` contiguous ranges (early … late)."""
    return [list(map(int, b)) for b in np.array_split(np.arange(num_steps), min(bins, num_steps))]


def _scores(heat: np.ndarray, sample: Sample) -> dict:
    pixel = pixel_heat(heat, sample.mask.shape)
    curve, curve_frame = iou_curve(heat, sample.grid_mask), iou_curve(heat, sample.grid_mask, per="frame")
    return {
        "iou": float(curve[DAAM_INDEX]),
        "iou_pixel": thresholded_iou(pixel, sample.mask),
        "curve": curve,
        "iou_frame": float(curve_frame[DAAM_INDEX]),
        "curve_frame": curve_frame,
    }


def _best_threshold(rows: list[dict], select: list[dict], key: str) -> int:
    """Index of the threshold with the best mean IoU on the selection split (all rows when it is empty)."""
    return int(np.argmax(np.mean([r[key] for r in select or rows], axis=0)))


def paired_vs(rows: list[dict], base: list[dict], samples: list[Sample], seed: int = 0) -> dict:
    """Per test sample, the headline IoU of ``rows`` minus that of ``base`` (each at its own threshold chosen on
    the selection split): mean, a 95 % paired-bootstrap interval, and wins / losses / ties. Why paired: both
    estimators are scored on the same maps' objects, so the per-sample difference cancels how hard each object
    is, and the interval is much tighter than two separate ones."""
    select = [r for r, s in zip(rows, samples, strict=True) if s.split == "select"]
    select_base = [r for r, s in zip(base, samples, strict=True) if s.split == "select"]
    t, t_base = _best_threshold(rows, select, "curve_frame"), _best_threshold(base, select_base, "curve_frame")
    diff = np.array([r["curve_frame"][t] - b["curve_frame"][t_base]
                     for r, b, s in zip(rows, base, samples, strict=True) if s.split == "test"])
    if diff.size == 0:
        return {"delta": float("nan"), "ci95": [float("nan")] * 2, "wins": 0, "losses": 0, "ties": 0, "n": 0}
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, size=(BOOTSTRAP, diff.size))].mean(axis=1)
    return {"delta": float(diff.mean()), "ci95": [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))],
            "wins": int((diff > 1e-9).sum()), "losses": int((diff < -1e-9).sum()),
            "ties": int((np.abs(diff) <= 1e-9).sum()), "n": int(diff.size)}


def _summary(rows: list[dict], samples: list[Sample], best_t: int | None = None) -> dict:
    test = [r for r, s in zip(rows, samples, strict=False) if s.split == "test"]
    select = [r for r, s in zip(rows, samples, strict=False) if s.split == "select"]
    if best_t is None:
        best_t = _best_threshold(rows, select, "curve")
    frame_t = _best_threshold(rows, select, "curve_frame")
    kinds, frame_kinds = {}, {}
    for kind in ("shape", "colour"):
        picked = [r for r, s in zip(rows, samples, strict=False) if s.split == "test" and s.kind == kind]
        if picked:
            kinds[kind] = float(np.mean([r["iou"] for r in picked]))
            frame_kinds[kind] = float(np.mean([r["curve_frame"][frame_t] for r in picked]))
    full = [r for r, s in zip(rows, samples, strict=False) if s.split == "test" and s.full_size]
    return {
        "miou": float(np.mean([r["iou"] for r in test])),
        "miou_full_size": float(np.mean([r["iou"] for r in full])) if full else float("nan"),
        "n_full_size": len(full),
        "miou_pixel": float(np.mean([r["iou_pixel"] for r in test])),
        "miou_best_threshold": float(np.mean([r["curve"][best_t] for r in test])),
        "best_threshold": float(THRESHOLDS[best_t]),
        "miou_by_kind": kinds,
        "miou_frame": float(np.mean([r["iou_frame"] for r in test])),
        "miou_frame_best_threshold": float(np.mean([r["curve_frame"][frame_t] for r in test])),
        "frame_best_threshold": float(THRESHOLDS[frame_t]),
        "miou_frame_by_kind": frame_kinds,
        "n": len(test),
    }


def layer_step_table(samples: list[Sample], base: str = "raw", threshold: float = DAAM_THRESHOLD,
                     per: str = "video") -> tuple[np.ndarray, list[int], list[list[int]]]:
    """mIoU per (layer, step bin) of the ``base`` estimator on the selection split, its maps normalized ``per``
    video or frame and cut at ``threshold``."""
    select = [s for s in samples if s.split == "select"] or samples
    layers = list(select[0].run.meta["layers"])
    bins = step_bins(select[0].run.meta["num_steps"])
    table = np.zeros((len(layers), len(bins)))
    for s in select:
        maps = est.per_layer_step(s.run, s.word, base)  # (layer, step, frame, y, x)
        for li, b in product(range(len(layers)), range(len(bins))):
            heat = maps.isel(layer=li).sel(step=bins[b]).mean("step").values
            table[li, b] += thresholded_iou(heat, s.grid_mask, threshold, per)
    return table / len(select), layers, bins


def layer_head_table(samples: list[Sample], base: str = "raw", threshold: float = DAAM_THRESHOLD,
                     per: str = "video") -> tuple[np.ndarray, list[int], list]:
    """mIoU per (layer, head), steps averaged, on the selection split (normalized and cut as in
    :func:`layer_step_table`)."""
    select = [s for s in samples if s.split == "select"] or samples
    layers, heads = list(select[0].run.meta["layers"]), list(select[0].run.meta["heads"])
    table = np.zeros((len(layers), len(heads)))
    for s in select:
        maps = est.per_head(s.run, s.word, base).values  # [L, H, F, Y, X]
        for li, hi in product(range(len(layers)), range(len(heads))):
            table[li, hi] += thresholded_iou(maps[li, hi], s.grid_mask, threshold, per)
    return table / len(select), layers, heads


def choose_best_layers(table: np.ndarray, layers: list[int], bins: list[list[int]]) -> dict:
    """The top-k layers and the contiguous step range that maximize mean IoU of the table's cells."""
    order = np.argsort(-table.mean(axis=1))
    best = {"score": -1.0}
    for k in range(1, len(layers) + 1):
        rows = order[:k]
        for a in range(len(bins)):
            for b in range(a, len(bins)):
                score = table[np.ix_(rows, range(a, b + 1))].mean()
                if score > best["score"] + 1e-9:
                    best = {"score": float(score), "layers": sorted(int(layers[r]) for r in rows),
                            "steps": [int(x) for bn in bins[a:b + 1] for x in bn],
                            "step_fraction": [a / len(bins), (b + 1) / len(bins)]}
    return best


WINDOW_STARTS = (0.0, 0.25, 0.5, 0.6, 0.75)  # late windows [start, 1) of the denoising, for step_windows
WINDOW_TOLERANCE = 0.005  # a window within this of every step's selection score is "as good" (cheapest_window)


def step_windows(samples: list[Sample], base: str, every_step: list[dict] | None = None) -> list[dict]:
    """``base`` over every layer and the steps from each of ``WINDOW_STARTS`` to the end, scored like the table;
    ``every_step``: the rows ``base`` already scored over every step (the first window), reused.

    Why: an estimator that costs per captured step (self-prop) is worth capturing only on the steps the view
    reads; if a late window scores as well as every step, capture can skip the rest without changing the result.
    """
    fn = est.ESTIMATORS[base]
    num_steps = samples[0].run.meta["num_steps"]
    out: list[dict] = []
    for start in WINDOW_STARTS:
        steps = list(range(min(int(round(start * num_steps)), num_steps - 1), num_steps))
        if out and out[-1]["steps"][0] == steps[0]:
            continue  # a short run: this window is the previous one
        if steps[0] == 0 and every_step is not None:
            rows = every_step
        else:
            rows = [_scores(fn(s.run, s.word, steps=steps), s) for s in samples]
        summary = _summary(rows, samples)
        selection, threshold = _selection_score(rows, samples)
        out.append({"step_fraction": [start, 1.0], "steps": [steps[0], steps[-1]], "selection": selection,
                    "threshold": threshold, HEADLINE: summary[HEADLINE]})
    return out


def cheapest_window(windows: list[dict]) -> dict:
    """The shortest late window whose selection-split score is within ``WINDOW_TOLERANCE`` of every step's.

    Why: a capture keeps self-prop only at the steps the recommended view reads, so a window that scores as
    well as every step is the same view at a fraction of the cost (chosen on the selection split only).
    """
    full = windows[0]["selection"]
    good = [w for w in windows if w["selection"] >= full - WINDOW_TOLERANCE]
    return max(good, key=lambda w: w["step_fraction"][0])


def _selection_score(rows: list[dict], samples: list[Sample]) -> tuple[float, float]:
    """(headline mIoU, threshold) on the selection split alone: what may choose, without seeing the test split."""
    select = [r for r, s in zip(rows, samples, strict=True) if s.split == "select"] or rows
    curve = np.mean([r["curve_frame"] for r in select], axis=0)
    return float(curve.max()), float(THRESHOLDS[int(curve.argmax())])


def evaluate(samples: list[Sample], base_for_best: str | None = None) -> dict:
    """Every estimator's scores, the where/when tables, and the recommended aggregation.

    The where/when tables and ``best-layers`` use ``base_for_best``: by default the estimator that scores best
    on the selection split under the headline metric, normalized per frame and cut at its selected threshold.
    """
    results: dict = {"estimators": {}}
    all_rows: dict[str, list[dict]] = {}
    for name, fn in est.ESTIMATORS.items():
        if missing_source(samples[0].run, name):
            continue
        all_rows[name] = [_scores(fn(s.run, s.word), s) for s in samples]
        results["estimators"][name] = _summary(all_rows[name], samples)
    chosen = {name: _selection_score(rows, samples) for name, rows in all_rows.items()}
    if base_for_best is None:
        base_for_best = max(chosen, key=lambda name: chosen[name][0])
    cut = chosen[base_for_best][1]
    table, layers, bins = layer_step_table(samples, base_for_best, cut, per="frame")
    best = choose_best_layers(table, layers, bins)
    fn = est.ESTIMATORS[base_for_best]
    rows = [_scores(fn(s.run, s.word, layers=best["layers"], steps=best["steps"]), s) for s in samples]
    all_rows["best-layers"] = rows
    results["estimators"]["best-layers"] = {**_summary(rows, samples), "layers": best["layers"],
                                            "steps": best["steps"], "step_fraction": best["step_fraction"],
                                            "base": base_for_best}
    results["paired_vs_raw"] = {name: paired_vs(r, all_rows["raw"], samples) for name, r in all_rows.items()
                                if name != "raw"}
    head_table, _, heads = layer_head_table(samples, base_for_best, cut, per="frame")
    where = {"base": base_for_best, "norm": "frame", "threshold": cut}
    results["layer_step"] = {"layers": layers, "step_bins": bins, "miou": table.round(4).tolist(), **where}
    results["layer_head"] = {"layers": layers, "heads": heads, "miou": head_table.round(4).tolist(), **where}
    mass = [float(s.run.prompt_mass.astype("float32").mean().values) for s in samples[:: max(1, len(samples) // 10)]]
    per_layer_mass = samples[0].run.prompt_mass.astype("float32").mean(("step", "head", "frame", "y", "x")).values
    results["padding_sink"] = {"prompt_mass_mean": float(np.mean(mass)),
                               "prompt_mass_per_layer": per_layer_mass.round(4).tolist()}
    # The recommendation is the estimator that scored best on the headline metric, with the layers and steps it
    # was scored on (the best-layers subset only when that subset won: a subset that lost must not be the
    # default), the per-frame normalization that metric uses, and the threshold chosen for it; over every step
    # or the shortest late window that scores as well (cheapest_window), with the threshold chosen for that window
    # on the selection split.
    top = max(results["estimators"], key=lambda name: results["estimators"][name][HEADLINE])
    subset = top == "best-layers"
    windows = step_windows(samples, base_for_best, all_rows.get(base_for_best))
    results["step_windows"] = {"base": base_for_best, "windows": windows}
    every_step = {"step_fraction": [0.0, 1.0], "threshold": results["estimators"][top]["frame_best_threshold"]}
    window = cheapest_window(windows) if top == base_for_best else every_step
    results["recommended"] = {"estimator": top, "layers": best["layers"] if subset else None,
                              "step_fraction": best["step_fraction"] if subset else window["step_fraction"],
                              "base": base_for_best, "norm": "frame", "threshold": window["threshold"],
                              "metric": HEADLINE}
    results["threshold"] = DAAM_THRESHOLD
    return results
