"""The eval report: markdown for people, plots for the where/when tables."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _cut(table_info: dict) -> str:
    """How a where/when table's maps were cut, for its colour bar: "mIoU, per-frame normalization, cut at 0.80"."""
    if table_info.get("norm") == "frame":
        return f"mIoU, per-frame normalization, cut at {table_info['threshold']:.2f}"
    return "mIoU @ 0.4"


def _heatmap(table, rows, cols, title, xlabel, ylabel, path: Path, label: str = "mIoU @ 0.4") -> None:
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(cols), 1.0 + 0.4 * len(rows)), dpi=120)
    im = ax.imshow(np.asarray(table), cmap="viridis", vmin=0, vmax=max(0.01, float(np.max(table))), aspect="auto")
    ax.set_xticks(range(len(cols)), cols, fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    for (r, c), v in np.ndenumerate(np.asarray(table)):
        ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w" if v < np.max(table) * 0.6 else "k")
    fig.colorbar(im, ax=ax, label=label)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(result: dict, out: Path) -> Path:
    """Write report.md, result.json and plots into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result, indent=1))
    ls = result["layer_step"]
    bins = [f"{b[0]}-{b[-1]}" for b in ls["step_bins"]]
    base = ls.get("base", result["recommended"]["base"])
    _heatmap(ls["miou"], ls["layers"], bins, f"Where and when words localize ({base} maps)", "denoising steps",
             "layer", out / "miou_layer_step.png", _cut(ls))
    lh = result["layer_head"]
    _heatmap(lh["miou"], lh["layers"], lh["heads"], f"mIoU per layer × head ({base}, steps averaged)", "head",
             "layer", out / "miou_layer_head.png", _cut(lh))
    est = result["estimators"]
    names = sorted(est, key=lambda n: -est[n]["miou_frame_best_threshold"])
    fig, ax = plt.subplots(figsize=(7, 3), dpi=120)
    ax.bar(names, [est[n]["miou_frame_best_threshold"] for n in names], color="#3b6ea5",
           label="per-frame normalization, selected threshold")
    ax.plot(names, [est[n]["miou"] for n in names], "o", color="#e07b39", label="whole video, threshold 0.4 (DAAM)")
    ax.set_ylabel("mIoU (test split)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="upper right")
    ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    fig.savefig(out / "miou_estimators.png")
    plt.close(fig)
    (out / "report.md").write_text(render_markdown(result))
    return out / "report.md"


def _paired(result: dict, name: str) -> str:
    p = result.get("paired_vs_raw", {}).get(name)
    if p is None or not p.get("n"):
        return "—"
    return f"{p['delta']:+.3f} [{p['ci95'][0]:+.3f}, {p['ci95'][1]:+.3f}]"


def render_markdown(result: dict) -> str:
    est = result["estimators"]
    rows = ["| estimator | **per-frame @selected threshold** | Δ vs raw [95 % CI] | shape words | colour words | "
            "mIoU @0.4 (latent grid) | mIoU @0.4 (pixels) | whole video @selected threshold | per-frame @0.4 |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name in sorted(est, key=lambda n: -est[n]["miou_frame_best_threshold"]):
        e = est[name]
        k = e.get("miou_frame_by_kind", {})
        rows.append(f"| {name} | **{e['miou_frame_best_threshold']:.3f}** (t={e['frame_best_threshold']:.2f}) | "
                    f"{_paired(result, name)} | {k.get('shape', float('nan')):.3f} | "
                    f"{k.get('colour', float('nan')):.3f} | {e['miou']:.3f} | {e['miou_pixel']:.3f} | "
                    f"{e['miou_best_threshold']:.3f} (t={e['best_threshold']:.2f}) | {e['miou_frame']:.3f} |")
    rec = result["recommended"]
    top = est[rec["estimator"]]
    raw = est["raw"]
    best = est["best-layers"]
    ls = result["layer_step"]
    table = np.asarray(ls["miou"])
    best_layer = ls["layers"][int(table.mean(axis=1).argmax())]
    worst_layer = ls["layers"][int(table.mean(axis=1).argmin())]
    bins = ls["step_bins"]
    best_bin = bins[int(table.mean(axis=0).argmax())]
    sink = result["padding_sink"]
    paired = result.get("paired_vs_raw", {}).get(rec["estimator"])
    versus = ""
    if paired and paired.get("n"):
        versus = (f" It beats `raw` on the same objects by {paired['delta']:+.3f} (95 % paired-bootstrap interval "
                  f"{paired['ci95'][0]:+.3f} to {paired['ci95'][1]:+.3f}; better on {paired['wins']} of "
                  f"{paired['n']} test samples, worse on {paired['losses']}).")
    where = ("all layers and steps" if rec["layers"] is None else
             f"layers {rec['layers']}, steps {rec['step_fraction'][0]:.2f}–{rec['step_fraction'][1]:.2f} of the schedule")
    words = [
        f"- **Use `{rec['estimator']}` and look at each frame on its own scale** (`attnscope render --norm frame`): "
        f"cut at {top['frame_best_threshold']:.2f} of each frame's range, its maps reach mIoU "
        f"{top['miou_frame_best_threshold']:.2f} against the objects (shape words "
        f"{top['miou_frame_by_kind'].get('shape', float('nan')):.2f}, colour words "
        f"{top['miou_frame_by_kind'].get('colour', float('nan')):.2f}); `raw` reaches "
        f"{raw['miou_frame_best_threshold']:.2f} that way and {raw['miou']:.2f} as most tools show it (normalized "
        f"over the whole video, cut at 0.4).{versus}",
        f"- **Where and when** (`{ls.get('base', rec['base'])}` maps, per layer and step range, on the selection "
        f"split): the single best layer is {best_layer}, the weakest {worst_layer}; the best step range is "
        f"{best_bin[0]}–{best_bin[-1]}. The best subset "
        f"chosen on the selection split (layers {best['layers']}, steps {best['steps'][0]}–{best['steps'][-1]}) "
        f"reaches {best['miou_frame_best_threshold']:.2f} on the test split"
        + (", so it is recommended." if rec["layers"] is not None else ", so the mean over everything stays the view."),
        f"- **The padding sink**: on average only {sink['prompt_mass_mean'] * 100:.0f} % of each video token's "
        f"attention goes to the real prompt tokens; the rest lands on Wan's zero padding. Dividing it out "
        f"(`renorm`) changes mIoU from {raw['miou']:.2f} (raw) to {est['renorm']['miou']:.2f} at 0.4 "
        f"({raw['miou_frame_best_threshold']:.2f} to {est['renorm']['miou_frame_best_threshold']:.2f} per frame): "
        "renormalizing inflates the background's tiny word probabilities, so here the sink scales how much a "
        "word is attended more than it moves where.",
        f"- Recommended view (written to `recommended.json` beside this report; copied beside a model's weights, "
        f"it is the default of `attnscope render` and of the viewer for that model's runs): estimator "
        f"`{rec['estimator']}`, {where}, normalized per frame.",
    ]
    s = result.get("settings", {})
    d = result.get("detection", {})
    return "\n".join([
        "# How faithful are the maps?", "",
        f"Model `{s.get('model')}`, {s.get('prompts')} held-out prompts (seed {s.get('seed')}), "
        f"{s.get('samples')} word samples ({s.get('test_samples')} in the test split); detector found "
        f"{d.get('objects_found')}/{d.get('objects')} requested objects. IoU against the object's mask in the "
        "generated video; scores on the test split. **Headline**: each latent frame of the map normalized to "
        "[0, 1] on its own (a frame plays the part of DAAM's image) and cut at the threshold chosen on the "
        "selection split. Also shown: DAAM's fixed cut at 0.4 of the map normalized over the whole video. "
        "Δ vs raw: the headline IoU minus raw's on the same test samples, with a 95 % paired-bootstrap interval.",
        "", *rows, "", "## For artists", "", *words, "",
        "![mIoU per layer and step](miou_layer_step.png)", "", "![mIoU per estimator](miou_estimators.png)", "",
        "![mIoU per layer and head](miou_layer_head.png)", "",
    ])
