"""Runs listing, incomplete and damaged runs, and path safety, without a server."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

pytest.importorskip("gradio")

from attnscope.app.handlers import Handlers  # noqa: E402
from attnscope.app.runs import list_runs  # noqa: E402
from attnscope.app.safety import OutsideRunsDirError, host_warning, inside  # noqa: E402
from attnscope.app.session import Viewer  # noqa: E402
from attnscope.render.synthetic import make_synthetic_run  # noqa: E402

CONTROLS = ("circle", 0, False, "", 0, False, "", 0, True, "", "inferno", "global", 0.6, 0, "raw", True)


def _edit_meta(path, **changes):
    meta = json.loads((path / "meta.json").read_text())
    meta.update(changes)
    (path / "meta.json").write_text(json.dumps(meta))


@pytest.fixture()
def root(tmp_path):
    runs = tmp_path / "runs"
    make_synthetic_run(runs / "good", words=("circle", "square"))
    half = make_synthetic_run(runs / "sweep" / "half", words=("circle",), num_steps=4)
    meta = json.loads((half / "meta.json").read_text())
    _edit_meta(half, complete=False, steps=meta["steps"][:2])  # interrupted after two steps
    (runs / "broken").mkdir()
    (runs / "broken" / "meta.json").write_text('{"prompt": "a cat", "grid": ')  # half-written by hand
    (runs / "not-a-run").mkdir()
    return runs


def test_listing_marks_incomplete_and_damaged_runs(root):
    runs = {s.rel: s for s in list_runs(root)}
    assert set(runs) == {"good", "sweep/half", "broken"}
    assert runs["good"].status == "complete" and runs["good"].prompt == "a circle and a square"
    assert runs["sweep/half"].status == "incomplete (2/4 steps)"
    assert runs["broken"].error and runs["broken"].status == "unreadable"
    cards, picker, _ = Handlers(Viewer(root)).refresh(None)
    assert cards.count('class="as-card"') == 3 and "incomplete (2/4 steps)" in cards
    assert cards.count("data:image/jpeg;base64,") == 2  # thumbnails of the two readable runs
    assert {c[1] for c in picker.choices} == {"good", "sweep/half", "broken"}


def test_new_runs_appear_on_refresh(root):
    h = Handlers(Viewer(root))
    before, _, _ = h.refresh(None)
    make_synthetic_run(root / "fresh", words=("circle",), video=False, previews=False)
    after, picker, _ = h.refresh("good")
    assert "fresh" not in before and 'data-run="fresh"' in after
    assert picker.value == "good"


def test_damaged_and_half_written_runs_show_error_cards(root):
    h = Handlers(Viewer(root))
    *_, card = h.open("broken")
    assert "not valid JSON" in card
    image, _, card = h.still("broken", *CONTROLS)
    assert image is None and "as-error" in card
    # the incomplete run shows its finished steps; a step it has not reached is refused with a reason
    assert h.open("sweep/half")[-1] == ""
    assert h.still("sweep/half", *CONTROLS)[0] is not None
    image, _, card = h.still("sweep/half", *CONTROLS[:1], 3, *CONTROLS[2:])
    assert image is None and "out of range" in card
    # a chunk damaged on disk: an error card, and the server log keeps the traceback
    for chunk in (root / "good" / "maps.zarr" / "maps" / "c").rglob("*"):
        if chunk.is_file():
            chunk.write_bytes(b"\x00garbage")
    image, _, card = h.still("good", *CONTROLS)
    assert image is None and "Cannot read good" in card


def test_paths_outside_the_runs_folder_are_refused(root, tmp_path):
    viewer = Viewer(root)
    assert inside(root, "good") == (root / "good").resolve()
    for bad in ("../", "../../etc", "/etc", "good/../../outside"):
        with pytest.raises(OutsideRunsDirError):
            viewer.path(bad)
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"not for the viewer")
    (root / "good" / "video.mp4").unlink()
    os.symlink(secret, root / "good" / "video.mp4")
    with pytest.raises(OutsideRunsDirError):
        viewer.run("good")
    image, _, card = Handlers(viewer).still("good", *CONTROLS)
    assert image is None and "outside the runs folder" in card


def test_host_warning_only_beyond_loopback():
    assert host_warning("127.0.0.1") is None and host_warning("localhost") is None and host_warning("::1") is None
    assert "warning" in host_warning("0.0.0.0") and "--host 127.0.0.1" in host_warning("192.168.1.5")


def test_thumbnail_is_the_first_video_frame(root):
    thumb = Viewer(root).thumbnail("good")
    assert thumb.dtype == np.uint8 and max(thumb.shape[:2]) <= 160


def test_heads_averaged_at_capture_and_single_step_runs(tmp_path):
    path = make_synthetic_run(tmp_path / "m", heads=1, num_steps=1, layers=1, words=("circle",))
    _edit_meta(path, heads=["mean"])
    h = Handlers(Viewer(tmp_path))
    opened = h.open("m")
    assert opened[-1] == "" and opened[3].interactive is False and opened[1].interactive is False
    image, caption, card = h.still("m", *CONTROLS[:8], False, *CONTROLS[9:])  # "mean over heads" unticked
    assert card == "" and "head mean" in caption and image.shape == (256, 256, 3)


def test_opening_a_run_of_a_measured_model_shows_its_recommended_view(tmp_path):
    from attnscope.render.preset import PRESET_FILE

    model = tmp_path / "model"
    model.mkdir()
    (model / PRESET_FILE).write_text(json.dumps({"estimator": "renorm", "layers": [1, 2],
                                                 "step_fraction": [0.5, 1.0], "norm": "frame", "threshold": 0.75,
                                                 "source": "measured here"}))
    runs = tmp_path / "runs"
    for name, model_id in (("measured", str(model)), ("plain", "nowhere")):
        path = make_synthetic_run(runs / name, num_steps=8, layers=4, heads=2, previews=False)
        meta = json.loads((path / "meta.json").read_text())
        meta["model"]["id"] = model_id
        (path / "meta.json").write_text(json.dumps(meta))
    h = Handlers(Viewer(runs))
    opened = h.open("measured")
    assert opened[-1] == "" and tuple(opened[-8:-1]) == (True, "4-7", True, "1, 2", "renorm", "frame", 0.75)
    assert "recommended view: measured here" in opened[7]
    controls = list(CONTROLS)
    controls[1:7] = [0, True, "4-7", 0, True, "1, 2"]
    controls[14] = "renorm"
    image, caption, card = h.still("measured", *controls)
    assert card == "" and "4-7" in caption
    default, _, _ = h.still("measured", *CONTROLS)
    assert np.abs(image.astype(int) - default.astype(int)).max() > 0, "the recommended view is a different map"
    plain = h.open("plain")
    assert plain[-1] == "" and tuple(plain[-8:-1]) == (True, "", True, "", "raw", "global", 0.3)
    assert "recommended" not in plain[7]
    from attnscope.render import select
    from attnscope.render.view import resolve_view

    run = h.viewer.run("plain")
    view = resolve_view(run)
    shown = h.viewer.selection(run, view.word, "mean", "mean", "mean").values
    rendered = select(run, view.word, view.step, view.layer, view.head, estimator=view.estimator).values
    np.testing.assert_allclose(shown, rendered, rtol=2e-3, atol=1e-6)  # render's default map (fp16 summaries)


def test_a_slow_mean_over_one_head_shows_a_preview_first(tmp_path):
    from attnscope.render import select

    make_synthetic_run(tmp_path / "r", num_steps=8, layers=4, heads=2, words=("circle",), previews=False)
    viewer = Viewer(tmp_path)
    h = Handlers(viewer)
    controls = list(CONTROLS)
    controls[1:9] = [0, True, "", 0, True, "", 1, False]  # mean over all steps and layers, head 1 alone
    shown = list(h.live_still("r", *controls))
    assert len(shown) == 2, "a preview, then the exact map"
    (preview, preview_caption, card), (exact, caption, exact_card) = shown
    assert card == exact_card == "" and "preview from 4 of 32 slabs" in preview_caption
    assert "preview" not in caption and np.array_equal(exact, h.still("r", *controls)[0])

    run = viewer.run("r")
    approx = viewer.preview(run, "circle", "mean", "mean", 1)
    pairs = [(s, layer) for s in run.steps_done for layer in run.meta["layers"]]
    spread = [pairs[i] for i in (0, 10, 21, 31)]  # evenly over the 32 (step, layer) slabs
    by_hand = np.mean([select(run, "circle", s, layer, 1).values for s, layer in spread], axis=0)
    np.testing.assert_allclose(approx.values, by_hand, rtol=1e-5, atol=1e-7)
    full = viewer.selection(run, "circle", "mean", "mean", 1).values
    assert np.corrcoef(approx.values.ravel(), full.ravel())[0, 1] > 0.7, "the preview looks like the exact map"

    assert len(list(h.live_still("r", *controls))) == 1, "cached now: the exact map at once"
    assert len(list(h.live_still("r", *CONTROLS))) == 1, "one slab: no preview"
    all_heads = list(controls)
    all_heads[8] = True
    assert len(list(h.live_still("r", *all_heads))) == 1, "all heads come from the summary: no preview"
    (image, _, card), = h.live_still("r", "nope", *controls[1:])
    assert image is None and "nope" in card, "a bad word gives one error card, not two"
