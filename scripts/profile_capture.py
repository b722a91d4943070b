"""Where does capture's time go on the GPU? One stock and one captured forward at a bench config, under
torch.profiler; prints the ops with the largest CUDA and CPU time in each, to $OUT or the current folder.

    python scripts/profile_capture.py --config wan2.1-1.3b
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="wan2.1-1.3b")
    parser.add_argument("--writer", default="thread")
    parser.add_argument("--sync-debug", action="store_true",
                        help="instead of profiling, print where a captured forward synchronizes the GPU")
    args = parser.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile

    from attnscope.bench.capture import BenchPipe, _forward, build
    from attnscope.tracing import Trace

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    transformer, inputs = build(args.config, device, dtype)
    tr = Trace(BenchPipe(transformer), store=Path(tempfile.mkdtemp()) / "store", overwrite=True,
               writer=args.writer)
    tr.set_words(inputs.words, inputs.prompt_tokens)
    out = Path(os.environ.get("OUT", "."))
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with torch.no_grad():
        for step in range(2):  # warm-up: kernels, pinned buffers, the writer
            _forward(transformer, inputs, "cond", step, 10)
            tr.install()
            _forward(transformer, inputs, "cond", step, 10)
            tr.uninstall()
        torch.cuda.synchronize() if device == "cuda" else None
        if args.sync_debug:
            _sync_sites(lambda: _forward(transformer, inputs, "cond", 5, 10), tr)
            return
        for name, captured in (("stock", False), ("capture", True)):
            if captured:
                tr.install()
            with profile(activities=activities) as prof:
                _forward(transformer, inputs, "cond", 5 if captured else 4, 10)
                torch.cuda.synchronize() if device == "cuda" else None
            if captured:
                tr.uninstall()
            key = "self_cuda_time_total" if device == "cuda" else "self_cpu_time_total"
            text = (f"== {name}: by {key}\n" + prof.key_averages().table(sort_by=key, row_limit=25)
                    + f"\n== {name}: by self_cpu_time_total\n"
                    + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
            print(text)
            (out / f"profile_{name}.txt").write_text(text)
        tr.finish()


def _sync_sites(forward, tr) -> None:
    """Run one captured forward with torch's sync debug mode; print each distinct stack that synchronized."""
    import collections
    import traceback
    import warnings

    import torch

    sites: collections.Counter[str] = collections.Counter()

    def show(message, category, filename, lineno, file=None, line=None):
        sites["".join(traceback.format_stack(limit=12)[:-2])] += 1

    warnings.showwarning = show
    warnings.simplefilter("always")
    tr.install()
    torch.cuda.set_sync_debug_mode("warn")
    forward()
    torch.cuda.set_sync_debug_mode(0)
    tr.uninstall()
    for stack, count in sites.most_common(5):
        print(f"== {count} synchronizations from\n{stack}")
    print(f"{sum(sites.values())} synchronizations in one captured forward")


if __name__ == "__main__":
    main()
