"""The store's codec choices side by side, on one synthetic step of a Wan2.1-1.3B capture (one core), or on a
real capture of the trained toy model (``--toy``).

The synthetic step is ``bench_store_write.synthetic_layer``'s (maps, prompt mass and head-mean summaries of softmax
probabilities over 512 keys); ``--toy`` captures every word of one toy-world prompt (20 steps × 8 layers × 8 heads)
and encodes its arrays chunk by chunk, as the store does. Each as float16 (the lossless store) and as compact uint8
codes. For each blosc configuration: the compression ratio over all arrays and the best of three single-threaded
encode speeds.

    .venv/bin/python scripts/bench_codec.py [--toy] [--json docs/bench/codec.json]
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
           ("zstd", 1, "byte", 1 << 20), ("zstd", 1, "none", 1 << 20), ("zstd", 2, "bit", 1 << 20),
           ("zstd", 5, "bit", 1 << 20), ("zstd", 5, "byte", 1 << 20)]


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


def toy_arrays() -> dict[str, np.ndarray]:
    """A lossless toy capture's float16 arrays, one entry per stored chunk (a (step, layer) slab, or a step's
    summary), read back from its store."""
    import tempfile
    from pathlib import Path

    import torch
    import zarr

    from attnscope.models.info import model_info
    from attnscope.models.loading import load_pipeline
    from attnscope.tracing import Trace

    pipe = load_pipeline("toy", device="cpu")
    pipe.set_progress_bar_config(disable=True)
    with tempfile.TemporaryDirectory() as tmp, Trace(pipe, words=None, store=Path(tmp) / "run"):
        pipe(prompt="a red circle moving left and a blue square moving up", output_type="np",
             generator=torch.Generator().manual_seed(0), **dict(model_info(pipe).defaults))
        group = zarr.open_group(Path(tmp) / "run" / "maps.zarr", mode="r")
        out = {}
        for name in group.array_keys():
            a = group[name][:]
            per_layer = a.ndim == 7 or name == "prompt_mass"
            for index in np.ndindex(*a.shape[:2 if per_layer else 1]):
                out[f"{name}{index}"] = np.ascontiguousarray(a[index])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toy", action="store_true", help="a trained toy model's capture instead of the synthetic step")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    numcodecs.blosc.set_nthreads(1)
    fp16 = (toy_arrays() if args.toy else
            {k: np.ascontiguousarray(v) for k, v in synthetic_layer(np.random.default_rng(0)).items()})
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
