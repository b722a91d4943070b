"""Store layout options, side by side on this machine: the codec (blosc zstd-1 vs lz4-1, bit shuffle both) and
zarr sharding (one chunk per (step, layer) slab vs one shard per slab with one inner chunk per head).

Why: the writer thread's throughput bounds the capture cost on a GPU (issue 07), and per-head reads bound the
viewer's single-head range means (issue 05); both depend on the layout. Slabs are the size of a Wan2.1-1.3B
capture (12 heads, 4 words, 21×30×52 tokens); values are gamma-distributed fp16, about as compressible as real
maps (ratio checked on a toy run's maps when one is given).

    .venv/bin/python scripts/bench_store_layout.py [--toy-run runs/eval/p004] [--json docs/bench/store_layout.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BloscCodec

STEPS, LAYERS, HEADS, WORDS, GRID = 8, 30, 12, 4, (21, 30, 52)
CODECS = {"zstd-1": dict(cname="zstd", clevel=1, shuffle="bitshuffle"),
          "lz4-1": dict(cname="lz4", clevel=1, shuffle="bitshuffle")}


def _size(path: Path) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def _array(path: Path, codec: str, sharded: bool, shape: tuple[int, ...]) -> zarr.Array:
    shutil.rmtree(path, ignore_errors=True)
    group = zarr.open_group(path, mode="w", zarr_format=3)
    slab = (1, 1, *shape[2:])
    layout = dict(chunks=(1, 1, 1, *shape[3:]), shards=slab) if sharded else dict(chunks=slab)
    return group.create_array("m", shape=shape, dtype="float16", fill_value=np.nan,
                              compressors=[BloscCodec(**CODECS[codec])], **layout)


def measure(root: Path, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    step = rng.gamma(0.3, 1e-3, size=(LAYERS, HEADS, WORDS, *GRID)).astype(np.float16)
    shape = (STEPS, *step.shape)
    cases = [(c, s) for s in (False, True) for c in CODECS]
    raw: dict[str, dict[str, list[float]]] = {f"{c}{' sharded' if s else ''}": {} for c, s in cases}
    for rep in range(repeats):
        for codec, sharded in cases:  # interleaved
            name = f"{codec}{' sharded' if sharded else ''}"
            arr = _array(root / "a", codec, sharded, shape)
            start = time.perf_counter()
            for s in range(STEPS):
                arr[s] = step
            write = time.perf_counter() - start
            arr = zarr.open_array(root / "a" / "m", mode="r")
            head = 1 + rep % (HEADS - 1)
            start = time.perf_counter()
            arr[:, 5, head, 1]  # one head and word over all steps: what a single-head range mean reads
            one_head = time.perf_counter() - start
            start = time.perf_counter()
            arr[3, (7 + rep) % LAYERS, head, 1]  # one map
            single = time.perf_counter() - start
            for key, value in (("write_MB_per_s", STEPS * step.nbytes / 1e6 / write),
                               (f"one_head_{STEPS}_steps_ms", 1000 * one_head), ("one_map_ms", 1000 * single),
                               ("ratio", STEPS * step.nbytes / _size(root / "a"))):
                raw[name].setdefault(key, []).append(round(value, 3))
    return {name: {k: {"median": statistics.median(v), "raw": v} for k, v in d.items()} for name, d in raw.items()}


def toy_ratios(run: Path, root: Path) -> dict[str, float]:
    maps = zarr.open_group(run / "maps.zarr", mode="r")["maps"][:]
    out = {}
    for codec in CODECS:
        arr = _array(root / "t", codec, False, maps.shape)
        arr[:] = maps
        out[codec] = round(maps.nbytes / _size(root / "t"), 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--toy-run", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = {"machine": f"{os.cpu_count()} CPU cores", "slab": [LAYERS, HEADS, WORDS, *GRID],
                  "steps": STEPS, "cases": measure(Path(tmp), args.repeats)}
        if args.toy_run:
            result["toy_run_ratio"] = toy_ratios(args.toy_run, Path(tmp))
    text = json.dumps(result, indent=1)
    if args.json:
        args.json.write_text(text + "\n")
    for name, d in result["cases"].items():
        print(f"{name:14s} " + "  ".join(f"{k} {v['median']:.1f}" for k, v in d.items()))
    print("toy run ratios:", result.get("toy_run_ratio"))


if __name__ == "__main__":
    main()
