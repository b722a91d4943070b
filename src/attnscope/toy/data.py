"""Training data for the toy Wan: seeded scenes, their captions as token ids, and rendered pixel batches.

Why a module of its own: the trainer, the smoke test and `toy check` must agree on how a seed becomes a scene
and how a caption becomes the text encoder's input, exactly as `WanPipeline.encode_prompt` does it.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import torch
import torch.nn.functional as F

from .world import EVAL_SEED_BASE, FRAMES, SIZE, ToyObject, caption, render_batch, scene_for_seed

TEXT_LEN = 512  # WanPipeline pads the text context to 512 tokens with zeros
MAX_CAPTION_TOKENS = 24  # 3 phrases of 5 words, 2 "and", EOS: 18


def training_seed(seed: int, index: int) -> int:
    """The world seed of training sample ``index`` of a run seeded ``seed``; always below EVAL_SEED_BASE."""
    return (seed * 100_003 + index) % EVAL_SEED_BASE


def _scenes_chunk(seeds: list[int]) -> list[list[ToyObject]]:
    return [scene_for_seed(s) for s in seeds]


def scenes_for(seeds: list[int], workers: int = 1) -> list[list[ToyObject]]:
    """Scenes for many seeds, in order; ``workers`` > 1 samples them in parallel processes."""
    if workers <= 1 or len(seeds) < 2000:
        return _scenes_chunk(seeds)
    size = -(-len(seeds) // workers)
    chunks = [seeds[i:i + size] for i in range(0, len(seeds), size)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:  # no fork under CUDA
        return [scene for part in pool.map(_scenes_chunk, chunks) for scene in part]


def caption_ids(tokenizer, captions: list[str], length: int = MAX_CAPTION_TOKENS) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask [B, length] as the pipeline's tokenizer call makes them (EOS appended)."""
    enc = tokenizer(captions, padding="max_length", max_length=length, truncation=True, add_special_tokens=True,
                    return_attention_mask=True, return_tensors="pt")
    return enc.input_ids, enc.attention_mask


def encode_text(text_encoder, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Text context [B, 512, D] equal to `WanPipeline.encode_prompt`'s: real tokens encoded, padding zeroed.

    Encoding only the first few positions is exact: the pipeline masks padding keys in the encoder, and UMT5's
    relative position bias does not depend on the sequence length.
    """
    hidden = text_encoder(ids, attention_mask=mask).last_hidden_state  # [B, L, D]
    hidden = hidden * mask[..., None].to(hidden.dtype)
    return F.pad(hidden, (0, 0, 0, TEXT_LEN - hidden.shape[1]))  # [B, 512, D]


def video_batch(scenes: list[list[ToyObject]], device: torch.device, frames: int = FRAMES,
                size: int = SIZE) -> torch.Tensor:
    """Rendered scenes as the VAE's input: float [B, 3, T, H, W] in [-1, 1]."""
    video, _ = render_batch(scenes, frames, size, device)  # [B, T, H, W, 3] uint8
    return vae_input(video)


def vae_input(video: torch.Tensor) -> torch.Tensor:
    """uint8 videos [B, T, H, W, 3] as the VAE's input: float [B, 3, T, H, W] in [-1, 1]."""
    return video.permute(0, 4, 1, 2, 3).float().div(127.5).sub(1.0)


def captions_of(scenes: list[list[ToyObject]]) -> list[str]:
    return [caption(s) for s in scenes]


def sample_sigmas(n: int, shift: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Noise levels for flow matching: logit-normal, then Wan's time shift (more weight on high noise)."""
    u = torch.sigmoid(torch.randn(n, generator=generator, device=device))
    return shift * u / (1.0 + (shift - 1.0) * u)
