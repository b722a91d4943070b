"""Load a Wan pipeline by name: the shipped toy model, tiny random test pipelines, hub ids or local folders."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ModelNotFoundError
from . import wan
from .info import remember

HUB_ALIASES = {
    "wan2.1-t2v-1.3b": "Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
    "wan2.1-t2v-14b": "Wan-AI/Wan2.1-T2V-14B-Diffusers",
    "wan2.1-i2v-14b-480p": "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
    "wan2.1-i2v-14b-720p": "Wan-AI/Wan2.1-I2V-14B-720P-Diffusers",
    "wan2.2-ti2v-5b": "Wan-AI/Wan2.2-TI2V-5B-Diffusers",
    "wan2.2-t2v-a14b": "Wan-AI/Wan2.2-T2V-A14B-Diffusers",
    "wan2.2-i2v-a14b": "Wan-AI/Wan2.2-I2V-A14B-Diffusers",
}
TINY = {"tiny": "t2v", "tiny-t2v": "t2v", "tiny-i2v": "i2v", "tiny-ti2v": "ti2v", "tiny-a14b": "a14b"}
TINY_DEFAULTS = {"height": 32, "width": 32, "num_frames": 9, "num_inference_steps": 4, "guidance_scale": 4.0}


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_pipeline(model: str = "toy", device: str | torch.device | None = None, dtype: torch.dtype | None = None):
    """Return a ready diffusers Wan pipeline.

    ``model``: "toy" (shipped, offline), "tiny[-i2v|-ti2v|-a14b]" (random, for tests), a short alias such as
    "wan2.1-t2v-1.3b", a hub id ("Wan-AI/Wan2.1-T2V-1.3B-Diffusers") or a local diffusers folder (one written
    by `attnscope toy train` gets the toy's defaults).
    ``dtype`` defaults to bfloat16 on CUDA and float32 on the CPU; Wan's VAE always runs in float32.
    """
    device = torch.device(device) if device is not None else default_device()
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if model in TINY:
        from .tiny import build_tiny_pipeline

        pipe = build_tiny_pipeline(TINY[model])
        defaults = TINY_DEFAULTS
    elif model == "toy":
        from ..toy.model import TOY_DEFAULTS, TOY_WEIGHTS_DIR

        if not (Path(TOY_WEIGHTS_DIR) / "model_index.json").exists():
            raise ModelNotFoundError(
                f"the toy model's weights are missing from {TOY_WEIGHTS_DIR}; reinstall attnscope or train them "
                "with `attnscope toy train`"
            )
        pipe = _from_pretrained(str(TOY_WEIGHTS_DIR), torch.float32)
        defaults = TOY_DEFAULTS
    elif (Path(model).expanduser() / "train_state.json").exists():  # a folder `attnscope toy train` wrote
        from ..toy.model import TOY_DEFAULTS

        pipe = _from_pretrained(model, torch.float32)
        defaults = TOY_DEFAULTS  # not Wan's 480×832×81: a toy model knows only 256² × 17 frames
    else:
        pipe = _from_pretrained(HUB_ALIASES.get(model, model), dtype)
        defaults = wan.fit_to_model(pipe, wan.call_defaults(pipe))  # Wan's own: 480×832×81, 50 steps
    pipe.to(device)
    if getattr(pipe, "vae", None) is not None and pipe.vae.dtype != torch.float32:
        pipe.vae.to(torch.float32)
    pipe.set_progress_bar_config(leave=False)
    remember(pipe, model, defaults)
    return pipe


def _from_pretrained(source: str, dtype: torch.dtype):
    from diffusers import DiffusionPipeline

    local = Path(source).expanduser()
    if local.exists() and not (local / "model_index.json").exists():
        raise ModelNotFoundError(f"{local} is not a diffusers pipeline folder (no model_index.json)")
    try:
        return DiffusionPipeline.from_pretrained(str(local) if local.exists() else source, dtype=dtype)
    except OSError as exc:
        raise ModelNotFoundError(
            f"could not load '{source}' ({type(exc).__name__}). The weights are not on this machine and the hub "
            f"cannot be reached: download them where you have network, e.g. `hf download {source} --local-dir "
            f"./{source.split('/')[-1]}`, then pass that folder as --model"
        ) from exc
