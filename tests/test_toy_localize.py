"""The shipped toy model's shape-word maps land on the objects it draws (issue 02).

Held-out single-object prompts, generated on the CPU with capture at the toy defaults; the object's mask comes
from the project's detector reading the generated video. A prompt whose object the model did not draw (or drew
at under half its size) says nothing about the map and is skipped; the test needs three prompts that count.
"""

from __future__ import annotations

import numpy as np
import pytest

from attnscope.eval.metrics import latent_mask, thresholded_iou
from attnscope.eval.run import eval_prompts
from attnscope.generation import generate
from attnscope.models.loading import load_pipeline
from attnscope.render import select
from attnscope.render.preset import recommended
from attnscope.toy.detect import detect_objects
from attnscope.toy.world import RADIUS
from attnscope.video import read_mp4

NEEDED, ATTEMPTS = 3, 5
MIN_AREA_PX = 0.5 * np.pi * RADIUS[0] ** 2 * 0.5  # half the area of the smallest triangle (fill 0.5)


@pytest.fixture(scope="module")
def localized(tmp_path_factory):
    pipe = load_pipeline("toy", device="cpu")
    pipe.set_progress_bar_config(disable=True)
    rows = []
    prompts = [p for p in eval_prompts(2 * ATTEMPTS) if len(p[1]) == 1][:ATTEMPTS]
    for i, (text, scene) in enumerate(prompts):
        obj = scene[0]
        run = generate(pipe, text, tmp_path_factory.mktemp(f"p{i}"), words=[obj.colour, obj.shape], seed=i,
                       value_norm=True, self_prop=True, previews=False, quiet=True)
        found = [d for d in detect_objects(read_mp4(run.video_path)) if d.colour == obj.colour]
        if not found or found[0].masks.sum(axis=(1, 2)).max() < MIN_AREA_PX:
            continue
        g = run.meta["grid"]
        mask = latent_mask(found[0].masks, (g["frames"], g["height"], g["width"]))
        preset = recommended(run)
        sel = preset.selection(run)
        for word in (obj.colour, obj.shape):
            heat = select(run, word, step=sel["step"], layer=sel["layer"], estimator=sel["estimator"]).values
            plain = select(run, word).values
            rows.append({"prompt": text, "word": word, "estimator": sel["estimator"],
                         "iou": thresholded_iou(plain, mask),
                         "iou_recommended": thresholded_iou(heat, mask, preset.threshold or 0.4,
                                                            "frame" if preset.norm == "frame" else "video"),
                         "inside_over_outside": float(plain[mask].mean() / plain[~mask].mean())})
        if len(rows) == 2 * NEEDED:
            break
    return rows


@pytest.mark.timeout(1200)
def test_shape_word_maps_land_on_their_objects(localized):
    print(localized)  # shown with -s: the figures quoted in the README
    assert len(localized) == 2 * NEEDED, f"the model drew too few of {ATTEMPTS} objects: {localized}"
    for row in localized:
        assert row["inside_over_outside"] > 2.0, row  # the map is hotter on its object than off it
        assert row["iou"] > 0.2, row  # DAAM's measure: the 0.4-thresholded map overlaps the object
    assert np.mean([r["iou"] for r in localized]) > 0.45, localized


def test_the_recommended_view_beats_the_plain_mean(localized):
    """The shipped preset (docs/eval's recommended.json: self-prop, normalized per frame and cut at its measured
    threshold) must match the objects better than what most tools show, the plain raw mean normalized over the
    whole video and cut at 0.4 (on 30 eval prompts: 0.71 against 0.55)."""
    assert all(r["estimator"] == "self-prop" for r in localized), localized
    assert np.mean([r["iou_recommended"] for r in localized]) > np.mean([r["iou"] for r in localized]), localized
