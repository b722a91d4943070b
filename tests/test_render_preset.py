"""The "recommended" preset: a model folder's measured aggregation becomes the render default; explicit wins."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from attnscope.errors import SelectionError
from attnscope.render import render, select
from attnscope.render.preset import NO_PRESET, PRESET_FILE, load_preset, preset_for, recommended, save_preset
from attnscope.render.synthetic import make_synthetic_run
from attnscope.store import open_run

RESULT = {"recommended": {"estimator": "best-layers", "base": "renorm", "layers": [1, 2],
                          "step_fraction": [0.5, 1.0], "norm": "frame", "threshold": 0.75,
                          "metric": "miou"},
          "estimators": {"best-layers": {"miou": 0.61}, "raw": {"miou": 0.4}}, "settings": {"prompts": 30}}


def _run_of_model(tmp_path, model_folder):
    path = make_synthetic_run(tmp_path / "run", num_steps=8, layers=4, heads=2, video=True, previews=False)
    meta = json.loads((path / "meta.json").read_text())
    meta["model"]["id"] = str(model_folder)
    (path / "meta.json").write_text(json.dumps(meta))
    return open_run(path)


@pytest.fixture
def measured(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    save_preset(RESULT, model / PRESET_FILE)
    return _run_of_model(tmp_path, model)


def test_saved_preset_round_trips_and_names_its_source(tmp_path):
    preset = load_preset(save_preset(RESULT, tmp_path / PRESET_FILE))
    assert (preset.estimator, preset.layers, preset.step_fraction) == ("renorm", (1, 2), (0.5, 1.0))
    assert (preset.norm, preset.threshold) == ("frame", 0.75)
    assert "0.61" in preset.source and "0.40" in preset.source and "per frame" in preset.source
    assert (NO_PRESET.norm, NO_PRESET.threshold) == ("global", None)


def test_recommended_fills_only_what_the_caller_left_open(measured):
    preset = recommended(measured)
    assert preset.estimator == "renorm"
    assert preset.selection(measured) == {"step": [4, 5, 6, 7], "layer": [1, 2], "estimator": "renorm"}
    assert preset.selection(measured, step="0-1", estimator="raw") == {"step": "0-1", "layer": [1, 2],
                                                                       "estimator": "raw"}
    assert preset_for(measured, "none") is NO_PRESET
    with pytest.raises(SelectionError, match="unknown preset"):
        preset_for(measured, "best")


def test_unmeasured_models_get_the_plain_mean(tmp_path):
    run = _run_of_model(tmp_path, tmp_path / "no-such-model")
    assert recommended(run) is NO_PRESET
    assert NO_PRESET.selection(run) == {"step": "mean", "layer": "mean", "estimator": "raw"}


def test_value_norm_preset_falls_back_on_runs_without_value_norms(measured):
    preset = load_preset(measured.path.parent / "model" / PRESET_FILE)
    vn = type(preset)(estimator="value-norm", layers=preset.layers, step_fraction=preset.step_fraction)
    assert vn.selection(measured)["estimator"] == "raw"
    assert vn.selection(measured, estimator="value-norm")["estimator"] == "value-norm"  # asked for: select says no


def test_render_defaults_to_the_recommended_aggregation(measured, tmp_path):
    default = np.asarray(Image.open(render(measured, "circle", "heatmap", out=tmp_path / "d.png")))
    explicit = np.asarray(Image.open(render(measured, "circle", "heatmap", out=tmp_path / "e.png", step="4-7",
                                            layer="1-2", estimator="renorm", norm="frame", preset="none")))
    plain = np.asarray(Image.open(render(measured, "circle", "heatmap", out=tmp_path / "p.png", preset="none")))
    np.testing.assert_array_equal(default, explicit)
    assert np.abs(default.astype(int) - plain.astype(int)).max() > 0, "the preset changes the picture"
    glob = np.asarray(Image.open(render(measured, "circle", "heatmap", out=tmp_path / "g.png", norm="global")))
    assert np.abs(default.astype(int) - glob.astype(int)).max() > 0, "the preset's per-frame norm is used"
    renorm = select(measured, "circle", step="4-7", layer="1-2", estimator="renorm")
    assert renorm.attrs["step"] == "4-7" and renorm.attrs["layer"] == "1, 2"


def test_value_norm_estimator_needs_a_run_that_captured_it(measured):
    with pytest.raises(SelectionError, match="--value-norm"):
        select(measured, "circle", estimator="value-norm")
    with pytest.raises(SelectionError, match="no self_prop array; generate with --self-prop"):
        select(measured, "circle", estimator="self-prop")


def test_segmentation_cuts_at_the_preset_threshold_in_its_normalization(measured, tmp_path):
    """The preset measured its view at a cut of 0.75 (per frame): the segmentation's default, not 0.3."""
    default = np.asarray(Image.open(render(measured, ["circle", "square"], "segmentation", out=tmp_path / "d.png")))
    at_075 = np.asarray(Image.open(render(measured, ["circle", "square"], "segmentation", out=tmp_path / "a.png",
                                          threshold=0.75)))
    at_03 = np.asarray(Image.open(render(measured, ["circle", "square"], "segmentation", out=tmp_path / "b.png",
                                         threshold=0.3)))
    np.testing.assert_array_equal(default, at_075)
    assert np.abs(default.astype(int) - at_03.astype(int)).max() > 0
    # another normalization than the preset's was not measured: back to 0.3
    glob = np.asarray(Image.open(render(measured, ["circle", "square"], "segmentation", out=tmp_path / "g.png",
                                        norm="global")))
    glob_03 = np.asarray(Image.open(render(measured, ["circle", "square"], "segmentation", out=tmp_path / "h.png",
                                           norm="global", threshold=0.3)))
    np.testing.assert_array_equal(glob, glob_03)
    # nor was another estimator (a run without the preset's array falls back to raw): 0.3 too
    raw = np.asarray(Image.open(render(measured, ["circle", "square"], "segmentation", out=tmp_path / "r.png",
                                       estimator="raw")))
    raw_03 = np.asarray(Image.open(render(measured, ["circle", "square"], "segmentation", out=tmp_path / "s.png",
                                          estimator="raw", threshold=0.3)))
    np.testing.assert_array_equal(raw, raw_03)
