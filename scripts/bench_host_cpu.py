"""Where the host CPU of a capture goes, and what a different codec or zarr thread count would change.

    python scripts/bench_host_cpu.py --model wan2.1-1.3b --steps 10 --json host_cpu.json

Runs ``attnscope bench e2e`` (stock and capture, interleaved, same seed) once per variant of the store's codec or
zarr's thread pool, and reports the CPU time per thread (the main thread, zarr's event loop ``zarr_io``, its
codec workers ``asyncio``, threads that ended within a run: the writer's) and the writer thread's CPU per task.
The variants are what-ifs for the measurement only: ``current`` is what attnscope ships.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import zarr
from zarr.codecs import BloscCodec

from attnscope.bench.e2e import run_e2e_bench
from attnscope.store import runstore

BLOCK = runstore.BLOSC_BLOCK
SHIPPED = runstore.compressor
VARIANTS = {
    "current": ({}, SHIPPED),
    "lz4": ({}, lambda dtype="float16": BloscCodec(cname="lz4", clevel=1, shuffle="shuffle", blocksize=BLOCK)),
    "no-compression": ({}, lambda dtype="float16": BloscCodec(cname="lz4", clevel=0, shuffle="noshuffle",
                                                              blocksize=BLOCK)),
    "zarr-2-workers": ({"threading.max_workers": 2}, SHIPPED),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="toy")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results = {}
    for name in args.variants.split(","):
        config, codec = VARIANTS[name]
        runstore.compressor = codec
        try:
            with zarr.config.set(config):
                r = run_e2e_bench(args.model, steps=args.steps, repeats=args.repeats)
        finally:
            runstore.compressor = SHIPPED
        results[name] = {k: r[k] for k in ("median_s", "median_cpu_s", "paired_ratios", "paired_cpu_ratios",
                                           "store_bytes", "thread_cpu_s", "writer_cpu_by_task_s", "writer_busy_s",
                                           "output_identical")}
        threads = r["thread_cpu_s"]["attnscope"][-1]
        print(f"{name}: wall {r['paired_ratios']['attnscope'] * 100:+.1f} %, CPU "
              f"{r['paired_cpu_ratios']['attnscope'] * 100:+.1f} %, store {r['store_bytes']['attnscope'] / 1e6:.0f} MB;"
              f" threads {threads}; writer {r['writer_cpu_by_task_s']['attnscope'][-1]}", flush=True)
    out = {"model": args.model, "steps": args.steps, "device": r["device"], "torch": r["torch"],
           "zarr": zarr.__version__, "variants": results}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
