"""The self-prop estimator's cost per layer at full size, and exact ways to cut it, timed side by side on a GPU.

``propagate`` (capture/selfattn.py) computes Ā·m for every cross head's maps: at Wan2.1-1.3B (32,760 tokens, 12
self-attention heads of 128, 12 cross heads × 8 words = 96 map columns) one float16 fused attention per layer with
the 96 columns padded to the head width 128. Variants, each exact (same math, float32 accumulation):

- ``head_mean``: propagate only the mean over cross heads of the maps (8 columns). Ā is the same for every cross
  head and linear, so mean_h(Ā m_h) = Ā (mean_h m_h): exact for every all-heads view (the toy preset, the
  viewer's default, the head_mean summary), not for a single head's self-prop map.
- ``v<N>`` with a kernel that takes value widths below the query's (memory-efficient / cuDNN attention), so the
  product with the maps is N columns wide instead of 128.

    python scripts/bench_self_prop.py [--tokens 32760] [--json self_prop_layer.json]
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def _time(fn, repeats: int) -> tuple[float, list[float]]:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    return sorted(times)[len(times) // 2], times


def narrow(q, k, values: torch.Tensor, backend) -> torch.Tensor:
    """Ā·values [S, C] with the value width C (padded to a multiple of 8) as the kernel's value width."""
    s, h1, d = q.shape
    c = values.shape[1]
    width = -(-c // 8) * 8
    qh = q.transpose(0, 1).unsqueeze(0).to(torch.float16)
    kh = k.transpose(0, 1).unsqueeze(0).to(torch.float16)
    v = F.pad(values, (0, width - c)).to(torch.float16).unsqueeze(0).unsqueeze(0).expand(1, h1, s, width)
    with sdpa_kernel([backend]):
        out = F.scaled_dot_product_attention(qh, kh, v.contiguous())
    return out[0].float().mean(0)[:, :c]


def main() -> None:
    from attnscope.capture.selfattn import propagate

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=32760)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--words", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json")
    args = parser.parse_args()
    g = torch.Generator(device="cuda").manual_seed(0)
    s, h, d = args.tokens, args.heads, 128
    q, k = (torch.randn(s, h, d, generator=g, device="cuda").to(torch.bfloat16) for _ in range(2))
    maps = torch.rand(h, args.words, s, generator=g, device="cuda") * 0.1
    ref = propagate(q, k, maps)  # [H2, W, S]
    ref_mean = ref.mean(0)
    cases = {"current (96 columns, padded to 128)": (lambda: propagate(q, k, maps), ref),
             "head_mean (8 columns, padded to 128)": (lambda: propagate(q, k, maps.mean(0, keepdim=True))[0],
                                                      ref_mean)}
    values = maps.flatten(0, 1).T.contiguous()
    mean_values = maps.mean(0).T.contiguous()
    for name, backend in (("efficient", SDPBackend.EFFICIENT_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
        cases[f"{name}, 96 columns"] = (lambda b=backend: narrow(q, k, values, b).T.unflatten(0, maps.shape[:2]), ref)
        cases[f"{name}, head_mean 8 columns"] = (lambda b=backend: narrow(q, k, mean_values, b).T, ref_mean)
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "tokens": s, "heads": h,
              "words": args.words, "cases": {}}
    for name, (fn, want) in cases.items():
        try:
            med, raw = _time(fn, args.repeats)
            err = float((fn() - want).abs().max())
        except RuntimeError as exc:  # a backend that refuses these shapes
            result["cases"][name] = {"error": str(exc).splitlines()[0][:200]}
            print(f"{name:40s} not run: {str(exc).splitlines()[0][:120]}")
            continue
        result["cases"][name] = {"median_ms": round(med, 3), "raw_ms": [round(t, 3) for t in raw],
                                 "max_abs_diff_vs_current": err}
        print(f"{name:40s} {med:8.2f} ms per layer   max |diff| vs current {err:.2e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
