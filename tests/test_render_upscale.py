"""Latent grid -> pixels: Wan's causal time mapping and smooth spatial upsampling put values where they belong."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnscope.render.upscale import latent_frame_index, time_weights, upscale, upscale_space


def test_causal_vae_frame_mapping():
    idx = latent_frame_index(17, 5)
    assert idx[0] == 0
    for i in range(1, 5):  # latent frame i <-> pixel frames 4i-3 .. 4i
        assert list(np.flatnonzero(idx == i)) == list(range(4 * i - 3, 4 * i + 1))
    assert latent_frame_index(30, 5).max() == 4  # longer videos clamp to the last latent frame


def test_linear_time_hits_latent_centres_and_stays_between_neighbours():
    a, b, w = time_weights(17, 5, time="linear")
    u = a + w
    assert u[0] == 0
    # latent centres: 0, 2.5, 6.5, 10.5, 14.5 (latent i >= 1 covers pixel frames 4i-3 .. 4i)
    assert u[2] == pytest.approx(2 / 2.5)
    assert u[6] == pytest.approx(1 + (6 - 2.5) / 4)
    assert np.all(np.diff(u) >= 0) and u[-1] == pytest.approx(4.0)


def test_token_lands_on_its_pixel_block_and_frames():
    grid = np.zeros((5, 6, 7), np.float32)
    f, y, x = 2, 3, 5
    grid[f, y, x] = 1.0
    up = upscale(grid, (6 * 16, 7 * 16), device="cpu").numpy()  # [17, 96, 112]
    assert up.shape == (17, 96, 112)
    hot_frames = np.flatnonzero(up.max(axis=(1, 2)) > 0.5)
    assert list(hot_frames) == [5, 6, 7, 8]  # 4f-3 .. 4f
    peak = np.unravel_index(up[6].argmax(), up[6].shape)
    assert 16 * y <= peak[0] < 16 * (y + 1) and 16 * x <= peak[1] < 16 * (x + 1)
    block = up[6, 16 * y + 6:16 * y + 10, 16 * x + 6:16 * x + 10]
    assert block.min() > 0.8  # the block's centre carries the token's value
    assert up[6, : 16 * (y - 1)].max() == 0  # nothing leaks beyond the neighbouring token


def test_bicubic_is_clamped_and_frames_subset_matches_full():
    rng = np.random.default_rng(0)
    grid = rng.random((3, 4, 5)).astype(np.float32)
    cubic = upscale_space(grid, (32, 40), mode="bicubic", device="cpu")
    assert cubic.min() >= grid.min() - 1e-6 and cubic.max() <= grid.max() + 1e-6
    for time in ("hold", "linear"):
        full = upscale(grid, (32, 40), time=time, device="cpu")
        part = upscale(grid, (32, 40), time=time, frames=[0, 4, 8], device="cpu")
        torch.testing.assert_close(part, full[[0, 4, 8]])


def test_leading_dims_are_kept():
    grid = np.zeros((2, 3, 5, 4, 4), np.float32)
    assert tuple(upscale(grid, (8, 8), device="cpu").shape) == (2, 3, 17, 8, 8)
