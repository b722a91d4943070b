"""``attnscope bench capture``: the cost of capture on one transformer forward, side by side.

Three modes run interleaved on the same inputs: ``stock`` (no hooks), ``attnscope`` (the real trace path:
exact probabilities for the chosen words, every layer and head, streamed to a zarr store) and ``naive`` (full
fp32 probabilities over all keys materialized and copied to the host per layer, what generic tools do).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, WanTransformer3DModel

from ..capture.processor import TensorGrab
from ..models.wan import cross_attentions
from ..tracing import Trace
from .configs import CONFIGS, SIZES


class BenchPipe:
    """The few pipeline attributes a trace needs around a bare transformer."""

    def __init__(self, transformer: torch.nn.Module) -> None:
        self.transformer = transformer
        self.text_encoder = None
        self.tokenizer = None
        self.scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
        self.config = {}


class NaiveProcessor:
    """Stock output, plus every layer's full probability tensor in fp32 copied to the host."""

    def __init__(self, stock, grab: TensorGrab) -> None:
        self.stock, self.grab = stock, grab
        self.sink: list[torch.Tensor] = []

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None, **kw):
        self.grab.armed = True
        out = self.stock(attn, hidden_states, encoder_hidden_states, attention_mask, rotary_emb, **kw)
        self.grab.armed = False
        q = self.grab.outputs["q"][0].unflatten(-1, (attn.heads, -1)).float().transpose(0, 1)  # [H, S, D]
        k = self.grab.outputs["k"][0].unflatten(-1, (attn.heads, -1)).float().permute(1, 2, 0)  # [H, D, L]
        probs = torch.softmax(torch.bmm(q, k) / q.shape[-1] ** 0.5, dim=-1)
        self.sink = [probs.cpu()]
        return out


@dataclass
class Inputs:
    latents: torch.Tensor
    context: torch.Tensor
    timestep: torch.Tensor
    words: dict[str, list[int]]
    prompt_tokens: int
    tokens: int = field(default=0)


def make_transformer(config: str, device: str, dtype: torch.dtype) -> WanTransformer3DModel:
    """Random weights, cast like ``from_pretrained(torch_dtype=...)``: norms and embedders stay float32."""
    with torch.device(device):
        transformer = WanTransformer3DModel(**CONFIGS[config]).eval()
    keep = tuple(getattr(transformer, "_keep_in_fp32_modules", None) or ())
    for name, module in transformer.named_modules():
        if not any(part in keep for part in name.split(".")):
            for param in module.parameters(recurse=False):
                param.data = param.data.to(dtype)
    return transformer


def build(config: str, device: str, dtype: torch.dtype, frames: int | None = None, height: int | None = None,
          width: int | None = None, n_words: int = 8, prompt_tokens: int = 24, seed: int = 0):
    """A random full-size transformer and inputs at the config's benchmark size."""
    torch.manual_seed(seed)
    transformer = make_transformer(config, device, dtype)
    f, h, w, spatial = SIZES[config]
    f, h, w = frames or f, height or h, width or w
    cfg = CONFIGS[config]
    g = torch.Generator(device=device).manual_seed(seed)
    latents = torch.randn(1, cfg["in_channels"], (f - 1) // 4 + 1, h // spatial, w // spatial, generator=g,
                          device=device, dtype=dtype)
    context = torch.zeros(1, 512, cfg["text_dim"], device=device, dtype=dtype)  # Wan zero-pads the text to 512
    context[:, :prompt_tokens] = torch.randn(1, prompt_tokens, cfg["text_dim"], generator=g, device=device,
                                             dtype=dtype)
    words = {f"w{i}": [1 + i * 2] for i in range(n_words)}
    grid_tokens = latents.shape[2] * latents.shape[3] // 2 * latents.shape[4] // 2
    return transformer, Inputs(latents, context, torch.tensor([500.0], device=device), words, prompt_tokens,
                               grid_tokens)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _forward(transformer, inputs: Inputs, branch: str, step: int, n_steps: int):
    with transformer.cache_context(branch, step_index=step, num_inference_steps=n_steps, sigma=0.5):
        return transformer(hidden_states=inputs.latents, timestep=inputs.timestep,
                           encoder_hidden_states=inputs.context, return_dict=False)[0]


def run_capture_bench(config: str = "wan2.1-1.3b", device: str | None = None, repeats: int = 5, warmup: int = 1,
                      n_words: int = 8, naive: bool = True, frames: int | None = None, height: int | None = None,
                      width: int | None = None, store_dir: str | None = None, writer: str = "auto",
                      self_prop: bool = False) -> dict:
    """Median per-forward times of stock / attnscope / naive, interleaved; ratios, memory and bytes.

    ``self_prop`` adds a mode capturing the self-attention-propagated maps too (``trace(self_prop=True)``), and
    the half-precision propagation's error against the float32 one on this config's shapes.
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    transformer, inputs = build(config, device, dtype, frames, height, width, n_words)
    n_steps = warmup + repeats
    names = ["stock", "stock_uncond", "attnscope", "attnscope_uncond", "naive"]
    times: dict[str, list[float]] = {name: [] for name in names + (["self_prop", "self_prop_uncond"] if self_prop else [])}
    peak: dict[str, int] = {}
    root = Path(store_dir or tempfile.mkdtemp(prefix="attnscope-bench-"))
    pipe = BenchPipe(transformer)
    tr = Trace(pipe, store=root / f"{config}-store", overwrite=True, writer=writer)
    tr.set_words(inputs.words, inputs.prompt_tokens)
    tr_sp = Trace(pipe, store=root / f"{config}-store-self-prop", overwrite=True, writer=writer, self_prop=True)
    tr_sp.set_words(inputs.words, inputs.prompt_tokens)
    stock_out = None
    outputs: dict[str, torch.Tensor] = {}

    def timed(mode: str, fn, i: int):
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() if device.startswith("cuda") else 0
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        dt = time.perf_counter() - t0
        if i >= warmup:
            times[mode].append(dt)
            if device.startswith("cuda"):
                peak[mode] = max(peak.get(mode, 0), torch.cuda.max_memory_allocated() - base)
        return out

    def stock(i: int) -> None:
        nonlocal stock_out
        stock_out = timed("stock", lambda: _forward(transformer, inputs, "cond", i, n_steps), i)
        timed("stock_uncond", lambda: _forward(transformer, inputs, "uncond", i, n_steps), i)

    def traced(trace: Trace, mode: str):
        """A mode running the CFG pair with ``trace`` installed; its cond output is kept for the identity check."""
        def run(i: int) -> None:
            trace.install()
            try:
                outputs[mode] = timed(mode, lambda: _forward(transformer, inputs, "cond", i, n_steps), i)
                timed(f"{mode}_uncond", lambda: _forward(transformer, inputs, "uncond", i, n_steps), i)
            finally:
                trace.uninstall()

        return run

    def naive_mode(i: int) -> None:
        procs = _install_naive(transformer)
        try:
            timed("naive", lambda: _forward(transformer, inputs, "cond", i, n_steps), i)
        finally:
            _remove_naive(transformer, procs)

    modes = ([stock, traced(tr, "attnscope")] + ([traced(tr_sp, "self_prop")] if self_prop else [])
             + ([naive_mode] if naive else []))
    with torch.no_grad():
        for i in range(n_steps):
            # rotate the order every repeat so no mode always runs first (clocks, caches, allocator state)
            for mode in modes[i % len(modes):] + modes[: i % len(modes)]:
                mode(i)
        t0 = time.perf_counter()
        writer = tr.writer
        tr.finish()
        drain = time.perf_counter() - t0
        tr_sp.finish()
    identical = bool(torch.equal(stock_out, outputs["attnscope"]))
    med = {k: statistics.median(v) for k, v in times.items() if v}
    store = root / f"{config}-store" / "maps.zarr"
    written = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
    layers = len(transformer.blocks)
    heads = transformer.config.num_attention_heads
    captured = repeats * layers * heads * (n_words + 1) * inputs.tokens * 2
    result = {
        "config": config, "device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
        "torch": torch.__version__, "dtype": str(dtype), "video_tokens": inputs.tokens, "words": n_words,
        "repeats": repeats, "median_s": med, "raw_s": times,
        "ratio_forward": med["attnscope"] / med["stock"] - 1.0,
        "ratio_cfg_step": (med["attnscope"] + med["attnscope_uncond"]) / (med["stock"] + med["stock_uncond"]) - 1,
        "ratio_naive_forward": (med["naive"] / med["stock"] - 1.0) if "naive" in med else None,
        "peak_extra_bytes": {k: v - peak.get("stock", 0) for k, v in peak.items()},
        "bytes_captured": captured, "bytes_written": written,
        "writer_busy_s": writer.busy_seconds,
        "write_throughput_MBps": writer.bytes_written / max(writer.busy_seconds, 1e-9) / 1e6,
        "writer_drain_s": drain, "output_identical": identical, "writer": type(writer).__name__,
    }
    if self_prop:
        result.update(
            ratio_self_prop_forward=med["self_prop"] / med["stock"] - 1.0,
            ratio_self_prop_cfg_step=(med["self_prop"] + med["self_prop_uncond"]) / (med["stock"] + med["stock_uncond"]) - 1,
            self_prop_identical=bool(torch.equal(stock_out, outputs["self_prop"])),
            self_prop_half_error=_half_error(transformer, inputs, n_words, device, dtype))
    return result


def _half_error(transformer, inputs: Inputs, n_words: int, device: str, dtype: torch.dtype) -> dict:
    """Largest absolute and relative differences of the half-precision propagation from the float32 one, on
    random query/key of this config's shape (unit-RMS, as after Wan's RMSNorm) and random maps."""
    from ..capture.selfattn import propagate

    heads = transformer.config.num_attention_heads
    d = transformer.config.attention_head_dim
    g = torch.Generator(device=device).manual_seed(0)
    q, k = (torch.randn(inputs.tokens, heads, d, generator=g, device=device).to(dtype) for _ in range(2))
    maps = torch.rand(heads, n_words, inputs.tokens, generator=g, device=device) * 0.1
    exact = propagate(q, k, maps, half=False)
    fast = propagate(q, k, maps, half=True)
    diff = (fast - exact).abs()
    return {"max_abs": float(diff.max()), "max_rel": float((diff / exact.abs().clamp_min(1e-6)).max()),
            "mean_value": float(exact.mean())}


def _install_naive(transformer):
    procs = []
    for attn in cross_attentions(transformer):
        grab = TensorGrab(attn, with_value=False)
        procs.append((attn, attn.processor, grab))
        attn.set_processor(NaiveProcessor(attn.processor, grab))
    return procs


def _remove_naive(transformer, procs) -> None:
    for attn, stock, grab in procs:
        attn.set_processor(stock)
        grab.remove()


def table(result: dict) -> str:
    """A markdown table of one result."""
    med = result["median_s"]
    rows = [
        "| mode | median per forward | vs stock |", "|---|---|---|",
        f"| stock | {med['stock'] * 1e3:.1f} ms | — |",
        f"| attnscope (cond) | {med['attnscope'] * 1e3:.1f} ms | {result['ratio_forward'] * 100:+.2f} % |",
        f"| attnscope CFG step (cond+uncond) | {(med['attnscope'] + med['attnscope_uncond']) * 1e3:.1f} ms | "
        f"{result['ratio_cfg_step'] * 100:+.2f} % |",
    ]
    if result.get("ratio_self_prop_forward") is not None:
        rows.append(f"| attnscope + self-prop CFG step | {(med['self_prop'] + med['self_prop_uncond']) * 1e3:.1f} ms | "
                    f"{result['ratio_self_prop_cfg_step'] * 100:+.2f} % |")
    if result.get("ratio_naive_forward") is not None:
        rows.append(f"| naive full probabilities → host | {med['naive'] * 1e3:.1f} ms | "
                    f"{result['ratio_naive_forward'] * 100:+.1f} % |")
    return "\n".join(rows)
