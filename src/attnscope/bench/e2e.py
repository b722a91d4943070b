"""``attnscope bench e2e``: a whole generation with and without capture, interleaved, same seed.

For the toy / tiny models this runs the real pipeline (text encoder, transformer, VAE). For a full-size config
(``wan2.1-1.3b`` ...) it runs WanPipeline with random transformer weights on given prompt embeddings and stops
at the latents (the VAE decode is the same with and without capture).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, WanPipeline

from ..models.loading import load_pipeline
from ..tracing import Trace
from .capture import make_transformer
from .configs import CONFIGS, SIZES


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _cpu_seconds() -> float:
    """CPU time of this process (all threads, ended ones too) and of its reaped children.

    The process clock is the scheduler's own nanosecond count, the same one ``_thread_cpu`` reads per thread,
    so the ended threads' share (their difference) is exact rather than a difference of tick samples.
    """
    t = os.times()
    return time.process_time() + t.children_user + t.children_system


def _thread_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds of each live thread of this process (Linux /proc), by native id: (name, seconds).

    Python threads are named as ``threading`` names them (a pool's numbered workers as one name); the others
    (blosc, OpenMP, the CUDA driver) by their kernel name. The seconds are the scheduler's run time
    (``schedstat``, nanoseconds) where the kernel has it, else the tick-sampled user + system time.
    """
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return {}
    tick = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: re.sub(r"_\d+$", "", t.name) for t in threading.enumerate()}
    out = {}
    for task in tasks.iterdir():
        try:
            stat = (task / "stat").read_text()
            sched = (task / "schedstat").read_text().split() if (task / "schedstat").exists() else None
        except OSError:  # the thread ended while we looked
            continue
        tid = int(task.name)
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        seconds = int(sched[0]) / 1e9 if sched else (int(fields[11]) + int(fields[12])) / tick
        out[tid] = (names.get(tid, f"native:{comm}"), seconds)
    return out


def _wait_exit(native_id: int | None, timeout: float = 2.0) -> None:
    """Wait until a joined thread is gone from ``/proc`` (its CPU time then counts as an ended thread's)."""
    deadline = time.perf_counter() + timeout
    while native_id is not None and Path(f"/proc/self/task/{native_id}").exists() and time.perf_counter() < deadline:
        time.sleep(0.001)


def _thread_delta(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]],
                  total: float) -> dict[str, float]:
    """CPU seconds per thread name over one generation; threads that ended in it are "ended threads"."""
    by_name: dict[str, float] = {}
    for tid, (name, seconds) in after.items():
        by_name[name] = by_name.get(name, 0.0) + seconds - before.get(tid, (name, 0.0))[1]
    by_name["ended threads"] = total - sum(by_name.values())
    return {k: round(v, 3) for k, v in sorted(by_name.items(), key=lambda kv: -kv[1]) if abs(v) >= 0.005}


def _paired(mode: list[float], stock: list[float]) -> float:
    """Median over repeats of mode / stock - 1, each repeat against the stock run beside it: a drift of the
    machine over the run (the 2-core box's speed wanders by 20 %) cancels within a pair."""
    return statistics.median(m / s - 1.0 for m, s in zip(mode, stock, strict=True))


def _full_size_pipeline(config: str, device: str):
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    pipe = WanPipeline(tokenizer=None, text_encoder=None, vae=None, transformer=make_transformer(config, device, dtype),
                       scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0))
    pipe.set_progress_bar_config(disable=True)
    return pipe, dtype


def bench_call(model: str, device: str, steps: int | None = None, n_words: int = 8, frames: int | None = None,
               height: int | None = None, width: int | None = None):
    """The pipeline a benchmark times and its call's arguments: (pipe, kwargs, words, prompt_tokens).

    A full-size config gets random transformer weights, fixed random prompt embeddings and ``n_words`` one-token
    words; ``words`` and ``prompt_tokens`` are then what :meth:`Trace.set_words` takes. The toy and tiny models
    run their real pipeline on a fixed prompt, and ``words`` is None (every word is captured).
    """
    if model in CONFIGS:
        pipe, dtype = _full_size_pipeline(model, device)
        f, h, w, _ = SIZES[model]
        text_dim = CONFIGS[model]["text_dim"]
        g = torch.Generator(device=device).manual_seed(0)
        embeds = torch.zeros(1, 512, text_dim, device=device, dtype=dtype)
        embeds[:, :24] = torch.randn(1, 24, text_dim, generator=g, device=device, dtype=dtype)
        kwargs = dict(prompt_embeds=embeds, negative_prompt_embeds=torch.zeros_like(embeds), output_type="latent",
                      num_frames=frames or f, height=height or h, width=width or w,
                      num_inference_steps=steps or 50, guidance_scale=5.0)
        return pipe, kwargs, {f"w{i}": [1 + 2 * i] for i in range(n_words)}, 24
    from ..models.info import model_info

    pipe = load_pipeline(model, device=device)
    pipe.set_progress_bar_config(disable=True)
    options = dict(model_info(pipe).defaults)
    options.update({k: v for k, v in dict(num_inference_steps=steps, num_frames=frames, height=height,
                                            width=width).items() if v is not None})
    kwargs = dict(prompt="a red circle moving left and a blue square moving up", output_type="np", **options)
    return pipe, kwargs, None, None


def run_e2e_bench(model: str = "toy", steps: int | None = None, repeats: int = 3, n_words: int = 8,
                  device: str | None = None, frames: int | None = None, height: int | None = None,
                  width: int | None = None, writers: tuple[str, ...] = ("auto",), self_prop: bool = False,
                  compact: bool = False, self_prop_steps="all") -> dict:
    """Median wall time of a generation with and without capture; the store's size on disk per mode.

    ``writers`` lists the writer modes to time side by side ("auto", "thread", "inline"): mode "auto" is
    reported as "attnscope", the others as "attnscope_<mode>"; ``ratio`` and ``cpu_ratio`` are the first's.
    ``self_prop`` adds a mode "attnscope_self_prop": the first writer, also capturing the maps propagated through
    each block's self-attention, at the steps ``self_prop_steps`` selects. ``compact`` adds a mode
    "attnscope_compact": the first writer, storing uint8 codes with a scale per map (``precision="uint8"``,
    :mod:`attnscope.store.compact`).
    """
    captures = {("attnscope" if w == "auto" else f"attnscope_{w}"): (w, False, "fp16") for w in writers}
    if self_prop:
        captures["attnscope_self_prop"] = (writers[0], True, "fp16")
    if compact:
        captures["attnscope_compact"] = (writers[0], False, "uint8")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    root = Path(tempfile.mkdtemp(prefix="attnscope-e2e-"))
    pipe, kwargs, words, prompt_tokens = bench_call(model, device, steps, n_words, frames, height, width)
    times: dict[str, list[float]] = {mode: [] for mode in ("stock", *captures)}
    cpu: dict[str, list[float]] = {mode: [] for mode in times}  # CPU time, all threads
    outputs = {}
    store_bytes: dict[str, int] = {}
    writer_busy: dict[str, list[float]] = {mode: [] for mode in captures}
    writer_cpu: dict[str, list[float]] = {mode: [] for mode in captures}
    writer_tasks: dict[str, list[dict[str, float]]] = {mode: [] for mode in captures}
    threads: dict[str, list[dict[str, float]]] = {mode: [] for mode in times}  # CPU per thread name, per repeat
    for i in range(repeats + 1):
        # the order alternates from one repeat to the next, so a drift of the machine (or a cost left behind by
        # the run before) falls on every mode alike
        for mode in (list(times) if i % 2 == 0 else list(times)[::-1]):
            generator = torch.Generator(device=device).manual_seed(0)
            store = root / f"run{i}"
            _sync(device)
            th0 = _thread_cpu()  # read before the clocks start: /proc reads are not the generation's time
            t0, c0 = time.perf_counter(), _cpu_seconds()
            if mode == "stock":
                out = pipe(generator=generator, **kwargs).frames
            else:
                writer, propagate, precision = captures[mode]
                tr = Trace(pipe, words=None, store=store, writer=writer, self_prop=propagate, precision=precision,
                           self_prop_steps=self_prop_steps)
                with tr:
                    if words is not None:
                        tr.set_words(words, prompt_tokens)
                    out = pipe(generator=generator, **kwargs).frames
                    used = tr.writer
            _sync(device)
            dt, dc = time.perf_counter() - t0, _cpu_seconds() - c0
            if mode != "stock" and used is not None:
                _wait_exit(used.native_thread_id)
            if i > 0:
                times[mode].append(dt)
                cpu[mode].append(dc)
                threads[mode].append(_thread_delta(th0, _thread_cpu(), dc))
                if mode != "stock" and used is not None:
                    writer_busy[mode].append(used.busy_seconds)
                    writer_cpu[mode].append(used.cpu_seconds)
                    writer_tasks[mode].append({k: round(v, 3) for k, v in used.cpu_by_task.items()})
            outputs[mode] = out
            if (store / "maps.zarr").exists():
                store_bytes[mode] = sum(p.stat().st_size for p in (store / "maps.zarr").rglob("*") if p.is_file())
                shutil.rmtree(store)
    a = outputs["stock"]
    identical = all(bool(torch.equal(a, outputs[m])) if torch.is_tensor(a) else bool(np.array_equal(a, outputs[m]))
                    for m in captures)
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    first = next(iter(captures))
    return {"model": model, "device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
            "torch": torch.__version__, "steps": kwargs.get("num_inference_steps"), "repeats": repeats,
            "median_s": med, "raw_s": times, "ratio": med[first] / med["stock"] - 1.0,
            "ratios": {m: med[m] / med["stock"] - 1.0 for m in captures},
            "cpu_ratios": {m: med_cpu[m] / med_cpu["stock"] - 1.0 for m in captures},
            "median_cpu_s": med_cpu, "raw_cpu_s": cpu, "cpu_ratio": med_cpu[first] / med_cpu["stock"] - 1.0,
            "paired_ratios": {m: _paired(times[m], times["stock"]) for m in captures},
            "paired_cpu_ratios": {m: _paired(cpu[m], cpu["stock"]) for m in captures},
            "self_prop_steps": self_prop_steps, "store_bytes_on_disk": store_bytes.get(first, 0),
            "store_bytes": store_bytes,
            "writer_busy_s": writer_busy, "writer_cpu_s": writer_cpu, "writer_cpu_by_task_s": writer_tasks,
            "thread_cpu_s": threads,
            "output_identical": identical}
