"""Training settings and per-stage progress of `attnscope toy train`, and the learning-rate schedule.

Kept apart from the training loops (train.py) so both the loops and the resume logic read one definition.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

STATE_FILE = "train_state.json"
POOL_SEED_OFFSET = 500_000_000  # pool scenes use training seeds from here, VAE clips below


@dataclass
class TrainConfig:
    out: Path
    seed: int = 0
    device: str | None = None
    resume: Path | None = None
    vae_steps: int = 3000
    vae_seconds: float = 0.0  # 0: no time limit
    vae_batch: int = 8
    vae_frames: int = 9
    vae_crop: int = 256  # px; random square crops of the 256 px clips (the VAE is convolutional)
    vae_decoder_only: bool = False  # keep the encoder (and so the denoiser's latent space) fixed
    vae_report: int = 24  # scenes whose per-colour reconstruction error is logged after the VAE stage (0: none)
    vae_lr: float = 1e-3
    kl_weight: float = 1e-6
    pool: int = 40_000
    pool_seconds: float = 0.0
    dit_steps: int = 20_000
    dit_seconds: float = 0.0
    dit_batch: int = 256
    dit_lr: float = 5e-4
    warmup: int = 200
    caption_dropout: float = 0.1
    shift: float = 3.0
    ema: float = 0.999
    log_every: int = 50
    save_every_seconds: float = 120.0
    workers: int = 1


@dataclass
class StageState:
    steps: int = 0
    seconds: float = 0.0
    done: bool = False
    losses: list[tuple[int, float]] = field(default_factory=list)


def _log(msg: str) -> None:
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for all
        print(f"[toy train {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _lr_factor(stage: StageState, start: StageState, total_steps: int, total_seconds: float, warmup: int) -> float:
    """Linear warm-up, then cosine to 10 % over what is left of this run's budget (steps or seconds, whichever
    runs out first). Budgets are totals over all runs, so a resumed run anneals over its own share."""
    done = stage.steps - start.steps
    progress = done / max(total_steps - start.steps, 1)
    if total_seconds > 0:
        progress = max(progress, (stage.seconds - start.seconds) / max(total_seconds - start.seconds, 1e-9))
    return min(1.0, (done + 1) / warmup) * (0.1 + 0.45 * (1.0 + math.cos(math.pi * min(progress, 1.0))))


def _finished(stage: StageState, steps: int, seconds: float) -> bool:
    return stage.steps >= steps or (seconds > 0 and stage.seconds >= seconds)
