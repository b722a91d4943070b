"""Frame builders on a synthetic run with known blobs: hot regions at the right pixels and frames."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch

from attnscope.errors import SelectionError
from attnscope.render import (
    colorize,
    heatmap_frames,
    overlay_frames,
    segmentation_frames,
    select,
    timeline_frames,
    word_colors,
)
from attnscope.render.colors import colorize_torch
from attnscope.render.frames import blend, blend_torch
from attnscope.render.synthetic import make_synthetic_run
from attnscope.store import open_run

BLOBS = {"circle": (1, 4, 4), "square": (3, 11, 11)}  # latent (frame, y, x) on a 5x16x16 grid


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return open_run(make_synthetic_run(tmp_path_factory.mktemp("frames") / "run", blobs=BLOBS))


def _hot(frame_values: np.ndarray) -> tuple[int, int]:
    return np.unravel_index(int(frame_values.argmax()), frame_values.shape)


def test_colorize_is_the_matplotlib_colormap():
    values = np.linspace(0, 1, 256, dtype=np.float32)
    expected = (matplotlib.colormaps["viridis"](values)[:, :3] * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(colorize(values, "viridis"), expected)
    np.testing.assert_array_equal(colorize_torch(torch.from_numpy(values), "viridis").numpy(), expected)
    assert colorize(torch.from_numpy(values), "magma").shape == (256, 3)
    with pytest.raises(SelectionError, match="inferno, magma, viridis, turbo"):
        colorize(values, "rainbowish")


def test_heatmap_hot_region_at_blob_pixels_and_frames(run):
    frames = heatmap_frames(run, "circle", colorbar=False, cmap="gray")  # gray: brightness = value
    assert frames.shape == (17, 256, 256, 3)
    brightness = frames[..., 0].astype(np.float32)
    per_frame = brightness.max(axis=(1, 2))
    assert set(np.flatnonzero(per_frame == per_frame.max())) == {1, 2, 3, 4}  # latent frame 1 -> pixels 1..4
    y, x = _hot(brightness[2])
    assert 4 * 16 <= y < 5 * 16 and 4 * 16 <= x < 5 * 16
    single = heatmap_frames(run, "circle", colorbar=False, cmap="gray", frames=[2])
    np.testing.assert_array_equal(single[0], frames[2])


def test_colorbar_is_drawn_in_the_frame(run):
    plain = heatmap_frames(run, "circle", colorbar=False, frames=[0])
    barred = heatmap_frames(run, "circle", colorbar=True, frames=[0])
    diff = np.abs(plain.astype(int) - barred.astype(int)).sum(-1)[0]
    rows, cols = np.nonzero(diff)
    assert rows.min() > 256 // 2 and cols.max() > 256 - 20  # bottom-right box
    assert diff[: 256 // 2].sum() == 0


def test_overlay_blends_on_the_video(run):
    video = overlay_frames(run, "circle", alpha=0.0, colorbar=False)
    from attnscope.video import read_mp4

    np.testing.assert_array_equal(video, read_mp4(run.video_path))  # alpha 0: the video itself
    heat = overlay_frames(run, "square", alpha=1.0, colorbar=False, cmap="gray")
    y, x = _hot(heat[12, ..., 0].astype(np.float32))  # square's latent frame 3 -> pixel frames 9..12
    assert 11 * 16 <= y < 12 * 16 and 11 * 16 <= x < 12 * 16


def test_blend_paths_agree():
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (5, 8, 10, 3), dtype=np.uint8)
    colors = torch.from_numpy(rng.integers(0, 256, (2, 8, 10, 3), dtype=np.uint8))
    mask = torch.from_numpy(rng.random((2, 8, 10)) > 0.5)
    inverse, frames = np.array([0, 0, 1, 1]), np.array([1, 2, 3, 4])
    for m in (None, mask):
        fast = blend(video, colors, inverse, frames, 0.6, m)
        ref = blend_torch(video, colors, inverse, frames, 0.6, m)
        assert np.abs(fast.astype(int) - ref.astype(int)).max() <= 1
    expected = np.where(mask.numpy()[inverse][..., None], fast, video[frames])
    np.testing.assert_array_equal(fast, expected)  # masked-out pixels are the video, untouched


def test_segmentation_picks_the_right_word(run):
    frames = segmentation_frames(run, ["circle", "square"], alpha=1.0, legend=False, threshold=0.5)
    colors = word_colors(2)
    circle_px = frames[2, 4 * 16 + 8, 4 * 16 + 8]
    square_px = frames[12, 11 * 16 + 8, 11 * 16 + 8]
    np.testing.assert_array_equal(circle_px, colors[0])
    np.testing.assert_array_equal(square_px, colors[1])
    from attnscope.video import read_mp4

    corner = read_mp4(run.video_path)[2, 250, 2]  # far from both blobs: below threshold, video shows
    np.testing.assert_array_equal(frames[2, 250, 2], corner)


def test_segmentation_prefers_the_stronger_word_where_both_attend(tmp_path):
    path = make_synthetic_run(tmp_path / "overlap", blobs={"circle": (2, 8, 6), "square": (2, 8, 10)},
                              video=False, previews=False)
    run = open_run(path)
    frames = segmentation_frames(run, ["circle", "square"], legend=False, threshold=0.2)
    colors = word_colors(2)
    np.testing.assert_array_equal(frames[8, 8 * 16 + 8, 5 * 16], colors[0])  # left of the middle: circle
    np.testing.assert_array_equal(frames[8, 8 * 16 + 8, 11 * 16], colors[1])
    assert (frames[0, :20, :20] == 0).all()  # no video: transparent is black


def test_timeline_shows_each_step_beside_its_preview(run):
    frames = timeline_frames(run, "circle", colorbar=False, step_seconds=0.25, frame=2)
    hold = 4  # 0.25 s at 16 fps
    assert frames.shape == (4 * hold, 256, 512, 3)  # 4 steps, preview | map
    maps = select(run, "circle", keep=("step",))
    away = [maps.isel(step=s, frame=1, y=4, x=7).item() for s in range(4)]  # 3 tokens right of the blob
    assert away[0] > 2 * away[-1]  # the synthetic blob is diffuse early and sharp late
    right = frames[:, 4 * 16 + 8, 256 + 7 * 16 + 8].astype(int).sum(-1)  # that spot in the map panel
    assert right[0] > right[-1]
    left = frames[:, 4 * 16 + 8, 4 * 16 + 8].astype(int)  # the preview panel: the light-grey circle emerges
    assert left[-1].min() > 180
    every = timeline_frames(run, "circle", colorbar=False, frames_in_steps=True, step="2-3")
    assert every.shape == (2 * 17, 256, 512, 3)


def test_overlay_without_video_names_the_alternative(tmp_path):
    run = open_run(make_synthetic_run(tmp_path / "novideo", video=False, previews=False))
    with pytest.raises(SelectionError, match=r"no video.mp4.*--kind heatmap"):
        overlay_frames(run, "circle")
    with pytest.raises(SelectionError, match="frames 0-16"):
        heatmap_frames(run, "circle", frames=[40])
    assert timeline_frames(run, "circle").shape[2] == 256  # no previews: the map alone
