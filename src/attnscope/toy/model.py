"""The toy Wan: a real diffusers Wan pipeline (UMT5 text encoder, Wan VAE, WanTransformer3DModel), small.

Configs are data. The pipeline is the very class users run for Wan2.1, so capture, rendering and bending run
on it unchanged. Sizes: 256×256 px, 17 frames → VAE ×8 space, ×4 time → 5×32×32 latents → 1×2×2 patches →
5×16×16 = 1,280 video tokens.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
from transformers import UMT5Config, UMT5EncoderModel

from ..models.tokenizer import build_word_tokenizer
from .world import VOCAB

TOY_WEIGHTS_DIR = Path(__file__).parent / "weights"
Z_DIM = 8

VAE_CONFIG = dict(base_dim=16, z_dim=Z_DIM, dim_mult=[1, 2, 2, 4], num_res_blocks=1, attn_scales=[],
                  temperal_downsample=[False, True, True], dropout=0.0,
                  latents_mean=[0.0] * Z_DIM, latents_std=[1.0] * Z_DIM)
TEXT_CONFIG = dict(vocab_size=len(VOCAB) + 3, d_model=128, d_kv=32, d_ff=256, num_layers=3, num_heads=4,
                   relative_attention_num_buckets=16, relative_attention_max_distance=32, dropout_rate=0.0,
                   pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, feed_forward_proj="gated-gelu")
TRANSFORMER_CONFIG = dict(patch_size=(1, 2, 2), num_attention_heads=8, attention_head_dim=32, in_channels=Z_DIM,
                          out_channels=Z_DIM, text_dim=128, freq_dim=64, ffn_dim=512, num_layers=8,
                          cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=64)
SCHEDULER_CONFIG = dict(prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000,
                        flow_shift=3.0)
TOY_DEFAULTS = {"height": 256, "width": 256, "num_frames": 17, "num_inference_steps": 20, "guidance_scale": 4.0}


def build_toy_pipeline(seed: int = 0) -> WanPipeline:
    """The toy pipeline with random weights (what `attnscope toy train` starts from)."""
    torch.manual_seed(seed)
    return WanPipeline(
        tokenizer=build_word_tokenizer(VOCAB),
        text_encoder=UMT5EncoderModel(UMT5Config(**TEXT_CONFIG)),
        vae=AutoencoderKLWan(**VAE_CONFIG),
        transformer=WanTransformer3DModel(**TRANSFORMER_CONFIG),
        scheduler=UniPCMultistepScheduler(**SCHEDULER_CONFIG),
    )


def load_toy_pipeline(model: str | Path = "toy", device: str | torch.device | None = None) -> WanPipeline:
    """The shipped toy pipeline ("toy") or a trained folder, in float32 on ``device`` (default: cuda if any)."""
    from ..errors import ModelNotFoundError

    folder = TOY_WEIGHTS_DIR if str(model) == "toy" else Path(model)
    if not (folder / "model_index.json").exists():
        raise ModelNotFoundError(f"{folder} holds no trained toy pipeline (model_index.json); train one with "
                                 "`attnscope toy train --out DIR` and pass --model DIR")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return WanPipeline.from_pretrained(str(folder), dtype=torch.float32).to(device)
