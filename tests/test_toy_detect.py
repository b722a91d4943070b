"""The detector reads the world's own videos back: colour, shape, motion and masks."""

from __future__ import annotations

import numpy as np
import pytest

from attnscope.toy.check import score
from attnscope.toy.detect import detect_objects, shape_from_fill
from attnscope.toy.world import ToyObject, caption, render, scene_for_seed


@pytest.mark.parametrize("seed", [10, 11, 12, 13, 14, 15])
def test_detector_finds_every_rendered_object(seed):
    objects = scene_for_seed(seed)
    video, masks = render(objects)
    found = detect_objects(video.numpy())
    assert sorted((d.colour, d.shape, d.motion) for d in found) == sorted(
        (o.colour, o.shape, o.motion) for o in objects)
    for obj, mask in zip(objects, masks.numpy(), strict=True):
        det = next(d for d in found if d.colour == obj.colour)
        iou = (det.masks & mask).sum() / (det.masks | mask).sum()
        assert iou > 0.99


def test_fill_thresholds_separate_the_shapes():
    assert shape_from_fill(0.5) == "triangle"
    assert shape_from_fill(np.pi / 4) == "circle"
    assert shape_from_fill(0.97) == "square"


def test_score_counts_misses_wrong_motion_and_unrequested_objects():
    requested = [ToyObject("red", "circle", "moving left", 60, 60, 34, 70),
                 ToyObject("blue", "square", "moving up", 180, 180, 34, 70)]
    shown = [ToyObject("red", "circle", "moving right", 60, 60, 34, 70),
             ToyObject("green", "triangle", "standing still", 180, 60, 34, 0)]
    video, _ = render(shown)
    result = score(caption(requested), 0, requested, detect_objects(video.numpy()))
    red, blue = result.objects
    assert red["present"] and not red["motion_ok"]
    assert not blue["present"] and not blue["motion_ok"]
    assert result.unrequested == ["green triangle"] and not result.clean
