"""Viewer latency on a 1.3B-sized run: how long each Explore control takes to give a new picture.

Builds (once) a synthetic run of Wan2.1-T2V-1.3B's size through RunWriter: 21x30x52 latent grid, 50 steps,
30 layers, 12 heads, 4 words, fp16 zarr, plus an 81x480x832 video. Maps are Gaussian blobs plus uniform noise
in every value, so chunks compress like real maps at worst (noise defeats the compressor). Then it times the
viewer's own event function (``Handlers.still``: select from the store's chunks, upscale, colour, blend one
frame) for every control, and a few calls end to end through the Gradio server (HTTP + JPEG).

    .venv/bin/python scripts/bench_viewer.py --run /tmp/bench-1.3b --json docs/bench/viewer.json
    .venv/bin/python scripts/bench_viewer.py --run /tmp/bench-1.3b-u8 --precision uint8 --json docs/bench/viewer_u8.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from attnscope.app.handlers import CONTROL_NAMES, Handlers
from attnscope.app.session import Viewer
from attnscope.render.synthetic import blob_maps, default_blobs
from attnscope.store import RunWriter
from attnscope.video import write_mp4

WORDS = ["cat", "soccer ball", "grass", "sunlight"]


def make_run(path: Path, grid=(21, 30, 52), steps=50, layers=30, heads=12, pixel=(81, 480, 832),
             precision: str = "fp16") -> Path:
    if (path / "meta.json").exists() and json.loads((path / "meta.json").read_text()).get("complete"):
        return path
    rng = np.random.default_rng(0)
    blobs = default_blobs(WORDS, grid)
    meta = {"prompt": "a cat playing with a soccer ball on grass in sunlight", "seed": 0,
            "model": {"id": "synthetic-1.3b-size"}, "pixel": dict(zip(("frames", "height", "width"), pixel, strict=False)) | {"fps": 16},
            "vae": {"temporal": 4, "spatial": 8}, "patch": [1, 2, 2],
            "words": [{"label": w} for w in WORDS]}
    writer = RunWriter(path, meta, words=WORDS, layers=list(range(layers)), heads=list(range(heads)),
                       num_steps=steps, grid=grid, overwrite=True, precision=precision)
    for step in range(steps):
        shape = blob_maps(grid, [blobs[w] for w in WORDS], sigma=1.5 + 4 * (1 - step / steps))  # [word, F, Y, X]
        for layer in range(layers):
            noise = rng.random((heads, len(WORDS), *grid), dtype=np.float32) * 0.01
            maps = (0.002 + 0.2 * shape[None] + noise).astype(np.float16)  # [head, word, F, Y, X]
            mass = np.full((heads, *grid), 0.5, np.float16)
            writer.write(step, layer, maps, mass)
        writer.end_step(step, {"timestep": 1000.0 * (1 - step / steps), "sigma": 1 - step / steps})
    writer.close(complete=True)
    t, h, w = pixel
    video = np.broadcast_to((np.arange(w) * 255 // w).astype(np.uint8)[None, None, :, None], (t, h, w, 3))
    write_mp4(path / "video.mp4", np.ascontiguousarray(video), fps=16)
    return path


def defaults(**kw):
    base = dict(word=WORDS[0], step=49, step_mean=False, step_range="", layer=15, layer_mean=False,
                layer_range="", head=0, head_mean=True, head_range="", cmap="inferno", norm="global", alpha=0.6,
                frame=40, estimator="raw", colorbar=True)
    base.update(kw)
    return tuple(base[name] for name in CONTROL_NAMES)


def timed(h: Handlers, rel: str, values: tuple) -> float:
    start = time.perf_counter()
    image, _, card = h.still(rel, *values)
    elapsed = time.perf_counter() - start
    if image is None:
        raise RuntimeError(card)
    return elapsed * 1000


def timed_live(h: Handlers, rel: str, values: tuple) -> tuple[float, float]:
    """(ms to the first picture, ms to the exact one) through ``Handlers.live_still``, what the Explore tab
    calls: a slow mean over one head shows a preview first."""
    start = time.perf_counter()
    first = None
    for image, _, card in h.live_still(rel, *values):
        if image is None:
            raise RuntimeError(card)
        first = first if first is not None else (time.perf_counter() - start) * 1000
    return first, (time.perf_counter() - start) * 1000


def bench_live(root: Path, rel: str, repeats: int) -> dict:
    """Means over one head across long ranges, as the Explore tab shows them: preview first, then exact."""
    viewer = Viewer(root)
    h = Handlers(viewer)
    timed(h, rel, defaults())
    cases = {
        "one head, layer mean over all 30 layers": lambda i: defaults(head_mean=False, head=i % 12,
                                                                      layer_mean=True, step=i + 20),
        "one head, step mean over all 50 steps": lambda i: defaults(head_mean=False, head=i % 12, step_mean=True,
                                                                    layer=i + 20),
        "one head, step and layer mean (all 1,500 slabs)": lambda i: defaults(
            head_mean=False, head=i % 12, step_mean=True, step_range=f"{i}-49", layer_mean=True),
    }
    out = {}
    for name, make in cases.items():
        n = 1 if "1,500" in name else repeats
        times = [timed_live(h, rel, make(i)) for i in range(n)]
        first, exact = [t[0] for t in times], [t[1] for t in times]
        out[name] = {"first_picture_median_ms": round(statistics.median(first), 1),
                     "first_picture_max_ms": round(max(first), 1),
                     "exact_median_ms": round(statistics.median(exact), 1), "n": n}
    return out


def bench(root: Path, rel: str, repeats: int) -> dict:
    viewer = Viewer(root)
    h = Handlers(viewer)
    results: dict[str, list[float]] = {}
    results["open run + decode video + first frame (cold)"] = [timed(h, rel, defaults())]
    results["first mean of a word (reads its head-mean summary, cold)"] = [
        timed(h, rel, defaults(step_mean=True, layer_mean=True, step_range="1-48"))]
    viewer._prefetch.submit(lambda: None).result()  # the other words' summaries, read in the background
    cases = {  # each repeat changes the control to a value not seen before where it matters (cold chunks)
        "word": lambda i: defaults(word=WORDS[1 + i % 3], step=48 - i),
        "step (slider, new chunk)": lambda i: defaults(step=40 - i),
        "layer (slider, new chunk)": lambda i: defaults(layer=i, step=30),
        "head (slider, one head)": lambda i: defaults(head=i % 12, head_mean=False, step=20 - i),
        "colormap": lambda i: defaults(cmap=("magma", "viridis", "turbo", "inferno")[i % 4]),
        "normalization": lambda i: defaults(norm=("frame", "step", "absolute", "global")[i % 4]),
        "opacity": lambda i: defaults(alpha=0.1 + 0.08 * i),
        "frame": lambda i: defaults(frame=(7 * i) % 81),
        "step mean over 5 steps (45-49)": lambda i: defaults(step_mean=True, step_range="45-49", layer=i),
        "layer mean over all 30 layers": lambda i: defaults(layer_mean=True, step=10 + i),
        "step mean over all 50 steps": lambda i: defaults(step_mean=True, layer=i + 16),
        "step and layer mean (steps i-49, all layers: ~1,500 slabs)": lambda i: defaults(
            step_mean=True, step_range=f"{i}-49", layer_mean=True),
        "word, under a step mean over all 50 steps": lambda i: defaults(word=WORDS[(i + 1) % 4], step_mean=True,
                                                                         layer=i),
        "estimator renorm, step mean over all 50 steps": lambda i: defaults(estimator="renorm", step_mean=True,
                                                                            layer=i + 8),
        "one head, step mean over 5 steps (45-49)": lambda i: defaults(
            head_mean=False, head=i % 12, step_mean=True, step_range="45-49", layer=i + 1),
        "one head, layer mean over all 30 layers": lambda i: defaults(head_mean=False, head=i % 12,
                                                                      layer_mean=True, step=i + 1),
        "one head, step mean over all 50 steps (new layer: 50 chunks read)": lambda i: defaults(
            head_mean=False, head=i % 12, step_mean=True, layer=i + 9),
        "head slider under a step mean over all 50 steps": lambda i: defaults(
            head_mean=False, head=min(i, 11), step_mean=True, layer=8),
    }
    for name, make in cases.items():
        timed(h, rel, make(repeats + 5))  # warm the code path, not the data
        viewer._prefetch.submit(lambda: None).result()  # summaries the warm-up read in the background
        results[name] = [timed(h, rel, make(i)) for i in range(repeats)]
    results["one head, step and layer mean (all 1500 slabs, once)"] = [
        timed(h, rel, defaults(step_mean=True, layer_mean=True, head_mean=False, head=5))]
    return {name: {"median_ms": round(statistics.median(v), 1), "max_ms": round(max(v), 1), "n": len(v)}
            for name, v in results.items()}


def bench_http(root: Path, rel: str, repeats: int) -> dict:
    """Through the server: gradio_client -> queue -> handler -> JPEG -> file download."""
    from gradio_client import Client

    from attnscope.app.server import serve

    demo, url = serve(root, port=None, block=False, quiet=True)
    try:
        client = Client(url, verbose=False)
        client.predict(rel, api_name="/open")
        client.predict(rel, *defaults(), api_name="/still")
        out = {}
        for name, make in {"step (slider, new chunk)": lambda i: defaults(step=39 - i),
                           "colormap": lambda i: defaults(cmap=("magma", "viridis")[i % 2], step=39)}.items():
            times = []
            for i in range(repeats):
                start = time.perf_counter()
                client.predict(rel, *make(i), api_name="/still")
                times.append((time.perf_counter() - start) * 1000)
            out[name] = {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1),
                         "n": repeats}
        return out
    finally:
        demo.close()


CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_NEW_PICTURE = """(old) => { const i = document.querySelector('#still img');
  return i && i.src !== old && i.complete ? performance.now() : false; }"""


def bench_browser(root: Path, rel: str, repeats: int, chromium: str = "/usr/bin/chromium") -> dict:
    """What a user sees: from moving a slider in Chromium to the new picture loaded in the page."""
    from playwright.sync_api import sync_playwright

    from attnscope.app.server import serve

    demo, url = serve(root, port=None, block=False, quiet=True)
    out = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1360, "height": 1000})
            page.goto(url)
            page.get_by_role("tab", name="Explore").click()
            page.locator("#still img").first.wait_for(timeout=120_000)
            page.wait_for_timeout(1500)  # let the run's first events settle
            # a run opens at its default view, a mean over steps and layers: the sliders pick one slab once the
            # means are off (as a person moving them would first do)
            page.locator("#step_mean input[type=checkbox]").uncheck()
            page.locator("#layer_mean input[type=checkbox]").uncheck()
            page.wait_for_timeout(1500)
            sliders = {"step (slider, new chunk)": ("#step", lambda i: 40 - i),
                       "layer (slider, new chunk)": ("#layer", lambda i: i),
                       "opacity (slider)": ("#alpha", lambda i: round(0.1 + 0.1 * i, 2)),
                       "frame (slider)": ("#frame", lambda i: 5 + 9 * i)}
            sliders["one head, layer mean over all 30 layers (step slider)"] = ("#step", lambda i: 30 - i)
            for name, (elem, value) in sliders.items():
                if name.startswith("one head"):  # means over ranges of one head show a preview first
                    page.locator("#head_mean input[type=checkbox]").uncheck()
                    page.locator("#layer_mean input[type=checkbox]").check()
                    page.wait_for_timeout(3000)
                times = []
                for i in range(repeats):
                    old = page.locator("#still img").first.get_attribute("src")
                    start = page.evaluate("performance.now()")
                    page.locator(f"{elem} input[type=range]").fill(str(value(i)))
                    done = page.wait_for_function(WAIT_NEW_PICTURE, arg=old, timeout=60_000).json_value()
                    times.append(done - start)
                    page.wait_for_timeout(2000 if name.startswith("one head") else 100)  # the exact map follows
                out[name] = {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1),
                             "n": repeats}
            browser.close()
    finally:
        demo.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("/tmp/attnscope-bench-viewer/run-1.3b"))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--precision", default="fp16", help="fp16 (lossless) or uint8 (compact, step-chained)")
    args = parser.parse_args()
    start = time.perf_counter()
    path = make_run(args.run, precision=args.precision)
    built = time.perf_counter() - start
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e9
    report = {"machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} CPU cores",
              "run": {"grid": [21, 30, 52], "steps": 50, "layers": 30, "heads": 12, "words": len(WORDS),
                      "precision": args.precision,
                      "video": [81, 480, 832], "store_gb": round(size, 2), "build_s": round(built, 1)},
              "handler": bench(path.parent, path.name, args.repeats)}
    print(json.dumps(report, indent=1), flush=True)
    report["handler_live"] = bench_live(path.parent, path.name, args.repeats)
    print(json.dumps(report["handler_live"], indent=1), flush=True)
    report["http"] = bench_http(path.parent, path.name, args.repeats)
    print(json.dumps(report["http"], indent=1), flush=True)
    if Path("/usr/bin/chromium").exists():
        report["browser"] = bench_browser(path.parent, path.name, args.repeats)
        print(json.dumps(report["browser"], indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
