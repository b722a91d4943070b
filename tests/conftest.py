"""Shared fixtures: tiny random Wan pipelines (no hub) and small generation settings."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(2)


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
