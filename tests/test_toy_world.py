"""The toy world: masks are the pixels, captions are the content, seeds decide everything."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnscope.toy.data import training_seed
from attnscope.toy.world import (
    COLOURS,
    EVAL_SEED_BASE,
    FRAMES,
    MOTIONS,
    SIZE,
    caption,
    parse_caption,
    render,
    render_batch,
    scene_for_seed,
)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_masks_are_exactly_the_coloured_pixels(seed):
    objects = scene_for_seed(seed)
    video, masks = render(objects)
    assert video.shape == (FRAMES, SIZE, SIZE, 3) and video.dtype == torch.uint8
    assert masks.shape == (len(objects), FRAMES, SIZE, SIZE)
    assert not (masks.sum(0) > 1).any(), "objects must never overlap"
    for obj, mask in zip(objects, masks, strict=True):
        assert mask[0].sum() > 2000, "an object covers several 16 px tokens"
        assert (video[mask] == torch.tensor(COLOURS[obj.colour], dtype=torch.uint8)).all()
    assert (video[~masks.any(0)] == 0).all(), "background is black"


@pytest.mark.parametrize("seed", range(8))
def test_masks_move_as_the_caption_says(seed):
    objects = scene_for_seed(seed)
    _, masks = render(objects)
    for obj, mask in zip(objects, masks, strict=True):
        start, end = (torch.nonzero(mask[t]).float().mean(0) for t in (0, FRAMES - 1))  # (y, x)
        moved = (end - start).flip(0).numpy()  # (dx, dy) of the centroid, px
        dx, dy = MOTIONS[obj.motion]
        if obj.motion == "standing still":
            assert np.abs(moved).max() < 1.0
        else:
            assert moved @ np.array([dx, dy]) > 40.0


def test_captions_round_trip():
    for seed in range(20):
        objects = scene_for_seed(seed)
        text = caption(objects)
        parsed = parse_caption(text)
        assert [(o.colour, o.shape, o.motion) for o in parsed] == [(o.colour, o.shape, o.motion) for o in objects]
        assert caption(parsed) == text
    assert caption(scene_for_seed(3, n_objects=2)).count(" and ") == 1


def test_parse_caption_refuses_text_outside_the_grammar():
    with pytest.raises(ValueError, match="toy phrase"):
        parse_caption("a purple circle moving left")
    with pytest.raises(ValueError):
        parse_caption("a red circle dancing")


def test_seeded_determinism_and_batch_equals_single():
    a, b = scene_for_seed(42), scene_for_seed(42)
    assert a == b and scene_for_seed(43) != a
    scenes = [scene_for_seed(s) for s in (7, 8)]
    videos, masks = render_batch(scenes)
    for i, scene in enumerate(scenes):
        video, mask = render(scene)
        assert torch.equal(videos[i], video) and torch.equal(masks[i, : len(scene)], mask)


def test_training_seeds_stay_below_the_evaluation_seeds():
    seeds = [training_seed(s, i) for s in (0, 1, 12345) for i in (0, 10**6, 600_000_000, 10**12)]
    assert max(seeds) < EVAL_SEED_BASE
