"""Network-bending experiments on the toy model, measured with the toy detector (issue 04).

For each experiment: the baseline and the bent run at the same seed, and what the detector sees (objects,
centroid shift of the bent word's object). Writes a markdown table and one comparison strip per experiment.
Usage: python scripts/bend_experiments.py OUT_DIR [--seeds 4]   (ONLY=substring runs matching experiments)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import attnscope
from attnscope.toy.detect import detect_objects
from attnscope.video import read_mp4

PROMPT = "a red circle moving right and a white square standing still"
EXPERIMENTS = {
    "suppress circle": [{"target": "attention", "op": "reweight", "word": "circle", "scale": 0.0}],
    "suppress red": [{"target": "attention", "op": "reweight", "word": "red", "scale": 0.0}],
    "amplify circle x3": [{"target": "attention", "op": "reweight", "word": "circle", "scale": 3.0}],
    "translate circle dx=+0.3 (early steps)": [{"target": "attention", "op": "translate", "word": "circle",
                                                "dx": 0.3, "dy": 0.0, "steps": [0.0, 0.3]}],
    "rotate circle 90deg (early steps)": [{"target": "attention", "op": "rotate", "word": "circle",
                                           "degrees": 90, "steps": [0.0, 0.3]}],
    "activation rotate 90deg, layer 2, all channels": [{"target": "activation", "op": "rotate", "degrees": 90,
                                                         "layers": [2]}],
    "head ablate: all heads of layers 0-3": [{"target": "head", "op": "ablate", "layers": [0, 1, 2, 3],
                                              "heads": "0-7"}],
}


def centroid(video: np.ndarray, colour: str) -> np.ndarray | None:
    found = [d for d in detect_objects(video) if d.colour == colour]
    return np.nanmean(found[0].centroids, axis=0) if found else None


def summary(video: np.ndarray) -> str:
    return ", ".join(f"{d.colour} {d.shape} {d.motion}" for d in detect_objects(video)) or "nothing"


def strip(base: np.ndarray, bent: np.ndarray, title: str) -> Image.Image:
    frames = [0, 8, 16]
    row = np.concatenate([np.concatenate([base[t], bent[t]], axis=0) for t in frames], axis=1)
    img = Image.fromarray(np.pad(row, ((18, 0), (0, 0), (0, 0))))
    ImageDraw.Draw(img).text((4, 3), f"{title}   (top: baseline, bottom: bent; frames 0, 8, 16)", fill=(255, 255, 255))
    return img


def main(out: Path, seeds: int) -> None:
    pipe = attnscope.load_pipeline("toy")
    pipe.set_progress_bar_config(disable=True)
    rows, results = [], {}
    only = os.environ.get("ONLY")
    for seed in range(seeds):  # made afresh: a baseline left by another model or prompt would compare nothing
        attnscope.generate(pipe, PROMPT, out / f"base_s{seed}", seed=seed, words=["circle", "square", "red"],
                           quiet=True, overwrite=True)
    for name, recipe in EXPERIMENTS.items():
        if only and only not in name:
            continue
        stats = {"objects": [], "circle_shift_px": [], "circle_present": 0}
        for seed in range(seeds):
            base_run = out / f"base_s{seed}"
            slug = "".join(c if c.isalnum() else "-" for c in name)[:40]
            run = attnscope.generate(pipe, PROMPT, out / f"{slug}_s{seed}", seed=seed, bends=recipe, quiet=True,
                                     words=["circle", "square", "red"], overwrite=True)
            base, bent = read_mp4(base_run / "video.mp4"), read_mp4(run.video_path)
            c0, c1 = centroid(base, "red"), centroid(bent, "red")
            stats["circle_present"] += c1 is not None
            if c0 is not None and c1 is not None:
                stats["circle_shift_px"].append((c1 - c0).round(1).tolist())
            stats["objects"].append(summary(bent))
            if seed == 0:
                strip(base, bent, name).save(out / f"{slug}.png")
        results[name] = stats
        shifts = np.array(stats["circle_shift_px"]) if stats["circle_shift_px"] else np.zeros((0, 2))
        mean_shift = f"({shifts[:, 0].mean():+.0f}, {shifts[:, 1].mean():+.0f}) px" if len(shifts) else "—"
        rows.append(f"| {name} | {stats['circle_present']}/{seeds} | {mean_shift} | {stats['objects'][0]} |")
        print(rows[-1], flush=True)
    table = ["| bend | red object still there | mean centroid shift of the red object (x, y) | detector, seed 0 |",
             "|---|---|---|---|", *rows]
    (out / "bends.md").write_text("\n".join(table) + "\n")
    (out / "bends.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[3]) if len(sys.argv) > 3 else 4)
