"""The Wan adapter: where cross-attention lives in a diffusers Wan pipeline, and the shapes around it.

Covers Wan2.1 T2V (WanPipeline), Wan2.1 I2V (WanImageToVideoPipeline: the CLIP image tokens get their own
softmax, only the text softmax is captured), Wan2.2 TI2V-5B (WanPipeline with ``expand_timesteps``, x16 VAE) and
Wan2.2 A14B (``transformer`` and ``transformer_2``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import AttnscopeError, ShapeError

EXPERTS = ("transformer", "transformer_2")


@dataclass(frozen=True)
class WanGeometry:
    """Pixel ↔ token geometry of a pipeline."""

    vae_temporal: int
    vae_spatial: int
    patch: tuple[int, int, int]

    def grid(self, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
        """Latent token grid (F', H', W') for a pixel video; refuses sizes the model cannot take."""
        if (num_frames - 1) % self.vae_temporal:
            raise ShapeError(
                f"num_frames={num_frames} must be {self.vae_temporal}k+1 (e.g. 17, 33, 81) for Wan's causal VAE"
            )
        step = self.vae_spatial * self.patch[1]
        for name, value in (("height", height), ("width", width)):
            if value % step:
                raise ShapeError(f"{name}={value} must be divisible by {step} (VAE x{self.vae_spatial} · patch "
                                 f"{self.patch[1]}); try {max(step, round(value / step) * step)}")
        latent_frames = (num_frames - 1) // self.vae_temporal + 1
        return latent_frames // self.patch[0], height // step, width // step


def transformers_of(pipe) -> dict[str, torch.nn.Module]:
    """The pipeline's denoising transformers by attribute name (one, or two for Wan2.2 A14B)."""
    found = {name: getattr(pipe, name) for name in EXPERTS if getattr(pipe, name, None) is not None}
    if not found or not all(hasattr(t, "blocks") for t in found.values()):
        raise AttnscopeError(
            f"{type(pipe).__name__} is not a Wan pipeline (no transformer with .blocks); attnscope supports "
            "WanPipeline and WanImageToVideoPipeline from diffusers"
        )
    return found


def cross_attentions(transformer: torch.nn.Module) -> list[torch.nn.Module]:
    """``blocks[i].attn2`` for every block: Wan's video→text cross-attention (no rotary, no mask)."""
    return [block.attn2 for block in transformer.blocks]


def geometry(pipe) -> WanGeometry:
    transformer = next(iter(transformers_of(pipe).values()))
    return WanGeometry(
        vae_temporal=int(getattr(pipe, "vae_scale_factor_temporal", 4)),
        vae_spatial=int(getattr(pipe, "vae_scale_factor_spatial", 8)),
        patch=tuple(int(p) for p in transformer.config.patch_size),
    )


def token_grid(transformer: torch.nn.Module, hidden_states: torch.Tensor) -> tuple[int, int, int]:
    """Token grid of a transformer input (B, C, F, H, W) latents."""
    pt, ph, pw = transformer.config.patch_size
    _, _, f, h, w = hidden_states.shape
    return f // pt, h // ph, w // pw


def config_hash(pipe) -> str:
    """A short hash of the denoiser configs, to tell models apart in run metadata."""
    import hashlib
    import json

    configs = {name: dict(t.config) for name, t in transformers_of(pipe).items()}
    blob = json.dumps(configs, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def variant(pipe) -> str:
    """'t2v', 'i2v', 'ti2v' (Wan2.2 5B) or 'a14b' (Wan2.2 two experts)."""
    if getattr(pipe, "image_encoder", None) is not None or type(pipe).__name__ == "WanImageToVideoPipeline":
        return "i2v"
    if getattr(pipe, "transformer_2", None) is not None:
        return "a14b"
    if getattr(pipe.config, "expand_timesteps", False):
        return "ti2v"
    return "t2v"


# ---- the pipeline's own settings ------------------------------------------------------------------------------
# Every private diffusers attribute attnscope reads is read here, so a diffusers upgrade that renames one breaks
# this file alone (tested range: pyproject's diffusers pin).

FPS = 16  # Wan2.1 and Wan2.2 A14B
FPS_TI2V = 24  # Wan2.2 TI2V-5B


def execution_device(pipe) -> torch.device:
    """The device the pipeline runs its denoiser on (diffusers' ``_execution_device``, offloading aware)."""
    return pipe._execution_device


def guidance_scale(pipe, expert: str) -> float:
    """The guidance scale of the call in progress for ``expert`` (A14B's low-noise expert may have its own)."""
    if expert == "transformer_2" and getattr(pipe, "_guidance_scale_2", None) is not None:
        return float(pipe._guidance_scale_2)
    return float(getattr(pipe, "_guidance_scale", 1.0) or 1.0)


def cache_context(state_manager):
    """The ``cache_context(...)`` the pipeline set around the current denoiser call, or None outside one.

    ``StateManager.context`` raises when none is set; a forward outside the pipeline's loop (a user calling the
    transformer directly) is normal for us, so the attribute is read instead."""
    return state_manager._context


def fps(pipe) -> int:
    """Frames per second the model was trained for: 24 for Wan2.2 TI2V-5B, else 16."""
    return FPS_TI2V if variant(pipe) == "ti2v" else FPS


def call_defaults(pipe) -> dict:
    """Size, steps and guidance from the pipeline's own ``__call__`` signature (480×832×81, 50 steps for Wan)."""
    import inspect

    names = ("height", "width", "num_frames", "num_inference_steps", "guidance_scale")
    params = inspect.signature(type(pipe).__call__).parameters
    return {n: params[n].default for n in names if n in params and params[n].default is not inspect.Parameter.empty}


def fit_to_model(pipe, defaults: dict) -> dict:
    """``defaults`` with the size shrunk (aspect kept) until the token grid fits the transformer's rotary table.

    Wan's rotary embedding holds ``rope_max_seq_len`` positions per axis; a larger grid cannot run. Real Wan
    models (1024) take their signature's size unchanged; small ones built in code get a size they can run."""
    geo = geometry(pipe)
    limit = int(next(iter(transformers_of(pipe).values())).config.get("rope_max_seq_len", 1024))
    out = dict(defaults)
    step = geo.vae_spatial * geo.patch[1]
    if "height" in out and "width" in out:
        longest = max(out["height"], out["width"]) / step
        if longest > limit:
            scale = limit / longest
            out["height"] = max(step, int(out["height"] * scale) // step * step)
            out["width"] = max(step, int(out["width"] * scale) // step * step)
    if "num_frames" in out:
        latent = (out["num_frames"] - 1) // geo.vae_temporal + 1
        if latent // geo.patch[0] > limit:
            out["num_frames"] = (limit * geo.patch[0] - 1) * geo.vae_temporal + 1
    return out


def clean_prompt(text: str) -> str:
    """The text Wan's pipelines actually encode (diffusers' ``prompt_clean``: ftfy, HTML unescape, whitespace)."""
    from diffusers.pipelines.wan.pipeline_wan import prompt_clean

    return prompt_clean(text)


def context_parallel(transformer: torch.nn.Module):
    """``(process group, rank, world size, layout)`` when diffusers' context parallelism is enabled on
    ``transformer`` (``enable_parallelism(config=ContextParallelConfig(...))``), else None."""
    config = getattr(transformer, "_parallel_config", None)
    cp = getattr(config, "context_parallel_config", None) if config is not None else None
    if cp is None:
        return None
    layout = {"world": cp._world_size, "ulysses_degree": cp.ulysses_degree, "ring_degree": cp.ring_degree,
              "uneven": bool(cp.ulysses_anything or cp.ring_anything)}
    return cp._flattened_mesh.get_group(), cp._flattened_mesh.get_local_rank(), cp._world_size, layout
