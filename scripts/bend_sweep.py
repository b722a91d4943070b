"""Where and when does each bend work on the toy model? One tuning split, many (steps, layers, target) variants.

Usage: python scripts/bend_sweep.py OUT.json --prompts 12 --split 1 [--device cuda] [--only suppress,translate]
The tuning split (1) is not the split `attnscope bend-eval` reports on (0). Variants are named op@label; each
runs on every prompt against the same baseline. Prints one summary line per variant; writes the full report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import types
from pathlib import Path

try:
    import av  # noqa: F401
except ImportError:  # the device machine lacks PyAV; no mp4 is written here
    import importlib.machinery

    _av = types.ModuleType("av")
    _av.__spec__ = importlib.machinery.ModuleSpec("av", None)
    sys.modules["av"] = _av

import attnscope  # noqa: E402
from attnscope.bend.evaluate import format_summary, run_bend_eval, summarize, write_json  # noqa: E402

ALL = [0.0, 1.0]
VARIANTS: dict[str, dict] = {
    # round 2 (round 1: phrase targets; see docs/bend/bend_sweep.json): the object's whole clause
    "suppress@clause-eos-all": {"steps": ALL, "layers": "0-7"},
    "suppress@clause-all": {"eos": False, "steps": ALL, "layers": "0-7"},
    "suppress@clause-eos-real-all": {"renormalize": "real", "steps": ALL, "layers": "0-7"},
    "translate@phrase-0.5": {"clause": False, "eos": False, "steps": [0.0, 0.5], "layers": "0-7"},
    "translate@clause-0.3": {"eos": False, "steps": [0.0, 0.3], "layers": "0-7"},
    "translate@clause-0.5": {"eos": False, "steps": [0.0, 0.5], "layers": "0-7"},
    "translate@clause-all": {"eos": False, "steps": ALL, "layers": "0-7"},
    "translate@clause-eos-0.5": {"steps": [0.0, 0.5], "layers": "0-7"},
    "scale@clause-0.5": {"eos": False, "steps": [0.0, 0.5], "layers": "0-7"},
    "scale@clause-all": {"eos": False, "steps": ALL, "layers": "0-7"},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--prompts", type=int, default=12)
    ap.add_argument("--split", type=int, default=1)
    ap.add_argument("--device", default=None)
    ap.add_argument("--only", default="")
    ap.add_argument("--variants", default="", help="JSON file of extra variants (name -> fields)")
    args = ap.parse_args()
    variants = dict(VARIANTS)
    if args.variants:
        variants = json.loads(Path(args.variants).read_text())
    if args.only:
        keep = args.only.split(",")
        variants = {k: v for k, v in variants.items() if any(k.startswith(p) for p in keep)}
    pipe = attnscope.load_pipeline("toy", device=args.device)
    start = time.time()
    done = []

    def on_case(r):
        done.append(r)
        print(f"[{time.time() - start:.0f}s] {r.prompt}", flush=True)
        write_json(args.out, done, {"prompts": len(done), "split": args.split, "variants": variants})

    results, _ = run_bend_eval(pipe, n_prompts=args.prompts, split=args.split, ops=variants, controls=True,
                               on_case=on_case)
    write_json(args.out, results, {"prompts": args.prompts, "split": args.split, "variants": variants,
                                   "seconds": round(time.time() - start, 1)})
    print(format_summary(summarize(results)))


if __name__ == "__main__":
    main()
