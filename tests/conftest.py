"""Shared fixtures: tiny random Wan pipelines (no hub) and small generation settings."""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# CPU results depend on the thread count (README: Reproducibility): a fixed one, which neither OpenMP nor MKL may
# lower per call. Set before torch loads MKL.
os.environ.setdefault("OMP_DYNAMIC", "FALSE")
os.environ.setdefault("MKL_DYNAMIC", "FALSE")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)


@contextmanager
def torch_threads(n: int):
    """Run a block with torch's CPU thread count at ``n`` (what a sweep worker used), then restore it."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_pipes():
    from attnscope.models.tiny import VARIANTS, build_tiny_pipeline

    pipes = {v: build_tiny_pipeline(v) for v in VARIANTS}
    for p in pipes.values():
        p.set_progress_bar_config(disable=True)
    return pipes


def tiny_call_kwargs(variant: str, seed: int = 0, **overrides):
    """Arguments for a fast tiny generation of ``variant`` (I2V gets a seeded input image)."""
    from PIL import Image

    kw = dict(num_frames=9, height=32, width=64, num_inference_steps=3, guidance_scale=4.0, output_type="np",
              generator=torch.Generator().manual_seed(seed))
    if variant == "i2v":
        rng = np.random.default_rng(0)
        kw["image"] = Image.fromarray((rng.random((32, 64, 3)) * 255).astype("uint8"))
    kw.update(overrides)
    return kw


# ---- browser tests (Debian's Chromium through Playwright) ------------------------------------------------------
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium "
                       "(apt-get install -y chromium)"),
]


def free_port() -> int:
    """A loopback port nobody listens on, for a test's viewer server."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

