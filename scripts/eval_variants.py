"""Score estimator variants on eval runs with the eval's own scoring (per-frame normalization, threshold chosen on
the selection split, test split reported): raw, self-prop, combinations, single layers and leave-one-layer-out.

    python scripts/eval_variants.py [PROMPTS] [SEED] [WORKDIR] [JSON]   (generates the runs it lacks, like eval)

scripts/archive/gpu_eval.sh runs it on an H200; docs/eval/variants_gpu_seed1.json is its output for 90 prompts, seed 1.
"""

import json
import sys
from pathlib import Path

import numpy as np

from attnscope.eval.evaluate import _scores, _summary
from attnscope.eval.run import collect

n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
workdir = sys.argv[3] if len(sys.argv) > 3 else "runs/eval"
out = sys.argv[4] if len(sys.argv) > 4 else None
samples, stats = collect("toy", n, seed, workdir, progress=False)
layers = samples[0].run.meta["layers"]
nsteps = samples[0].run.meta["num_steps"]


def arr(s, name):
    return getattr(s.run, name).sel(word=s.word).astype("float32")


cache = {}
for s in samples:
    key = (str(s.run.path), s.word)
    cache[key] = {"raw": arr(s, "maps").mean("head").compute(), "sp": arr(s, "self_prop").mean("head").compute()}

variants = {
    "raw": lambda c: c["raw"].mean(("step", "layer")).values,
    "self-prop": lambda c: c["sp"].mean(("step", "layer")).values,
    "geo": lambda c: np.sqrt(c["raw"].mean(("step", "layer")).values * c["sp"].mean(("step", "layer")).values),
    "sp^2": lambda c: c["sp"].mean(("step", "layer")).values ** 2,
    "sp-late": lambda c: c["sp"].isel(step=slice(nsteps // 2, None)).mean(("step", "layer")).values,
    "sp-early": lambda c: c["sp"].isel(step=slice(0, nsteps // 2)).mean(("step", "layer")).values,
    # fewer self-prop steps, for a cheaper capture (issue 14): the last 40 / 30 / 25 % of the steps, and every
    # second step of the late half
    "sp-last40": lambda c: c["sp"].isel(step=slice(round(nsteps * 0.6), None)).mean(("step", "layer")).values,
    "sp-last30": lambda c: c["sp"].isel(step=slice(round(nsteps * 0.7), None)).mean(("step", "layer")).values,
    "sp-last25": lambda c: c["sp"].isel(step=slice(round(nsteps * 0.75), None)).mean(("step", "layer")).values,
    "sp-late-odd": lambda c: c["sp"].isel(step=slice(nsteps // 2 + 1, None, 2)).mean(("step", "layer")).values,
}
for li in layers:
    variants[f"sp-L{li}"] = lambda c, li=li: c["sp"].sel(layer=li).mean("step").values
    variants[f"sp-noL{li}"] = lambda c, li=li: c["sp"].drop_sel(layer=li).mean(("step", "layer")).values
    variants[f"raw-L{li}"] = lambda c, li=li: c["raw"].sel(layer=li).mean("step").values

res = {}
for name, fn in variants.items():
    rows = [_scores(fn(cache[(str(s.run.path), s.word)]), s) for s in samples]
    summ = _summary(rows, samples)
    res[name] = {k: summ[k] for k in ("miou", "miou_best_threshold", "best_threshold", "miou_frame",
                                      "miou_frame_best_threshold", "frame_best_threshold", "miou_frame_by_kind",
                                      "miou_by_kind", "n")}
    sel = [r for r, s in zip(rows, samples, strict=True) if s.split == "select"]
    res[name]["select_frame_best"] = float(np.max(np.mean([r["curve_frame"] for r in sel], axis=0)))
    print(f"{name:10s} video@0.4 {summ['miou']:.3f} video@best {summ['miou_best_threshold']:.3f} "
          f"frame@best {summ['miou_frame_best_threshold']:.3f} (t={summ['frame_best_threshold']:.2f}) "
          f"select {res[name]['select_frame_best']:.3f} kinds {summ['miou_frame_by_kind']}", flush=True)
if out:
    Path(out).write_text(json.dumps({"stats": stats, "n_samples": len(samples), "variants": res}, indent=1))
