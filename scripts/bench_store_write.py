"""Where the store writer's time goes at Wan2.1-1.3B size, and what each layout choice costs, side by side.

A synthetic step the size of a 1.3B capture (30 layers × 12 heads × 8 words × 21×30×52 tokens, fp16, with prompt
mass and head-mean summaries): softmax probabilities of random logits over 512 keys, which compress like the
random-weight H200 runs' maps (1.16x with zstd-1). Each configuration writes the same steps through
``RunWriter`` (interleaved over repeats); process CPU time (all threads) and wall time per step, bytes on disk.
Then the parts of one slab's write on their own: the codecs, and zarr's per-chunk fill-value scan.

    .venv/bin/python scripts/bench_store_write.py [--steps 4] [--repeats 3] [--json docs/bench/store_write.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import zarr
from numcodecs import Blosc
from zarr.codecs import BloscCodec

import attnscope.store.runstore as runstore
from attnscope.store.chunks import ChunkWriter
from attnscope.store.compact import encode_slabs
from attnscope.store.writer import RunWriter, summaries_of

LAYERS, HEADS, WORDS, GRID = 30, 12, 8, (21, 30, 52)


def synthetic_layer(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One layer's slabs: 32 real keys of random logits beside 480 padding keys, as a Wan capture sees them."""
    s = int(np.prod(GRID))
    logits = rng.normal(0, 1.5, (HEADS, s, 32)).astype(np.float32)
    p = np.exp(logits)
    p /= p.sum(-1, keepdims=True) + 480 * np.exp(1.5 ** 2 / 2) * rng.lognormal(0, 0.05, (HEADS, s, 1))
    maps = torch.from_numpy(p[:, :, :WORDS].transpose(0, 2, 1).reshape(HEADS, WORDS, *GRID).astype(np.float16))
    mass = torch.from_numpy(p[:, :, :24].sum(-1).reshape(HEADS, *GRID).astype(np.float16))
    out = {"maps": maps, "prompt_mass": mass, **summaries_of(maps, mass)}
    return {k: np.ascontiguousarray(v.numpy() if hasattr(v, "numpy") else v) for k, v in out.items()}


@contextmanager
def before():
    """The writer as it was: zstd-1 for every array, zarr's fill-value scan on every chunk."""
    saved = runstore.compressor, runstore.WRITE_CONFIG
    runstore.compressor = lambda dtype="float16": BloscCodec(cname="zstd", clevel=1, shuffle="bitshuffle")
    runstore.WRITE_CONFIG = {"write_empty_chunks": False}
    try:
        yield
    finally:
        runstore.compressor, runstore.WRITE_CONFIG = saved


@contextmanager
def through_zarr():
    """Every chunk through ``zarr.Array.__setitem__``, as before the writer encoded whole chunks itself."""
    saved = ChunkWriter.direct
    ChunkWriter.direct = property(lambda self: False)
    try:
        yield
    finally:
        ChunkWriter.direct = saved


def write(path: Path, layers: list[dict], steps: int, precision: str) -> tuple[float, float, int]:
    shutil.rmtree(path, ignore_errors=True)
    w = RunWriter(path, {}, words=[f"w{i}" for i in range(WORDS)], layers=list(range(LAYERS)),
                  heads=list(range(HEADS)), num_steps=steps, grid=GRID, precision=precision)
    t0, c0 = time.perf_counter(), time.process_time()
    for step in range(steps):
        for layer in range(LAYERS):
            w.write(step, layer, None, None, dict(layers[layer % len(layers)]))
        w.end_step(step, {})
    w.close(True)
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return dt / steps, dc / steps, size // steps




def parts(layer: dict) -> dict:
    """One maps slab: each codec alone (one thread), and zarr's write with and without the fill-value scan."""
    slab = layer["maps"]
    out = {}
    for name, codec in {"zstd-1 bitshuffle": Blosc("zstd", 1, Blosc.BITSHUFFLE),
                        "lz4-5 bitshuffle": Blosc("lz4", 5, Blosc.BITSHUFFLE)}.items():
        codec.encode(slab)
        c0 = time.process_time()
        for _ in range(5):
            encoded = codec.encode(slab)
        out[f"codec {name}: MB/s a core"] = round(slab.nbytes * 5 / (time.process_time() - c0) / 1e6)
        out[f"codec {name}: ratio"] = round(slab.nbytes / len(encoded), 3)
    codes = encode_slabs({"maps": torch.from_numpy(slab)}, "uint8")["maps"].numpy()
    zcodec = Blosc("zstd", 1, Blosc.BITSHUFFLE)
    out["uint8 codes zstd-1 bitshuffle: ratio"] = round(codes.nbytes / len(zcodec.encode(codes)), 3)
    with tempfile.TemporaryDirectory() as tmp:
        for scan in (True, False):
            arr = zarr.create_array(Path(tmp) / str(scan), shape=(6, *slab.shape), chunks=(1, *slab.shape),
                                    dtype="float16", fill_value=np.nan, compressors=None,
                                    config={"write_empty_chunks": not scan})
            arr[0] = slab
            c0 = time.process_time()
            for i in range(1, 6):
                arr[i] = slab
            out[f"zarr write, no codec, {'with' if scan else 'without'} fill-value scan: ms CPU"] = round(
                (time.process_time() - c0) / 5 * 1e3, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    layers = [synthetic_layer(rng) for _ in range(2)]  # alternated: distinct neighbouring chunks
    codes = [{k: v.numpy() if hasattr(v, "numpy") else v
              for k, v in encode_slabs({k: torch.from_numpy(v) for k, v in lay.items()}, "uint8").items()}
             for lay in layers]
    configs = {"before (zstd-1, fill-value scan)": (layers, "fp16", before),
               "lossless fp16 through zarr's write path": (layers, "fp16", through_zarr),
               "lossless fp16 (whole chunks past zarr)": (layers, "fp16", None),
               "compact through zarr's write path": (layers, "uint8", through_zarr),
               "compact, quantized by the writer": (layers, "uint8", None),
               "compact, codes from the device": (codes, "uint8", None)}
    raw: dict[str, dict[str, list]] = {name: {"wall_s": [], "cpu_s": [], "bytes": []} for name in configs}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for name, (data, precision, ctx) in configs.items():
                if ctx is not None:
                    with ctx():
                        dt, dc, size = write(Path(tmp) / "r", data, args.steps, precision)
                else:
                    dt, dc, size = write(Path(tmp) / "r", data, args.steps, precision)
                for key, value in (("wall_s", dt), ("cpu_s", dc), ("bytes", size)):
                    raw[name][key].append(round(value, 4))
    step_bytes = sum(v.nbytes for v in layers[0].values()) * LAYERS
    result = {"machine": f"{os.cpu_count()} CPU cores", "step_bytes_fp16": step_bytes, "steps": args.steps,
              "per_step": {name: {k: {"median": statistics.median(v), "raw": v} for k, v in d.items()}
                           for name, d in raw.items()},
              "parts": parts(layers[0])}
    for name, d in result["per_step"].items():
        print(f"{name:36s} wall {d['wall_s']['median']:.3f} s  CPU {d['cpu_s']['median']:.3f} s  "
              f"{d['bytes']['median'] / 1e6:.1f} MB per step  ({step_bytes / 1e6:.0f} MB fp16)")
    for key, value in result["parts"].items():
        print(f"  {key}: {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
