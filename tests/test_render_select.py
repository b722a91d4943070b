"""Selecting a word's map from a run: aggregation, the renorm estimator, spec parsing, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from attnscope.errors import SelectionError
from attnscope.render import parse_spec, select
from attnscope.render.synthetic import make_synthetic_run
from attnscope.store import open_run

BLOBS = {"circle": (1, 4, 5), "square": (3, 11, 10)}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = make_synthetic_run(tmp_path_factory.mktemp("sel") / "run", num_steps=4, layers=3, heads=2,
                              blobs=BLOBS, video=False, previews=False)
    return open_run(path)


def test_mean_map_peaks_at_the_blob(run):
    for word, blob in BLOBS.items():
        m = select(run, word)
        assert m.dims == ("frame", "y", "x")
        assert np.unravel_index(int(np.argmax(m.values)), m.shape) == blob


def test_aggregation_matches_manual_mean(run):
    raw = run.maps.sel(word="circle").values.astype(np.float32)  # [step, layer, head, F, Y, X]
    m = select(run, "circle", step="1-2", layer="2", head="mean")
    np.testing.assert_allclose(m.values, raw[1:3, 2].mean(axis=(0, 1)), rtol=1e-5)
    kept = select(run, "circle", layer="0,2", keep=("layer", "head"))
    assert kept.dims == ("layer", "head", "frame", "y", "x") and list(kept["layer"].values) == [0, 2]
    np.testing.assert_allclose(kept.sel(layer=2, head=1).values, raw[:, 2, 1].mean(axis=0), rtol=1e-5)


def test_renorm_divides_by_prompt_mass(run):
    maps = run.maps.sel(word="square", step=3).values.astype(np.float32)  # [layer, head, F, Y, X]
    mass = run.prompt_mass.sel(step=3).values.astype(np.float32)
    m = select(run, "square", step=3, estimator="renorm")
    np.testing.assert_allclose(m.values, (maps / (mass + 1e-8)).mean(axis=(0, 1)), rtol=1e-4)
    assert float(m.max()) > float(select(run, "square", step=3).max())  # the sink is removed


def test_several_words_keep_a_word_dim(run):
    m = select(run, ["square", "circle"])
    assert m.dims == ("word", "frame", "y", "x") and list(m["word"].values) == ["square", "circle"]


@pytest.mark.parametrize(("spec", "expected"), [
    ("3", [3]), (3, [3]), ("1-3", [1, 2, 3]), ("mean", [0, 1, 2, 3, 4]), (None, [0, 1, 2, 3, 4]),
    ("0,4", [0, 4]), ([2, "4"], [2, 4]),
])
def test_parse_spec(spec, expected):
    assert parse_spec(spec, [0, 1, 2, 3, 4], "step") == expected


def test_errors_name_what_exists(run):
    with pytest.raises(SelectionError, match=r"words captured: 'circle', 'square'"):
        select(run, "triangle")
    with pytest.raises(SelectionError, match=r"step 9 is not in this run; steps: 0-3"):
        select(run, "circle", step="9")
    with pytest.raises(SelectionError, match=r"layers: 0-2"):
        select(run, "circle", layer="5-7")
    with pytest.raises(SelectionError, match=r"heads: 0, 1"):
        select(run, "circle", head="4")
    with pytest.raises(SelectionError, match="index like 3"):
        select(run, "circle", step="first")
    with pytest.raises(SelectionError, match="raw, renorm"):
        select(run, "circle", estimator="magic")


def test_unfinished_steps_are_not_selectable(tmp_path):
    from attnscope.store import RunWriter

    w = RunWriter(tmp_path / "partial", {"prompt": "a circle"}, words=["circle"], layers=[0], heads=["mean"],
                  num_steps=5, grid=(2, 3, 3))
    w.write(0, 0, np.full((1, 1, 2, 3, 3), 0.1, np.float16), np.full((1, 2, 3, 3), 0.5, np.float16))
    w.end_step(0, {"timestep": 999})
    w.close(complete=False)
    run = open_run(tmp_path / "partial")
    assert float(select(run, "circle").max()) == pytest.approx(0.1, rel=1e-3)  # mean over finished steps only
    with pytest.raises(SelectionError, match=r"step 3 is not in this run; steps: 0"):
        select(run, "circle", step=3)
    with pytest.raises(SelectionError, match="heads were averaged"):
        select(run, "circle", head="0")
