"""Footage into the model's latent space and back up its flow-matching schedule.

Wan is trained on x_t = (1 − σ)·x0 + σ·ε with the transformer told the timestep its scheduler pairs with σ
(σ · num_train_timesteps, σ being the *shifted* sigma the pipeline steps through). Re-noising a real clip's
latents the same way puts the transformer where a generation would be at that σ, so its cross-attention there
is the attention of the clip (IMAP's reading of existing videos).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import NoiseLevelError

DEFAULT_SIGMAS = (0.2, 0.5, 0.8)


@dataclass(frozen=True)
class Level:
    """One noise level: σ of x_t, and the timestep the transformer gets for it."""

    sigma: float
    timestep: float


def _flow_matching(scheduler) -> bool:
    config = scheduler.config
    return ("FlowMatch" in type(scheduler).__name__ or bool(getattr(config, "use_flow_sigmas", False))
            or getattr(config, "prediction_type", None) == "flow_prediction")


def noise_levels(scheduler, sigmas: list[float] | tuple[float, ...] | None = None,
                 steps: int | None = None) -> list[Level]:
    """The levels to analyze at: ``sigmas`` as given, or the first ``steps`` levels of the scheduler's own
    ``steps``-step schedule (noisiest first, as a generation visits them). Default: 0.2, 0.5, 0.8."""
    if not _flow_matching(scheduler):
        raise NoiseLevelError(f"{type(scheduler).__name__} is not a flow-matching scheduler; analyze re-noises "
                              "footage along Wan's flow-matching schedule")
    if sigmas is not None and steps is not None:
        raise NoiseLevelError("give noise levels as --sigmas or as --steps, not both")
    probe = type(scheduler).from_config(scheduler.config)  # the pipeline's own scheduler keeps its state
    if steps is not None:
        if steps < 1:
            raise NoiseLevelError(f"--steps {steps}: need at least one noise level")
        probe.set_timesteps(steps)
        return [Level(float(s), float(t)) for s, t in zip(probe.sigmas[:steps], probe.timesteps[:steps], strict=True)]
    sigmas = list(DEFAULT_SIGMAS if sigmas is None else sigmas)
    if not sigmas:
        raise NoiseLevelError("no noise levels given; pass e.g. --sigmas 0.2,0.5,0.8")
    bad = [s for s in sigmas if not 0.0 < s <= 1.0]
    if bad:
        raise NoiseLevelError(f"sigma {bad[0]:g} is outside (0, 1]: σ = 0 is the clean clip (no noise left to "
                              "read attention from), σ = 1 pure noise")
    probe.set_timesteps(2)
    integer = not probe.timesteps.is_floating_point()  # UniPC hands the transformer int64 timesteps
    n = int(scheduler.config.num_train_timesteps)
    return [Level(float(s), float(int(s * n)) if integer else float(s * n)) for s in sigmas]


def encode(pipe, frames: np.ndarray) -> torch.Tensor:
    """uint8 frames [T, H, W, 3] → normalized latents [1, C, F', H', W'] float32, as Wan's pipelines encode a
    conditioning video: the posterior mean, then (z − latents_mean) / latents_std (the inverse of
    :func:`attnscope.generation.decode_latents`)."""
    vae = pipe.vae
    x = torch.from_numpy(frames).permute(3, 0, 1, 2)[None]  # [1, 3, T, H, W]
    x = x.to(vae.device, vae.dtype).div(127.5).sub(1.0)
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mode().float()
    mean = torch.tensor(vae.config.latents_mean, device=z.device).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std, device=z.device).view(1, -1, 1, 1, 1)
    return (z - mean) / std


def draw_noise(shape: torch.Size | tuple[int, ...], draws: int, seed: int) -> list[torch.Tensor]:
    """``draws`` standard-normal tensors, made on the CPU so a seed gives the same noise on any device. Draw d
    is reused at every level, so levels differ only in σ (a paired comparison across levels)."""
    generator = torch.Generator("cpu").manual_seed(seed)
    return [torch.randn(tuple(shape), generator=generator) for _ in range(draws)]


def noised(x0: torch.Tensor, noise: torch.Tensor, sigma: float) -> torch.Tensor:
    """x_t = (1 − σ)·x0 + σ·ε (rectified flow, as Wan is trained)."""
    return (1.0 - sigma) * x0 + sigma * noise.to(x0.device, x0.dtype)
