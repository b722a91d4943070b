"""The viewer on a run written by the real capture path (the tiny random Wan pipeline), every view once."""

from __future__ import annotations

import pytest

pytest.importorskip("gradio")

import attnscope  # noqa: E402
from attnscope.app.handlers import CONTROL_NAMES, Handlers  # noqa: E402
from attnscope.app.session import Viewer  # noqa: E402
from attnscope.video import read_mp4  # noqa: E402


@pytest.fixture(scope="module")
def handlers(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    pipe = attnscope.load_pipeline("tiny")
    pipe.set_progress_bar_config(disable=True)
    attnscope.generate(pipe, "a (red) cat playing with a (soccer ball)", root / "cat", seed=3, quiet=True,
                       height=64, width=96, num_frames=5, num_inference_steps=3)
    return Handlers(Viewer(root, out_dir=tmp_path_factory.mktemp("out")))


def values(**kw):
    base = dict(word="red", step=0, step_mean=False, step_range="", layer=0, layer_mean=False, layer_range="",
                head=0, head_mean=True, head_range="", cmap="inferno", norm="global", alpha=0.6, frame=0,
                estimator="raw", colorbar=True)
    base.update(kw)
    return tuple(base[n] for n in CONTROL_NAMES)


def test_every_view_draws_a_real_run(handlers):
    opened = handlers.open("cat")
    assert opened[-1] == "" and opened[0].value == "red"
    pictures = {}
    for word in ("red", "soccer ball"):
        for estimator in ("raw", "renorm"):
            image, caption, card = handlers.still("cat", *values(word=word, estimator=estimator, step=2))
            assert card == "" and image.shape == (64, 96, 3), card
            pictures[word, estimator] = image
    assert (pictures["red", "raw"] != pictures["soccer ball", "raw"]).any()
    video, card = handlers.overlay_video("cat", *values())
    assert card == "" and read_mp4(video).shape[0] == 5
    timeline, card = handlers.timeline("cat", *values())
    assert card == "" and read_mp4(timeline).shape[0] >= 3
    seg, card = handlers.segmentation("cat", 0.3, *values(frame=4, colorbar=False))  # legend: wider than 96 px
    assert card == "" and seg.shape == (64, 96, 3)
    sheet, card = handlers.grid("cat", *values())
    assert card == "" and sheet.width > 100
    mass, entropy, card = handlers.charts("cat", *values(layer_mean=True))
    assert card == "" and len(mass.axes[0].lines) == 2
