"""Synthetic Run folders with known answers: word i is a Gaussian blob at a chosen latent (frame, y, x).

Tests use them to check that renders put the hot region where it belongs; the viewer uses them to develop
without a model. The blob sharpens over the denoising steps (diffuse to coherent, like real runs), its strength
varies by layer and head (so contact sheets differ per panel), and the video shows one shape per word at the
blob's position, brightest in the pixel frames that the blob's latent frame encodes. Probe points get
self-attention rows that are Gaussians around the point itself, normalized to sum to one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..store import RunWriter
from ..video import write_mp4
from .upscale import latent_frame_index

Blob = tuple[int, int, int]
COLORS = np.array([[225, 225, 225], [150, 150, 150], [190, 190, 190], [110, 110, 110]], np.float32)  # grey: word colours stay unambiguous
TIME_SIGMA = 0.7  # latent frames
BASE = 0.002  # probability everywhere outside the blobs


def default_blobs(words: Sequence[str], grid: tuple[int, int, int]) -> dict[str, Blob]:
    """Spread the words over time and space: word i at frame ~(i+1)/(n+1) of the video, alternating corners."""
    f, y, x = grid
    n = len(words)
    out = {}
    for i, word in enumerate(words):
        fy = 0.25 + 0.5 * (i % 2)
        fx = 0.25 + 0.5 * ((i // 2 + i) % 2)
        out[word] = (round((i + 1) * (f - 1) / (n + 1)), int(fy * (y - 1) + 0.5), int(fx * (x - 1) + 0.5))
    return out


def blob_maps(grid: tuple[int, int, int], blobs: Sequence[Blob], sigma: float) -> np.ndarray:
    """Unit-peak Gaussians: float32 [word, F, Y, X]."""
    f, y, x = (np.arange(n, dtype=np.float32) for n in grid)
    out = []
    for bf, by, bx in blobs:
        gt = np.exp(-((f - bf) ** 2) / (2 * TIME_SIGMA**2))
        gy = np.exp(-((y - by) ** 2) / (2 * sigma**2))
        gx = np.exp(-((x - bx) ** 2) / (2 * sigma**2))
        out.append(gt[:, None, None] * gy[None, :, None] * gx[None, None, :])
    return np.stack(out)


def _video(grid, pixel, words, blobs) -> np.ndarray:
    frames, height, width = pixel
    t_latent = latent_frame_index(frames, grid[0])
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    background = np.stack([18 + 30 * yy / height, 18 + 20 * xx / width, 30 + 25 * (1 - yy / height)], -1)
    video = np.broadcast_to(background, (frames, height, width, 3)).copy()
    token_h, token_w = height / grid[1], width / grid[2]
    radius = 1.6 * min(token_h, token_w)
    for i, word in enumerate(words):
        bf, by, bx = blobs[i]
        cy, cx = (by + 0.5) * token_h, (bx + 0.5) * token_w
        if "square" in word:
            shape = (np.abs(yy - cy) <= radius * 0.85) & (np.abs(xx - cx) <= radius * 0.85)
        else:
            shape = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
        bright = 0.35 + 0.65 * np.exp(-((t_latent - bf) ** 2) / (2 * TIME_SIGMA**2))  # [T]
        color = COLORS[i % len(COLORS)]
        video[:, shape] = bright[:, None, None] * color
    return np.clip(video, 0, 255).astype(np.uint8)


def _preview(video: np.ndarray, step: int, num_steps: int, rng: np.random.Generator) -> np.ndarray:
    """A fake x0 estimate: the video under noise that fades over the steps, long side <= 160 px."""
    factor = max(1, int(np.ceil(max(video.shape[1:3]) / 160)))
    small = video[:, ::factor, ::factor].astype(np.float32)
    clean = (step + 1) / num_steps
    coarse = rng.uniform(0, 255, (small.shape[0], small.shape[1] // 8 + 1, small.shape[2] // 8 + 1, 1))
    noise = coarse.repeat(8, axis=1).repeat(8, axis=2)[:, : small.shape[1], : small.shape[2]]  # blotchy, like x0
    noisy = clean * small + (1 - clean) * noise
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _probe_rows(grid: tuple[int, int, int], points: Sequence[Blob], sigma: float) -> np.ndarray:
    """Each point's self-attention row: a Gaussian around the point, summing to one, float32 [point, F, Y, X]."""
    rows = blob_maps(grid, points, sigma)
    return (rows / rows.sum(axis=(1, 2, 3), keepdims=True)).astype(np.float32)


def make_synthetic_run(
    path: str | Path,
    *,
    grid: tuple[int, int, int] = (5, 16, 16),
    num_steps: int = 4,
    layers: int = 2,
    heads: int = 2,
    words: Sequence[str] = ("circle", "square"),
    blobs: Mapping[str, Blob] | Sequence[Blob] | None = None,
    video: bool = True,
    previews: bool = True,
    pixel: tuple[int, int, int] | None = None,
    overwrite: bool = True,
    probe_points: Sequence[Blob] = (),
) -> Path:
    """Write a Run folder whose maps are known Gaussian blobs; returns its path.

    ``blobs`` gives each word's latent (frame, y, x) (default: :func:`default_blobs`). ``pixel`` is the video's
    (frames, height, width); default Wan2.1's geometry, 4(F'-1)+1 frames and 16 px per token. ``probe_points``
    adds the ``probe`` array: each point's row a unit-sum Gaussian centred on the point.
    """
    path = Path(path)
    words = list(words)
    if blobs is None:
        blobs = default_blobs(words, grid)
    positions = [tuple(blobs[w]) for w in words] if isinstance(blobs, Mapping) else [tuple(b) for b in blobs]
    pixel = pixel or (4 * (grid[0] - 1) + 1, grid[1] * 16, grid[2] * 16)
    meta = {
        "prompt": "a " + " and a ".join(words), "negative_prompt": None, "seed": 0,
        "model": {"id": "synthetic", "variant": "t2v", "config_hash": None}, "pipeline": "synthetic",
        "pixel": {"frames": pixel[0], "height": pixel[1], "width": pixel[2], "fps": 16},
        "vae": {"temporal": 4, "spatial": 8}, "patch": [1, 2, 2], "prompt_tokens": len(words) + 2,
        "words": [{"label": w, "text": w, "token_indices": [i + 1], "tokens": [w]} for i, w in enumerate(words)],
        "synthetic": {"blobs": {w: list(b) for w, b in zip(words, positions, strict=True)}},
    }
    points = [tuple(p) for p in probe_points]
    if points:
        meta["capture"] = {"probe_points": [list(p) for p in points]}
    writer = RunWriter(path, meta, words=words, layers=list(range(layers)), heads=list(range(heads)),
                       num_steps=num_steps, grid=grid, overwrite=overwrite, probes=len(points))
    head_gain = 0.4 + 0.6 * (np.arange(heads, dtype=np.float32) + 1) / heads  # [head]
    rng = np.random.default_rng(0)
    clip = _video(grid, pixel, words, positions) if (video or previews) else None
    for step in range(num_steps):
        sigma = 1.2 + 2.5 * (1 - step / max(num_steps - 1, 1))  # tokens: diffuse early, sharp late
        shape = blob_maps(grid, positions, sigma)  # [word, F, Y, X]
        for layer in range(layers):
            layer_gain = 0.5 + 0.5 * (layer + 1) / layers
            amp = 0.25 * layer_gain * head_gain  # [head]
            maps = BASE + amp[:, None, None, None, None] * shape[None]  # [head, word, F, Y, X]
            mass = np.full((heads, *grid), 0.3 + 0.4 * (layer + 1) / layers, np.float32)
            extras = {"probe": _probe_rows(grid, points, sigma * layer_gain)} if points else None
            writer.write(step, layer, maps.astype(np.float16), mass.astype(np.float16), extras)
        if previews:
            writer.write_preview(step, _preview(clip, step, num_steps, rng))
        writer.end_step(step, {"timestep": 1000.0 * (1 - step / num_steps), "sigma": 1 - step / num_steps,
                               "expert": "transformer"})
    writer.close(complete=True)
    if video:
        write_mp4(path / "video.mp4", clip, fps=16)
    return path
