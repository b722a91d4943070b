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


# ---- where a probed point attends in space-time (runs captured with probe points) --------------------------------
PROBED = [(2, 3, 4), (0, 6, 1)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A runs folder: the same synthetic run with probe rows and without."""
    root = tmp_path_factory.mktemp("probed")
    make_synthetic_run(root / "probed", grid=(5, 8, 8), num_steps=3, layers=2, heads=2, probe_points=PROBED)
    make_synthetic_run(root / "plain", grid=(5, 8, 8), num_steps=3, layers=2, heads=2)
    return root


def test_a_click_near_a_probed_point_shows_its_row_per_frame(runs):
    from attnscope.app import spacetime

    run = open_run(runs / "probed")
    assert spacetime.nearest_point(run, (2, 4, 5)) == 0  # one token off in y and x
    assert spacetime.nearest_point(run, (1, 6, 0)) == 1
    assert spacetime.nearest_point(run, (2, 5, 4)) is None  # two rows off
    strip, note = spacetime.view(run, (2, 4, 5), 1, 0)
    assert "token (2, 3, 4)" in note and "step 1, layer 0" in note
    # one panel per latent frame, 5 frames of a 128 px video at 160 px: one row of 160 px panels, a bar beneath
    assert strip.dtype == np.uint8 and strip.shape[1] == 5 * 160 + 4 * spacetime.GAP and strip.shape[0] > 160
    panels = [strip[:160, f * (160 + spacetime.GAP):f * (160 + spacetime.GAP) + 160].astype(int).sum() for f in range(5)]
    assert int(np.argmax(panels)) == 2, "the brightest panel is not the probed point's own frame"
    row = spacetime.row_at(run, 0, 1, 0)
    np.testing.assert_array_equal(row.values, run.probe_rows(point=(2, 3, 4), step=1, layer=0).values)
    mean = spacetime.row_at(run, 0, 2, "mean")
    np.testing.assert_allclose(mean.values, run.probe.isel(point=0).sel(step=2).mean("layer").values, rtol=1e-6)
    np.testing.assert_allclose(float(mean.sum()), 1.0, rtol=1e-5)
    _, default = spacetime.view(run, (2, 3, 4), None, None)
    assert "step 2, mean over layers" in default  # the last finished step, all layers
    missed, far = spacetime.view(run, (4, 0, 7), 1, 0)
    assert missed is None and "No probed point within 1 token" in far and "token (0, 6, 1)" in far


def test_a_run_without_probe_rows_says_how_to_capture_them(runs):
    from attnscope.app import spacetime

    run = open_run(runs / "plain")
    strip, note = spacetime.view(run, (3, 1, 2), 1, 0)
    assert strip is None and "no probe rows" in note and "--probe 3,1,2" in note
    assert "`9, 24, 40` in the Generate tab's probe points box" in note  # that pixel is the token again
    assert probe.token_at(run, 9, 40, 24) == (3, 1, 2)


def test_the_probe_tab_draws_the_chart_and_the_strip(runs):
    from attnscope.app.probe_tab import ProbeHandlers
    from attnscope.app.session import Viewer

    handlers = ProbeHandlers(Viewer(runs))
    fit = handlers.fit("probed")
    assert len(fit) == 10  # frame, picture, point, chart, table, strip, note, step, layer, status
    step, layer = fit[7], fit[8]
    assert step.visible and step.choices[-1][1] == 2 and [v for _, v in layer.choices] == ["mean", 0, 1]
    video = handlers.viewer.video(handlers.viewer.run("probed"))
    assert not np.array_equal(fit[1], video[8])  # the middle frame (latent frame 2) has its probed point outlined
    first = handlers.picture("probed", 0)  # latent frame 0: point (0, 6, 1), in the lower half only
    assert np.array_equal(first[:64], video[0][:64]) and not np.array_equal(first[64:], video[0][64:])
    point = ((4 + 0.5) / 8, (3 + 0.5) / 8)  # the centre of token (2, 3, 4)
    marked, kept, chart, table, strip, note, status = handlers.frame("probed", 8, point, False, 1, 1)
    assert status == "" and kept == point and chart.axes and "| circle |" in table
    assert strip is not None and "step 1, layer 1" in note
    rows_only = handlers.rows("probed", 8, point, 0, "mean")
    assert rows_only[2] == "" and "step 0, mean over layers" in rows_only[1]
    assert not np.array_equal(rows_only[0], strip)
    no_fit = handlers.fit("plain")
    assert not no_fit[7].visible and "--probe" in no_fit[6]
    *_, strip, note, status = handlers.frame("plain", 8, point, False, None, None)
    assert status == "" and strip is None and "--probe 2,3,4" in note
