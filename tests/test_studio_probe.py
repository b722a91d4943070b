"""Probe a pixel on a synthetic run: the token under the click, each word's value over steps (and per layer),
equal to the map render.select gives at that token."""

from __future__ import annotations

import numpy as np
import pytest

from attnscope import open_run
from attnscope.app import probe
from attnscope.errors import SelectionError
from attnscope.render import select
from attnscope.render.synthetic import make_synthetic_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "shapes"
    make_synthetic_run(path, grid=(5, 8, 8), num_steps=4, layers=3, heads=2, words=("circle", "square"))
    return open_run(path)


def test_point_series_reads_the_token_under_the_pixel(run):
    t, i, j = probe.token_at(run, 8, 10, 100)
    series = probe.point_series(run, 8, 10, 100)
    assert series.dims == ("word", "step") and list(series["word"].values) == ["circle", "square"]
    expected = select(run, "square", 2, "mean", "mean").values[t, i, j]
    assert np.isclose(float(series.sel(word="square", step=2)), expected, rtol=1e-5)
    layered = probe.point_series(run, 8, 10, 100, per_layer=True)
    assert layered.sizes["layer"] == 3
    assert "| circle |" in probe.table(series) and "| square |" in probe.table(layered)
    assert probe.figure(layered, "here").axes and probe.figure(series, "here").axes


def test_a_pixel_outside_the_video_says_so(run):
    with pytest.raises(SelectionError, match="click inside"):
        probe.token_at(run, 0, 10_000, 0)
