"""Tiny random Wan pipelines of every variant, built in code.

Why: no hub is reachable here, and tests must exercise exactly the diffusers classes users run (UMT5 text
encoder, Wan VAE, WanTransformer3DModel, the Wan pipelines) — only smaller. Timing and exactness do not depend
on weight values, so random weights prove the capture machinery on every variant.
"""

from __future__ import annotations

from typing import Literal

import torch
from diffusers import (
    AutoencoderKLWan,
    FlowMatchEulerDiscreteScheduler,
    WanImageToVideoPipeline,
    WanPipeline,
    WanTransformer3DModel,
)
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    UMT5Config,
    UMT5EncoderModel,
)

from .tokenizer import build_word_tokenizer

Variant = Literal["t2v", "i2v", "ti2v", "a14b"]
VARIANTS: tuple[str, ...] = ("t2v", "i2v", "ti2v", "a14b")

TINY_WORDS = ["a", "an", "the", "and", "of", "with", "in", "on", "is", "red", "green", "blue", "yellow", "white", "black", "cat", "dog", "soccer", "ball", "circle", "square", "triangle", "moving", "left", "right", "up", "down", "standing", "still", "playing", "jumping", "big", "small", "kiss", "two", "people"]

TEXT_DIM = 32


def _text_encoder() -> UMT5EncoderModel:
    config = UMT5Config(
        vocab_size=len(TINY_WORDS) + 3, d_model=TEXT_DIM, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=32, pad_token_id=0,
        eos_token_id=1, decoder_start_token_id=0,
    )
    return UMT5EncoderModel(config).eval()


def _transformer(in_channels: int, out_channels: int, image_dim: int | None = None) -> WanTransformer3DModel:
    return WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8, in_channels=in_channels,
        out_channels=out_channels, text_dim=TEXT_DIM, freq_dim=16, ffn_dim=32, num_layers=3,
        cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=8,
        image_dim=image_dim, added_kv_proj_dim=16 if image_dim else None,
    ).eval()


def _vae(wan22: bool = False) -> AutoencoderKLWan:
    if wan22:  # Wan2.2 TI2V-5B: 48 latent channels, pixel patchify 2, so x16 in space
        return AutoencoderKLWan(
            base_dim=4, z_dim=48, in_channels=12, out_channels=12, is_residual=True, patch_size=2,
            dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True],
            latents_mean=[0.0] * 48, latents_std=[1.0] * 48, scale_factor_spatial=16, scale_factor_temporal=4,
        ).eval()
    return AutoencoderKLWan(
        base_dim=4, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True],
        latents_mean=[0.0] * 4, latents_std=[1.0] * 4,
    ).eval()


def build_tiny_pipeline(variant: Variant = "t2v", seed: int = 0) -> WanPipeline | WanImageToVideoPipeline:
    """Return a random tiny pipeline of ``variant``: Wan2.1 T2V, Wan2.1 I2V, Wan2.2 TI2V-5B or Wan2.2 A14B.

    Sizes: 3 layers, 2 heads x 8; latent grid of a 17x32x32 video is 5x2x2 tokens (x8 VAE) or 5x1x1 (x16). The
    rotary table holds 8 positions per axis, so a grid up to 8x8x8 tokens (e.g. 29 frames x 128 x 128 px).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown tiny variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    torch.manual_seed(seed)
    tokenizer = build_word_tokenizer(TINY_WORDS)
    text_encoder = _text_encoder()
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    if variant == "i2v":
        clip_config = CLIPVisionConfig(
            hidden_size=16, projection_dim=16, num_hidden_layers=2, num_attention_heads=2, image_size=32,
            intermediate_size=32, patch_size=8,
        )
        image_encoder = CLIPVisionModelWithProjection(clip_config).eval()
        image_processor = CLIPImageProcessorPil(crop_size=32, size=32)
        vae = _vae()
        transformer = _transformer(in_channels=4 * 2 + 4, out_channels=4, image_dim=16)
        return WanImageToVideoPipeline(
            tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler,
            image_processor=image_processor, image_encoder=image_encoder, transformer=transformer,
        )
    if variant == "ti2v":
        vae = _vae(wan22=True)
        transformer = _transformer(48, 48)
        return WanPipeline(
            tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler,
            transformer=transformer, expand_timesteps=True,
        )
    vae = _vae()
    transformer = _transformer(4, 4)
    if variant == "a14b":
        transformer_2 = _transformer(4, 4)
        return WanPipeline(
            tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler,
            transformer=transformer, transformer_2=transformer_2, boundary_ratio=0.875,
        )
    return WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler, transformer=transformer)
