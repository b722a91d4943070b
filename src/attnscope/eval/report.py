"""The eval report: markdown for people, plots for the where/when tables."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _heatmap(table, rows, cols, title, xlabel, ylabel, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(cols), 1.0 + 0.4 * len(rows)), dpi=120)
    im = ax.imshow(np.asarray(table), cmap="viridis", vmin=0, vmax=max(0.01, float(np.max(table))), aspect="auto")
    ax.set_xticks(range(len(cols)), cols, fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    for (r, c), v in np.ndenumerate(np.asarray(table)):
        ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w" if v < np.max(table) * 0.6 else "k")
    fig.colorbar(im, ax=ax, label="mIoU @ 0.4")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(result: dict, out: Path) -> Path:
    """Write report.md, result.json and plots into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result, indent=1))
    ls = result["layer_step"]
    bins = [f"{b[0]}-{b[-1]}" for b in ls["step_bins"]]
    _heatmap(ls["miou"], ls["layers"], bins, f"Where and when words localize ({result['recommended']['base']} maps)", "denoising steps",
             "layer", out / "miou_layer_step.png")
    lh = result["layer_head"]
    _heatmap(lh["miou"], lh["layers"], lh["heads"], "mIoU per layer × head (steps averaged)", "head", "layer",
             out / "miou_layer_head.png")
    est = result["estimators"]
    names = sorted(est, key=lambda n: -est[n]["miou"])
    fig, ax = plt.subplots(figsize=(6, 3), dpi=120)
    ax.bar(names, [est[n]["miou"] for n in names], color="#3b6ea5", label="threshold 0.4")
    ax.plot(names, [est[n]["miou_best_threshold"] for n in names], "o", color="#e07b39", label="best threshold")
    ax.set_ylabel("mIoU (test split)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "miou_estimators.png")
    plt.close(fig)
    (out / "report.md").write_text(render_markdown(result))
    return out / "report.md"


def render_markdown(result: dict) -> str:
    est = result["estimators"]
    rows = ["| estimator | mIoU @0.4 (latent grid) | mIoU @0.4 (pixels) | mIoU @best threshold | shape words | "
            "colour words | per-frame normalization: @0.4 | per-frame: @best threshold |",
            "|---|---|---|---|---|---|---|---|"]
    for name in sorted(est, key=lambda n: -est[n]["miou"]):
        e = est[name]
        k = e["miou_by_kind"]
        rows.append(f"| {name} | {e['miou']:.3f} | {e['miou_pixel']:.3f} | {e['miou_best_threshold']:.3f} "
                    f"(t={e['best_threshold']:.2f}) | {k.get('shape', float('nan')):.3f} | "
                    f"{k.get('colour', float('nan')):.3f} | {e['miou_frame']:.3f} | "
                    f"{e['miou_frame_best_threshold']:.3f} (t={e['frame_best_threshold']:.2f}) |")
    best = est["best-layers"]
    frame_name = max(est, key=lambda n: est[n]["miou_frame_best_threshold"])
    frame_best = est[frame_name]
    ls = result["layer_step"]
    table = np.asarray(ls["miou"])
    best_layer = ls["layers"][int(table.mean(axis=1).argmax())]
    worst_layer = ls["layers"][int(table.mean(axis=1).argmin())]
    bins = ls["step_bins"]
    best_bin = bins[int(table.mean(axis=0).argmax())]
    sink = result["padding_sink"]
    raw, ren = est["raw"]["miou"], est["renorm"]["miou"]
    words = [
        f"- **Look at layers {best['layers']}** and the steps {best['steps'][0]}–{best['steps'][-1]} "
        f"(fraction {best['step_fraction'][0]:.2f}–{best['step_fraction'][1]:.2f} of the schedule): that subset, "
        f"chosen on one half of the prompts, reaches mIoU {best['miou']:.2f} on the other half.",
        f"- The single best layer is {best_layer}, the weakest {worst_layer}; the best step range is "
        f"{best_bin[0]}–{best_bin[-1]}.",
        f"- **To see where a word is in each frame**, normalize per frame (`attnscope render --norm frame`): with "
        f"that, `{frame_name}` cut at {frame_best['frame_best_threshold']:.2f} of each frame's range reaches mIoU "
        f"{frame_best['miou_frame_best_threshold']:.2f} (against {est['raw']['miou']:.2f} for `raw` normalized "
        f"over the whole video and cut at 0.4).",
        f"- **The padding sink**: on average only {sink['prompt_mass_mean'] * 100:.0f} % of each video token's "
        f"attention goes to the real prompt tokens; the rest lands on Wan's zero padding. Renormalizing "
        f"(`renorm`) changes mIoU from {raw:.2f} (raw) to {ren:.2f}.",
        f"- Recommended aggregation (written to `recommended.json` beside this report; copied beside a model's "
        f"weights, it is the default view of `attnscope render` and of the viewer for that model's runs): estimator "
        f"`{result['recommended']['estimator']}`, "
        f"{'all layers' if result['recommended']['layers'] is None else 'layers ' + str(result['recommended']['layers'])}, steps "
        f"{result['recommended']['step_fraction'][0]:.2f}–{result['recommended']['step_fraction'][1]:.2f} of "
        f"the schedule.",
    ]
    s = result.get("settings", {})
    d = result.get("detection", {})
    return "\n".join([
        "# How faithful are the maps?", "",
        f"Model `{s.get('model')}`, {s.get('prompts')} held-out prompts (seed {s.get('seed')}), "
        f"{s.get('samples')} word samples ({s.get('test_samples')} in the test split); detector found "
        f"{d.get('objects_found')}/{d.get('objects')} requested objects. IoU against the object's mask in the "
        "generated video, maps binarized at 0.4 of their maximum (as DAAM); scores on the test split. The best "
        "thresholds are chosen on the selection split. Per-frame normalization scales each latent frame of the map "
        "to [0, 1] on its own before thresholding (a frame plays the part of DAAM's image).", "",
        *rows, "", "## For artists", "", *words, "",
        "![mIoU per layer and step](miou_layer_step.png)", "", "![mIoU per estimator](miou_estimators.png)", "",
        "![mIoU per layer and head](miou_layer_head.png)", "",
    ])
