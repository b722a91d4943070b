"""Any diffusers Wan pipeline a user builds works: defaults from its own call signature and config, fps from the
model, and nothing set on the user's object (no `attnscope.load_pipeline` involved)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import attnscope
from attnscope.models import tiny
from attnscope.video import read_mp4

# WanPipeline's own defaults are 480x832x81; the tiny models' rotary table holds 8 positions per axis, so the
# size shrinks with its aspect kept until the token grid fits: 64x128 (x8 VAE), 128x256 (TI2V's x16 VAE)
EXPECTED = {"t2v": (29, 64, 128, 16), "i2v": (29, 64, 128, 16), "ti2v": (29, 128, 256, 24), "a14b": (29, 64, 128, 16)}


@pytest.mark.parametrize("variant", tiny.VARIANTS)
def test_generate_on_a_pipeline_built_from_components(variant, tmp_path):
    pipe = tiny.build_tiny_pipeline(variant)  # WanPipeline(...)/WanImageToVideoPipeline(...) from components
    pipe.set_progress_bar_config(disable=True)
    extra = {}
    if variant == "i2v":
        extra["image"] = Image.fromarray((np.random.default_rng(0).random((64, 128, 3)) * 255).astype("uint8"))
    pipe(prompt="a cat", num_inference_steps=1, num_frames=1, height=64, width=128, output_type="latent", **extra)
    before = dict(vars(pipe))  # with the attributes diffusers' own call sets
    run = attnscope.generate(pipe, "a red circle moving left", tmp_path / variant, words=["circle"], quiet=True,
                             num_inference_steps=2, **extra)
    frames, height, width, fps = EXPECTED[variant]
    assert run.meta["pixel"] == {"frames": frames, "height": height, "width": width, "fps": fps}
    assert read_mp4(run.video_path).shape == (frames, height, width, 3)
    assert run.complete and run.maps.sizes["step"] == 2 and run.words == ["circle"]
    assert run.meta["model"]["id"] is None and run.meta["model"]["variant"] == variant
    assert set(vars(pipe)) == set(before), "generate() planted attributes on the user's pipeline"


def test_a_toy_pipeline_loaded_with_diffusers_gets_the_toy_defaults(tmp_path):
    from diffusers import WanPipeline

    from attnscope.toy.model import TOY_WEIGHTS_DIR

    pipe = WanPipeline.from_pretrained(str(TOY_WEIGHTS_DIR))
    pipe.set_progress_bar_config(disable=True)
    run = attnscope.generate(pipe, "a red circle moving left", tmp_path / "toy", words=["circle"], quiet=True,
                             num_inference_steps=1)
    assert run.meta["pixel"] == {"frames": 17, "height": 256, "width": 256, "fps": 16}
    assert run.meta["model"]["id"] == "toy"
