"""How much smaller the store would be if each step were coded as its difference from the step before.

Consecutive denoising steps attend alike, so a map minus the previous step's map holds less information than the
map. This script captures one generation into a lossless store, then encodes every array chunk by chunk, as the
store does (zstd-1 in 1 MB blosc blocks; byte shuffle for float16, bit shuffle for uint8), plain and as a chain of
step differences (step 0 as it is, step t as its bit pattern minus step t-1's, modulo 2^16 or 2^8, which is
exactly reversible). The uint8 rows quantize the stored float16 maps with :func:`attnscope.store.compact.quantize`.
A chained store would need steps 0..t to read step t; this measures only what it would save.

    .venv/bin/python scripts/bench_step_delta.py --model toy --json docs/bench/step_delta_toy_cpu.json
    python3 scripts/bench_step_delta.py --model wan2.1-1.3b --steps 20 --json $OUT/step_delta_1.3b.json   # GPU
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numcodecs.blosc
import numpy as np
import torch
import zarr
from numcodecs import Blosc

from attnscope.bench.e2e import bench_call
from attnscope.store.compact import quantize
from attnscope.store.runstore import BLOSC_BLOCK
from attnscope.tracing import Trace

CODECS = {"float16": Blosc("zstd", 1, Blosc.SHUFFLE, blocksize=BLOSC_BLOCK),
          "uint8": Blosc("zstd", 1, Blosc.BITSHUFFLE, blocksize=BLOSC_BLOCK)}


def chunk_sizes(steps: np.ndarray, dtype: str) -> tuple[int, int]:
    """Encoded bytes of one layer's (or summary's) steps [S, ...]: plain, and as a chain of step differences."""
    codec = CODECS[dtype]
    bits = steps.view(np.uint16 if dtype == "float16" else np.uint8)
    delta = bits.copy()
    delta[1:] -= bits[:-1]  # unsigned wrap-around: bits[t] = delta[t] + bits[t-1] modulo 2^k
    plain = sum(len(codec.encode(np.ascontiguousarray(bits[t]))) for t in range(len(bits)))
    chained = sum(len(codec.encode(np.ascontiguousarray(delta[t]))) for t in range(len(delta)))
    return plain, chained


def measure(group: zarr.Group) -> dict:
    """Raw, plain and chained bytes per array and dtype, chunk by chunk (one (step, layer) slab per chunk)."""
    out: dict[str, dict] = {}
    for name in sorted(group.array_keys()):
        array = group[name]
        layered = array.chunks[1] == 1 and array.ndim >= 3  # (step, layer, ...) chunked one layer at a time
        rows = {"float16": [0, 0, 0], "uint8": [0, 0, 0]}
        for layer in range(array.shape[1] if layered else 1):
            f16 = np.asarray(array[:, layer] if layered else array[:], dtype=np.float16)
            codes = np.asarray(quantize(f16.astype(np.float32))[0])
            for dtype, values in (("float16", f16), ("uint8", codes)):
                plain, chained = chunk_sizes(values, dtype)
                rows[dtype][0] += values.nbytes
                rows[dtype][1] += plain
                rows[dtype][2] += chained
        out[name] = {dtype: {"raw": r, "plain": p, "chained": c} for dtype, (r, p, c) in rows.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="toy", help="toy, tiny or a full-size config (wan2.1-1.3b ...)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    numcodecs.blosc.set_nthreads(min(16, os.cpu_count() or 1))  # sizes do not depend on it: the blocks are fixed
    device = "cuda" if torch.cuda.is_available() else "cpu"
    pipe, kwargs, words, prompt_tokens = bench_call(args.model, device, args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with Trace(pipe, words=None, store=Path(tmp) / "run") as tr:
            if words is not None:
                tr.set_words(words, prompt_tokens)
            pipe(generator=torch.Generator(device=device).manual_seed(0), **kwargs)
        generated = time.perf_counter() - t0
        arrays = measure(zarr.open_group(Path(tmp) / "run" / "maps.zarr", mode="r"))
    total = {dtype: {k: sum(a[dtype][k] for a in arrays.values()) for k in ("raw", "plain", "chained")}
             for dtype in CODECS}
    for dtype, t in total.items():
        print(f"{dtype}: raw {t['raw'] / 1e6:.1f} MB, plain {t['plain'] / 1e6:.1f} MB ({t['raw'] / t['plain']:.3f}x), "
              f"chained {t['chained'] / 1e6:.1f} MB ({t['raw'] / t['chained']:.3f}x, "
              f"{t['plain'] / t['chained']:.3f}x smaller than plain)")
    result = {"model": args.model, "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
              "steps": kwargs.get("num_inference_steps"), "generation_s": generated, "arrays": arrays, "total": total}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
