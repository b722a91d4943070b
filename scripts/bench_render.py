"""Benchmark: overlay render of one word on an 81-frame 480x832 video from a Wan2.1-1.3B-sized store.

Compares attnscope's vectorized overlay (``render(kind="overlay")``) with a straightforward per-frame loop
(resize + matplotlib colormap + blend per frame), both including the selection (store read + mean), the video
decode and the H.264 encode. Runs are interleaved and the order alternates every repeat.

    PYTHONPATH=src .venv/bin/python scripts/bench_render.py --repeats 5 [--grain 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import matplotlib
import numpy as np
import torch

from attnscope.render import normalize, overlay_frames, render, select
from attnscope.render.synthetic import make_synthetic_run
from attnscope.render.upscale import latent_frame_index
from attnscope.store import open_run
from attnscope.video import read_mp4, write_mp4

GRID = (21, 30, 52)  # Wan2.1-1.3B at 480x832x81
PIXEL = (81, 480, 832)


def naive_overlay(run, word: str, out: Path, alpha: float = 0.6) -> None:
    """What one writes first: for every pixel frame, resize its latent map, colour it, blend, then encode."""
    maps = select(run, word)  # same selection as the vectorized path
    n = normalize(maps).values.values  # [F', Y, X] in [0, 1]
    video = read_mp4(run.video_path)
    cmap = matplotlib.colormaps["inferno"]
    index = latent_frame_index(len(video), n.shape[0])
    frames = []
    for t, frame in enumerate(video):
        small = torch.from_numpy(n[index[t]])[None, None]
        big = torch.nn.functional.interpolate(small, size=frame.shape[:2], mode="bilinear",
                                              align_corners=False)[0, 0].numpy()
        rgb = cmap(big)[..., :3] * 255
        frames.append((frame * (1 - alpha) + rgb * alpha).round().astype(np.uint8))
    write_mp4(out, np.stack(frames), fps=run.meta["pixel"]["fps"])


CPU: dict[str, list[float]] = {}


def timed(fn, name: str | None = None) -> float:
    """Wall seconds; the process's CPU seconds (all threads) go to CPU[name], a figure other load on the
    machine barely changes."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    if name:
        CPU.setdefault(name, []).append(round(time.process_time() - cpu, 3))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--store", type=Path, default=Path("/tmp/bench_render_run"))
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--grain", type=float, default=8.0, help="std of moving film grain added to the video")
    args = parser.parse_args()
    start = time.perf_counter()
    make_synthetic_run(args.store, grid=GRID, num_steps=args.steps, layers=30, heads=12,
                       words=("circle", "square"), pixel=PIXEL, previews=False)
    build = time.perf_counter() - start
    run = open_run(args.store)
    if args.grain:  # film grain: flat synthetic frames encode unrealistically fast; noise is the hard case
        clean = read_mp4(run.video_path).astype(np.float32)
        grain = np.random.default_rng(0).normal(0, args.grain, clean.shape[1:3] + (1,)).astype(np.float32)
        noisy = [np.clip(f + np.roll(grain, 7 * t, axis=1), 0, 255) for t, f in enumerate(clean)]
        write_mp4(run.video_path, np.stack(noisy).astype(np.uint8), fps=16)
    out_dir = args.store / "bench"
    fast = lambda: render(run, "circle", "overlay", out=out_dir / "fast.mp4")  # noqa: E731
    naive = lambda: naive_overlay(run, "circle", out_dir / "naive.mp4")  # noqa: E731
    video = read_mp4(run.video_path)
    maps = select(run, "circle")
    parts = {
        "select": lambda: select(run, "circle"),
        "read_mp4": lambda: read_mp4(run.video_path),
        "overlay_frames": lambda: overlay_frames(run, "circle", maps=maps, video=video),
        "encode": lambda: write_mp4(out_dir / "enc.mp4", video, fps=16),
    }
    before = os.getloadavg()[0]
    fast()  # warm-up: imports, colormap tables, file cache
    times: dict[str, list[float]] = {"vectorized": [], "naive": []}
    for r in range(args.repeats):
        order = ("vectorized", "naive") if r % 2 == 0 else ("naive", "vectorized")
        for name in order:
            times[name].append(timed(fast if name == "vectorized" else naive, name))
    part_times = {k: float(np.median([timed(f) for _ in range(3)])) for k, f in parts.items()}
    med = {k: float(np.median(v)) for k, v in times.items()}
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
                   f"{len(os.sched_getaffinity(0))} cores",
        "torch": torch.__version__, "grid": GRID, "pixel": PIXEL, "steps": args.steps, "grain_std": args.grain, "layers": 30, "heads": 12,
        "store_build_s": round(build, 2), "raw_s": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "load_average_1min_before": before, "load_average_1min_after": os.getloadavg()[0],
        "median_s": {k: round(v, 3) for k, v in med.items()}, "cpu_s": CPU,
        "cpu_median_s": {k: round(float(np.median(v)), 3) for k, v in CPU.items()}, "ratio_naive_over_vectorized":
        round(med["naive"] / med["vectorized"], 2), "parts_median_of_3_s": {k: round(v, 3) for k, v in part_times.items()},
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
