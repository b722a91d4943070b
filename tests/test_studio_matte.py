"""Mattes: the run's frame count and pixel size, 16-bit PNGs, grayscale MP4, RGBA overlays."""

from __future__ import annotations

import numpy as np
from PIL import Image

from attnscope.render.geometry import geometry
from attnscope.render.matte import matte_frames, write_matte_mp4, write_matte_pngs, write_rgba_pngs
from attnscope.render.synthetic import make_synthetic_run
from attnscope.store import open_run
from attnscope.video import read_mp4


def test_matte_has_the_runs_frames_and_size_in_every_format(tmp_path):
    run = open_run(make_synthetic_run(tmp_path / "run", grid=(3, 8, 8), num_steps=2, layers=2, heads=2,
                                      words=("circle", "square")))
    geo = geometry(run)
    matte = matte_frames(run, "circle", norm="frame")
    assert matte.shape == (geo.frames, geo.height, geo.width)
    assert matte.min() >= 0.0 and matte.max() <= 1.0 and matte.max() > 0.9
    video = read_mp4(write_matte_mp4(tmp_path / "m.mp4", matte, geo.fps))
    assert video.shape[:3] == matte.shape
    assert np.abs(video[..., 0].astype(float) / 255 - matte).mean() < 0.03
    pngs = write_matte_pngs(tmp_path / "png", matte)
    assert len(pngs) == geo.frames
    first = np.asarray(Image.open(pngs[0]))
    assert first.dtype == np.uint16 and first.shape == matte.shape[1:]
    rgba = write_rgba_pngs(tmp_path / "rgba", matte)
    assert Image.open(rgba[0]).mode == "RGBA" and len(rgba) == geo.frames
