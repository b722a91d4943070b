"""Sweep throughput with 1 and 2 (or more) GPU actors, side by side in one Ray session; prints JSON.

Pipelines are loaded and warmed up once (a warm-up sweep with one job per actor) and reused, so the figures are
jobs per second of generation, not of loading. Run on a machine with two GPUs, e.g.:

    python scripts/bench_sweep.py --model toy --workers 1,2 --json docs/bench/sweep_toy.json

On a CPU-only machine the actors are CPU actors (``--workers`` then counts CPU actors).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

PROMPTS = ["a red circle moving left", "a blue square moving up", "a green triangle moving right",
           "a yellow circle moving down"]
REWEIGHT = [{"target": "attention", "op": "reweight", "word": "moving", "scale": 2.0}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="toy")
    parser.add_argument("--workers", default="1,2", help="comma list of actor counts to compare")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per prompt (jobs = 4 prompts x seeds x 2)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()

    import ray
    import torch

    from attnscope.sweep import run
    from attnscope.sweep.execute import ray_session

    counts = [int(n) for n in args.workers.split(",")]
    generate = {k: v for k, v in {"steps": args.steps, "frames": args.frames, "height": args.height,
                                  "width": args.width}.items() if v is not None}
    spec = {"model": args.model, "prompts": PROMPTS, "seeds": list(range(args.seeds)), "bends": ["none", REWEIGHT],
            "generate": generate}
    root = Path(tempfile.mkdtemp(prefix="attnscope-bench-sweep-"))
    quiet = {"progress": False, "log": lambda message: print(message, file=sys.stderr)}
    results = []
    with ray_session() as (where, _):
        resources = ray.cluster_resources()
        warm = {**spec, "prompts": PROMPTS[:1], "seeds": list(range(max(counts))), "bends": ["none"]}
        run(warm, root / "warmup", workers=max(counts), **quiet)  # load and warm every actor once
        for n in counts:
            result = run(spec, root / f"workers-{n}", workers=n, **quiet)
            execution = result.execution
            jobs = len(result.rows)
            results.append({"workers": execution.layout.actors, "kind": execution.layout.kind, "jobs": jobs,
                            "failed": result.counts["failed"], "jobs_seconds": round(execution.jobs_seconds, 3),
                            "jobs_per_second": round(jobs / execution.jobs_seconds, 4),
                            "job_seconds_median": sorted(r["timings"]["seconds"] for r in result.rows)[jobs // 2]})
    shutil.rmtree(root)
    base = results[0]["jobs_per_second"]
    report = {
        "command": " ".join(sys.argv),
        "machine": {"host": platform.node(), "ray": where, "gpus": int(resources.get("GPU", 0)),
                    "cpus": int(resources.get("CPU", 0)),
                    "gpu_name": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
        "spec": spec,
        "results": results,
        "speedup_vs_first": [round(r["jobs_per_second"] / base, 3) for r in results],
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
