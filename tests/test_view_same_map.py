"""One view resolver: ``attnscope render``, the viewer's Explore tab and the HTML export show the same map.

The run's model has a measured preset (renorm over layers 1-2, the second half of the steps, per frame), so a
default that skipped the preset anywhere would show a different map.
"""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio")

from attnscope.app.export import export_report, word_frames  # noqa: E402
from attnscope.app.handlers import CONTROL_NAMES, Handlers  # noqa: E402
from attnscope.app.session import Viewer  # noqa: E402
from attnscope.render import render  # noqa: E402
from attnscope.render.geometry import geometry  # noqa: E402
from attnscope.render.preset import PRESET_FILE  # noqa: E402
from attnscope.render.synthetic import make_synthetic_run  # noqa: E402
from attnscope.render.view import resolve_view  # noqa: E402
from attnscope.store import open_run  # noqa: E402
from attnscope.video import read_mp4  # noqa: E402

PRESET = {"estimator": "renorm", "layers": [1, 2], "step_fraction": [0.5, 1.0], "norm": "frame",
          "threshold": 0.75, "source": "measured for this test"}
UI_DEFAULTS = dict(head=0, head_mean=True, head_range="", cmap="inferno", alpha=0.6, colorbar=True)


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """(runs folder, run) of a model whose folder holds a recommended.json."""
    tmp = tmp_path_factory.mktemp("same")
    model = tmp / "model"
    model.mkdir()
    (model / PRESET_FILE).write_text(json.dumps(PRESET))
    path = make_synthetic_run(tmp / "runs" / "measured", num_steps=8, layers=4, heads=2, previews=False)
    meta = json.loads((path / "meta.json").read_text())
    meta["model"]["id"] = str(model)
    (path / "meta.json").write_text(json.dumps(meta))
    return tmp / "runs", open_run(path)


def _viewer_defaults(h: Handlers, rel: str) -> dict:
    """The Explore controls right after opening ``rel``: what ``open`` sets, the UI's defaults for the rest."""
    opened = h.open(rel)
    assert opened[-1] == "", opened[-1]
    step_mean, step_range, layer_mean, layer_range, estimator, norm, _ = opened[-8:-1]
    return dict(UI_DEFAULTS, word=opened[0].value, step=opened[1].value, step_mean=step_mean,
                step_range=step_range, layer=opened[2].value, layer_mean=layer_mean, layer_range=layer_range,
                norm=norm, frame=opened[4].value, estimator=estimator)


def _png(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _exported_still(page: str, word: str) -> tuple[int, np.ndarray]:
    """(frame, picture) of the still the export shows for ``word``."""
    found = re.search(rf'alt="{re.escape(word)} frame (\d+)" src="data:image/jpeg;base64,([^"]+)"', page)
    assert found, f"no still for {word}"
    return int(found[1]), np.asarray(Image.open(io.BytesIO(base64.b64decode(found[2]))).convert("RGB"))


def test_default_view_is_the_same_map_in_render_viewer_and_export(measured, tmp_path):
    root, run = measured
    view = resolve_view(run)
    assert (view.estimator, view.norm, view.layer, view.step) == ("renorm", "frame", [1, 2], [4, 5, 6, 7])
    middle = geometry(run).middle

    rendered = _png(render(run, None, "overlay", out=tmp_path / "render.png"))  # the CLI's path, no -w

    h = Handlers(Viewer(root, out_dir=tmp_path / "out"))
    controls = _viewer_defaults(h, "measured")
    assert controls["word"] == view.word and controls["frame"] == middle
    shown, caption, card = h.still("measured", *(controls[n] for n in CONTROL_NAMES))
    assert card == "" and "step 4-7 · layer 1, 2 · head mean · frame" in caption
    # the viewer averages all heads from the run's fp16 summary: the same map up to that rounding
    spec = (controls["step_range"], controls["layer_range"], "mean", controls["estimator"])
    np.testing.assert_allclose(h.viewer.selection(run, view.word, *spec).values, view.map(run).values, rtol=2e-3)
    differ = np.abs(shown.astype(int) - rendered.astype(int)).max(-1)
    assert differ.max() <= 3 and (differ > 0).mean() < 0.01, (differ.max(), (differ > 0).mean())

    video = read_mp4(run.video_path)
    exported = word_frames(run, view, view.word, video)
    assert np.array_equal(exported[middle], rendered)

    page = export_report(run.path, tmp_path / "report.html").read_text()
    assert "renorm · frame" in page and "measured for this test" in page
    frame, still = _exported_still(page, view.word)
    at_peak = _png(render(run, None, "overlay", frame=frame, out=tmp_path / "peak.png"))
    assert np.abs(still.astype(float) - at_peak).mean() < 3  # the page's JPEG of the same frame


def test_an_explicit_selection_is_the_same_map_everywhere(measured, tmp_path):
    root, run = measured
    args = dict(step="2-3", layer="0", head="1", estimator="raw", norm="global")
    view = resolve_view(run, "square", **args)
    rendered = _png(render(run, "square", "heatmap", out=tmp_path / "render.png", frame=3, **args))

    h = Handlers(Viewer(root, out_dir=tmp_path / "out"))
    controls = dict(UI_DEFAULTS, word="square", step=0, step_mean=True, step_range="2-3", layer=0,
                    layer_mean=False, layer_range="", head=1, head_mean=False, norm="global", frame=3,
                    estimator="raw")
    maps = h.viewer.selection(run, "square", "2-3", 0, 1, "raw")
    np.testing.assert_array_equal(maps.values, view.map(run).values)  # one head: read exactly, no summary

    exported = word_frames(run, view, "square", None)  # no video: the export draws the heatmap
    assert np.array_equal(exported[3], rendered)
    overlay = _png(render(run, "square", "overlay", out=tmp_path / "overlay.png", frame=3, **args))
    shown, _, card = h.still("measured", *(controls[n] for n in CONTROL_NAMES))
    assert card == "" and np.array_equal(shown, overlay)
    assert np.array_equal(word_frames(run, view, "square", read_mp4(run.video_path))[3], overlay)

    page = export_report(run.path, tmp_path / "report.html", words=["square"], **args).read_text()
    assert "steps 2, 3 · layers 0 · heads 1 · raw · global" in page
