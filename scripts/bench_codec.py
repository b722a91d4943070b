"""The store's codec choices side by side, on one synthetic step of a Wan2.1-1.3B capture (one core).

The step is ``bench_store_write.synthetic_layer``'s (maps, prompt mass and head-mean summaries of softmax
probabilities over 512 keys), as float16 (the lossless store) and as compact uint8 codes. For each blosc
configuration: the compression ratio over all arrays and the best of three single-threaded encode speeds.

    .venv/bin/python scripts/bench_codec.py [--json docs/bench/codec.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numcodecs.blosc
import numpy as np
from bench_store_write import synthetic_layer
from numcodecs import Blosc

from attnscope.store.compact import quantize

SHUFFLES = {"bit": Blosc.BITSHUFFLE, "byte": Blosc.SHUFFLE, "none": Blosc.NOSHUFFLE}
CONFIGS = [("lz4", 5, "bit", 0), ("lz4", 5, "bit", 1 << 20), ("zstd", 1, "bit", 0), ("zstd", 1, "bit", 1 << 20),
           ("zstd", 1, "byte", 1 << 20), ("zstd", 1, "none", 1 << 20), ("zstd", 2, "bit", 1 << 20)]


def measure(arrays: dict[str, np.ndarray], cname: str, clevel: int, shuffle: str, blocksize: int) -> dict:
    codec = Blosc(cname=cname, clevel=clevel, shuffle=SHUFFLES[shuffle], blocksize=blocksize)
    raw = sum(a.nbytes for a in arrays.values())
    packed = sum(len(codec.encode(a)) for a in arrays.values())
    seconds = []
    for _ in range(3):
        t0 = time.perf_counter()
        for a in arrays.values():
            codec.encode(a)
        seconds.append(time.perf_counter() - t0)
    return {"cname": cname, "clevel": clevel, "shuffle": shuffle, "blocksize": blocksize,
            "ratio": raw / packed, "mb_per_s": raw / min(seconds) / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    numcodecs.blosc.set_nthreads(1)
    fp16 = {k: np.ascontiguousarray(v) for k, v in synthetic_layer(np.random.default_rng(0)).items()}
    codes = {k: np.ascontiguousarray(quantize(v)[0].numpy()) for k, v in fp16.items()}
    results = {}
    for label, arrays in (("float16", fp16), ("uint8", codes)):
        results[label] = [measure(arrays, *config) for config in CONFIGS]
        for r in results[label]:
            print(f"{label:8s} {r['cname']}-{r['clevel']} {r['shuffle']:4s} shuffle, block {r['blocksize'] or 'auto'}: "
                  f"{r['ratio']:.3f}x at {r['mb_per_s']:.0f} MB/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
