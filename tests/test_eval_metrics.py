"""Metric and estimator code on synthetic maps and masks with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from attnscope.eval import estimators as est
from attnscope.eval.evaluate import Sample, choose_best_layers, evaluate, paired_vs
from attnscope.eval.metrics import (
    THRESHOLDS,
    iou,
    iou_curve,
    latent_mask,
    normalize,
    pixel_heat,
    thresholded_iou,
)
from attnscope.store import RunWriter, open_run


def test_iou_known_values():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2, :2] = True  # 4 cells
    b[:2, :3] = True  # 6 cells, 4 shared
    assert iou(a, b) == pytest.approx(4 / 6)
    assert iou(np.zeros(3, bool), np.zeros(3, bool)) == 1.0
    heat = np.array([0.0, 0.3, 0.5, 1.0])  # normalized: 0, .3, .5, 1 -> >= .4: last two
    assert thresholded_iou(heat, np.array([0, 0, 1, 1], bool)) == 1.0
    assert thresholded_iou(heat, np.array([0, 1, 1, 1], bool)) == pytest.approx(2 / 3)
    curve = iou_curve(heat, np.array([0, 1, 1, 1], bool))
    assert curve.max() == 1.0  # at a threshold <= 0.3
    assert normalize(np.ones(3)).max() == 0.0


def test_per_frame_normalization_thresholds_each_frame_on_its_own_scale():
    # frame 0's object is attended 10x less than frame 1's: scaled over the whole video it falls below 0.4
    heat = np.array([[[0.0, 0.1], [0.05, 0.0]], [[0.0, 1.0], [0.5, 0.0]]])  # [F=2, 2, 2]
    mask = np.array([[[0, 1], [1, 0]], [[0, 1], [1, 0]]], bool)
    assert normalize(heat, "frame")[0].max() == 1.0 and normalize(heat, "frame")[0, 1, 0] == pytest.approx(0.5)
    assert thresholded_iou(heat, mask) == pytest.approx(2 / 4)  # video-wide: only frame 1's two tokens
    assert thresholded_iou(heat, mask, per="frame") == 1.0
    assert iou_curve(heat, mask, per="frame")[-1] == pytest.approx(2 / 4)  # at 0.9 only each frame's peak
    with pytest.raises(ValueError, match="frame"):
        normalize(heat, "clip")


def test_latent_mask_follows_causal_time_and_token_coverage():
    mask = np.zeros((9, 32, 32), bool)  # 9 frames -> 3 latent frames; 16 px tokens -> 2x2 grid
    mask[0, :16, :16] = True  # frame 0 only, token (0, 0)
    mask[5:9, 16:, 16:] = True  # frames 5..8 = latent frame 2, token (1, 1)
    lat = latent_mask(mask, (3, 2, 2))
    assert lat[0, 0, 0] and lat[0].sum() == 1
    assert lat[1].sum() == 0
    assert lat[2, 1, 1] and lat[2].sum() == 1
    up = pixel_heat(lat.astype(float), (9, 32, 32))
    assert up.shape == (9, 32, 32) and up[6, 30, 30] > 0.9 and up[3, 30, 30] < 0.1


def _synthetic_run(path, *, vnorm=True):
    """2 steps, 2 layers, 1 head, words 'circle' (hot at token (0,0)) and 'square' (hot at (1,1))."""
    grid = (1, 2, 2)
    w = RunWriter(path, {"prompt": "a circle and a square", "vae": {"temporal": 4}}, words=["circle", "square"],
                  layers=[0, 1], heads=[0], num_steps=2, grid=grid,
                  extras=("value_norm", "value_proj", "self_prop") if vnorm else ())
    for step in range(2):
        for layer in range(2):
            maps = np.full((1, 2, 1, 2, 2), 0.05, np.float32)
            if layer == 1:  # only layer 1 localizes
                maps[0, 0, 0, 0, 0] = 0.4
                maps[0, 1, 0, 1, 1] = 0.4
            mass = np.full((1, 1, 2, 2), 0.5, np.float32)
            # self_prop: the map spread evenly over its frame's 4 tokens (what an all-equal self-attention does)
            spread = np.broadcast_to(maps.mean((-2, -1), keepdims=True), maps.shape)
            extras = ({"value_norm": maps * 2, "value_proj": maps - 0.05 * layer, "self_prop": spread}
                      if vnorm else {})
            w.write(step, layer, maps, mass, extras)
        w.end_step(step, {"timestep": 1.0 - step})
    w.close(True)
    return open_run(path)


def test_estimators_hand_computed(tmp_path):
    run = _synthetic_run(tmp_path / "r")
    raw = est.raw(run, "circle")
    assert raw.shape == (1, 2, 2)
    assert raw[0, 0, 0] == pytest.approx((0.05 + 0.4) / 2, rel=1e-3)
    assert raw[0, 1, 1] == pytest.approx(0.05, rel=1e-3)
    np.testing.assert_allclose(est.renorm(run, "circle"), raw / 0.5, rtol=1e-3)
    share = est.share(run, "circle")
    assert share[0, 0, 0] == pytest.approx((0.5 + 0.4 / 0.45) / 2, rel=1e-3)
    np.testing.assert_allclose(est.value_norm(run, "circle"), raw * 2, rtol=1e-3)
    proj = est.value_proj(run, "circle")  # layer 0: 0.05 everywhere; layer 1: 0.35 at (0,0), 0 elsewhere
    assert proj[0, 0, 0] == pytest.approx((0.05 + 0.35) / 2, rel=1e-3)
    assert proj[0, 1, 1] == pytest.approx(0.05 / 2, rel=1e-3)
    spread = est.self_prop(run, "circle")  # layer 0: 0.05; layer 1: (0.4 + 3·0.05) / 4 = 0.1375, everywhere
    np.testing.assert_allclose(spread, np.full((1, 2, 2), (0.05 + 0.1375) / 2), rtol=1e-3)
    only_l1 = est.raw(run, "circle", layers=[1])
    assert only_l1[0, 0, 0] == pytest.approx(0.4, rel=1e-3)


def test_best_layers_chosen_on_selection_split(tmp_path):
    run = _synthetic_run(tmp_path / "r")
    mask_c = np.zeros((1, 32, 32), bool)
    mask_c[0, :16, :16] = True
    mask_s = np.zeros((1, 32, 32), bool)
    mask_s[0, 16:, 16:] = True
    samples = [Sample(run, "circle", "shape", mask_c, "select"), Sample(run, "square", "shape", mask_s, "test")]
    from attnscope.eval.evaluate import cheapest_window

    result = evaluate(samples)
    assert result["estimators"]["best-layers"]["layers"] == [1]
    assert result["estimators"]["raw"]["miou"] == pytest.approx(1.0)  # layer 1 dominates the mean
    rec = result["recommended"]
    headline = [e["miou_frame_best_threshold"] for e in result["estimators"].values()]
    assert result["estimators"][rec["estimator"]]["miou_frame_best_threshold"] == max(headline)
    assert rec["norm"] == "frame"
    if rec["estimator"] == result["step_windows"]["base"]:  # every layer, every step or a late window as good
        window = cheapest_window(result["step_windows"]["windows"])
        assert rec["layers"] is None and rec["step_fraction"] == window["step_fraction"]
        assert rec["threshold"] == window["threshold"]  # chosen for that window, on the selection split
    else:
        assert rec["threshold"] == result["estimators"][rec["estimator"]]["frame_best_threshold"]
    windows = result["step_windows"]
    full = result["estimators"][windows["base"]]["miou_frame_best_threshold"]
    assert windows["windows"][0]["step_fraction"] == [0.0, 1.0]
    assert windows["windows"][0]["miou_frame_best_threshold"] == pytest.approx(full)  # every step: the estimator
    assert windows["windows"][0]["threshold"] == result["estimators"][windows["base"]]["frame_best_threshold"]
    scored = [{"step_fraction": [f, 1.0], "selection": v} for f, v in ((0.0, 0.70), (0.5, 0.698), (0.75, 0.69))]
    assert cheapest_window(scored)["step_fraction"] == [0.5, 1.0]  # within 0.005 of every step; not the last quarter
    assert cheapest_window(scored[:1])["step_fraction"] == [0.0, 1.0]
    table = np.array([[0.1, 0.2], [0.9, 0.3]])
    best = choose_best_layers(table, [0, 1], [[0], [1]])
    assert best["layers"] == [1] and best["steps"] == [0]


def test_full_size_separates_drawn_objects_from_fragments(tmp_path):
    run = _synthetic_run(tmp_path / "r")
    big = np.zeros((1, 64, 64), bool)
    big[0, :40, :40] = True  # 1,600 px
    small = np.zeros((1, 64, 64), bool)
    small[0, :20, :20] = True  # 400 px: a fragment
    assert Sample(run, "circle", "shape", big, "test").full_size
    assert not Sample(run, "circle", "shape", small, "test").full_size
    assert not Sample(run, "circle", "shape", np.zeros((1, 64, 64), bool), "test").full_size
    result = evaluate([Sample(run, "circle", "shape", big, "select"), Sample(run, "square", "shape", small, "test")])
    assert result["estimators"]["raw"]["n_full_size"] == 0 and np.isnan(result["estimators"]["raw"]["miou_full_size"])


def test_eval_reuses_only_runs_of_the_same_weights(tiny_pipes):
    import copy

    import torch

    from attnscope.eval.run import weights_fingerprint

    pipe = tiny_pipes["t2v"]
    same = weights_fingerprint(pipe)
    assert weights_fingerprint(pipe) == same, "the fingerprint is deterministic"
    other = copy.deepcopy(pipe)
    with torch.no_grad():
        next(other.transformer.parameters()).view(-1)[0] += 1e-3  # one weight of another model of the architecture
    assert weights_fingerprint(other) != same


def test_paired_difference_against_raw_hand_case(tmp_path):
    """Each estimator at its own selected threshold; the differences of the test samples, paired."""
    run = _synthetic_run(tmp_path / "r")
    mask = np.zeros((1, 32, 32), bool)
    samples = [Sample(run, "circle", "shape", mask, split) for split in ("select", "test", "test", "test")]
    n_t = len(THRESHOLDS)
    ramp = np.linspace(0, 1, n_t)  # best at the last threshold on the selection split
    raw = [{"curve_frame": ramp * 0.5}] + [{"curve_frame": np.full(n_t, v)} for v in (0.5, 0.6, 0.7)]
    other = [{"curve_frame": ramp[::-1]}] + [{"curve_frame": np.r_[v, np.zeros(n_t - 1)]} for v in (0.9, 0.6, 0.4)]
    got = paired_vs(other, raw, samples)
    # other is read at the first threshold (0.9, 0.6, 0.4), raw at the last (0.5, 0.6, 0.7)
    assert got["delta"] == pytest.approx((0.4 + 0.0 - 0.3) / 3)
    assert (got["wins"], got["losses"], got["ties"], got["n"]) == (1, 1, 1, 3)
    assert -0.3 - 1e-9 <= got["ci95"][0] < got["delta"] < got["ci95"][1] <= 0.4 + 1e-9
    same = paired_vs(raw, raw, samples)
    assert same["delta"] == 0 and same["ci95"] == [0, 0] and same["ties"] == 3
