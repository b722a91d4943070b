"""`attnscope toy train` on the CPU: two steps per stage write a loadable diffusers pipeline that resumes."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from diffusers import WanPipeline

from attnscope.models.info import model_info
from attnscope.toy.data import caption_ids, encode_text
from attnscope.toy.model import build_toy_pipeline
from attnscope.toy.train import STATE_FILE, TrainConfig, train, vae_colour_errors


def test_text_context_equals_the_pipelines():
    pipe = build_toy_pipeline(seed=1)
    prompts = ["a red circle moving left and a blue square moving up", ""]
    with torch.no_grad():
        expected = pipe.encode_prompt(prompts, do_classifier_free_guidance=False, max_sequence_length=512,
                                      device="cpu")[0]
        got = encode_text(pipe.text_encoder, *caption_ids(pipe.tokenizer, prompts))
    assert got.shape == expected.shape == (2, 512, pipe.text_encoder.config.d_model)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_two_step_training_writes_a_loadable_pipeline_and_resumes(tmp_path, capsys):
    cfg = TrainConfig(out=tmp_path / "toy", device="cpu", vae_steps=2, vae_batch=1, vae_frames=5, vae_crop=64,
                      pool=1, dit_steps=2, dit_batch=1, log_every=1, vae_report=1)
    train(cfg)
    assert "vae colour error" in capsys.readouterr().out
    state = json.loads((cfg.out / STATE_FILE).read_text())
    assert {k: v["steps"] for k, v in state["stages"].items()} == {"vae": 2, "dit": 2}
    assert all(len(v["losses"]) == 2 for v in state["stages"].values())
    pipe = WanPipeline.from_pretrained(str(cfg.out), dtype=torch.float32)
    assert pipe.vae.config.latents_std != [1.0] * pipe.vae.config.z_dim, "latent statistics are stored"
    from safetensors import safe_open

    with safe_open(str(cfg.out / "transformer" / "diffusion_pytorch_model.safetensors"), "pt") as f:
        assert f.get_tensor(next(iter(f.keys()))).dtype == torch.float16

    from attnscope.models.loading import load_pipeline
    from attnscope.toy.model import TOY_DEFAULTS

    assert model_info(load_pipeline(str(cfg.out), device="cpu")).defaults == TOY_DEFAULTS, "a trained folder is a toy"

    cfg.dit_steps = 3  # budgets are totals: a larger one continues the denoiser only
    train(cfg)
    state = json.loads((cfg.out / STATE_FILE).read_text())
    assert {k: v["steps"] for k, v in state["stages"].items()} == {"vae": 2, "dit": 3}


class _ChannelVae:
    """A stand-in VAE whose reconstruction is its input with some RGB channels set to black (-1)."""

    def __init__(self, dead: tuple[int, ...]):
        self.dead = dead

    def encode(self, x):
        return SimpleNamespace(latent_dist=SimpleNamespace(mean=x))

    def decode(self, z):
        z = z.clone()
        z[:, list(self.dead)] = -1.0
        return SimpleNamespace(sample=z)


def test_vae_colour_errors_name_the_colours_a_vae_cannot_decode():
    perfect = vae_colour_errors(_ChannelVae(()), 0, torch.device("cpu"), n=6)
    assert perfect and all(v == 0.0 for v in perfect.values())
    no_blue = vae_colour_errors(_ChannelVae((2,)), 0, torch.device("cpu"), n=12)
    assert no_blue["red"] == 0.0 and no_blue["yellow"] == 0.0
    assert no_blue["blue"] == pytest.approx(255 / 3), "pure blue loses one of three channels fully"


def test_vae_loss_sees_the_decoder_output_before_the_clamp():
    """A clamped pixel has no gradient: the loss must use the decoder's raw output (how blue was lost)."""
    from attnscope.toy.train import _Unclamped

    vae = build_toy_pipeline(seed=3).vae
    z = torch.randn(1, vae.config.z_dim, 2, 4, 4) * 30.0  # large latents: many raw outputs beyond [-1, 1]
    unclamped = _Unclamped(vae)
    raw = unclamped.decode(vae, z)
    clamped = vae.decode(z).sample
    assert raw.shape == clamped.shape
    torch.testing.assert_close(raw.clamp(-1.0, 1.0), clamped)
    outside = raw.detach().abs() > 1.0
    assert outside.any()
    target = torch.zeros_like(raw)
    (raw[outside] - target[outside]).abs().mean().backward()
    grads = [p.grad for p in vae.decoder.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads), "pixels beyond the clamp still train the decoder"
    unclamped.remove()
    assert not vae.decoder._forward_hooks
