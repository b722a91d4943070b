"""Probe points from the Generate tab, on the toy model on the CPU: points typed in video pixels become the
latent tokens a click on those pixels finds, the finished run has their rows and the Probe tab draws them; a box
that is not points, or a pixel outside the video, is one error card and starts nothing."""

from __future__ import annotations

import html

import numpy as np
import pytest

from attnscope import open_run
from attnscope.app import probe
from attnscope.app.bend_tab import baseline_settings
from attnscope.app.gen_tab import GenerateHandlers
from attnscope.app.handlers import Handlers
from attnscope.app.probe_pixels import parse_pixel_points
from attnscope.app.probe_tab import ProbeHandlers
from attnscope.app.session import Viewer
from attnscope.app.studio import DONE, Studio
from attnscope.errors import SelectionError

PROMPT = "a (red circle) moving right"
FRAMES, SIDE, STEPS = 5, 128, 2


def form(probe_box: str) -> tuple:
    """The Generate form's values in the order the tab wires them, small enough for the CPU."""
    return PROMPT, "", "toy", 1, STEPS, None, FRAMES, SIDE, SIDE, False, False, False, probe_box


@pytest.fixture(scope="module")
def tab(tmp_path_factory):
    studio = Studio(tmp_path_factory.mktemp("runs"))
    viewer = Viewer(studio.root)
    return GenerateHandlers(studio, viewer, Handlers(viewer))


def test_the_box_reads_points_in_the_order_typed():
    assert parse_pixel_points("4, 40, 100; (0,127,0);") == ((4, 40, 100), (0, 127, 0))
    assert parse_pixel_points("") == () and parse_pixel_points(None) == ()
    for bad in ("4, 40", "4, 40, -1", "4; 40; 100", "a, b, c", "4, 40, 1.5"):
        with pytest.raises(SelectionError, match="video pixels"):
            parse_pixel_points(bad)


@pytest.mark.parametrize(("box", "says"), [
    ("4, 40", "'4, 40': expected frame, y, x in video pixels"),
    ("4, 40, 128", "pixel (128, 40) of frame 4 is outside the 128×128×5 video; probe points are frame, y, x"),
    ("5, 0, 0", "x < 128"),
])
def test_a_bad_probe_box_is_one_error_and_starts_nothing(tab, box, says):
    job, status, *_ = tab.submit(*form(box))
    assert status.count('class="as-error"') == 1 and says in html.unescape(status)
    assert not isinstance(job, int) and not list(tab.studio.root.rglob("meta.json"))


def test_a_generation_with_probe_points_has_their_rows_in_the_probe_tab(tab):
    job_id, status, *_ = tab.submit(*form("4, 40, 100; 0, 127, 0"))
    assert status == ""
    job = tab.studio.wait(job_id, timeout=300)
    assert job.state == DONE, job.error
    run = open_run(tab.studio.root / job.rel)
    # the tokens a click on those pixels finds: the toy's 128 px side is 8 tokens, pixel frame 4 latent frame 1
    assert run.probe_points == [probe.token_at(run, 4, 100, 40), probe.token_at(run, 0, 0, 127)]
    assert run.probe_points == [(1, 2, 6), (0, 7, 0)]
    rows = run.probe_rows(step=STEPS - 1)
    assert rows.sizes["point"] == 2 and rows.sizes["layer"] == len(run.meta["layers"])
    np.testing.assert_allclose(rows.sum(("frame", "y", "x")).values, 1.0, rtol=1e-4)

    probe_tab = ProbeHandlers(tab.viewer)
    frame, *_, note, step, layer, card = probe_tab.fit(job.rel)
    assert card == "" and note == "" and step.visible and layer.visible
    assert frame.value == 2  # the middle frame, on latent frame 1 with the first point
    centre = ((6 + 0.5) / 8, (2 + 0.5) / 8)  # token (1, 2, 6) as fractions of the frame
    *_, strip, shown, card = probe_tab.frame(job.rel, 4, centre, False, STEPS - 1, "mean")
    assert card == "" and strip is not None and "Where token (1, 2, 6)" in shown
    # Bend's Apply generates the run again with a recipe: with the same probe points
    assert baseline_settings(tab.viewer, job.rel).probe == ((4, 40, 100), (0, 127, 0))
