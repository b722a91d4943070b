"""Train the toy Wan: the VAE first, then the transformer and text encoder with Wan's flow-matching objective.

Stages, each bounded by steps and (optionally) wall seconds so a run fits a lease of the GPU machine:
1. VAE: pixel reconstruction (L1 + L2, object pixels weighted up) + a small KL term, on rendered clips.
2. Latent pool: a fixed set of seeded scenes encoded once by the trained VAE (posterior mean); the per-channel
   latent mean/std go into the VAE config, exactly where `WanPipeline` reads them to normalize latents.
3. Denoiser: x_t = (1 - σ) x0 + σ ε, the transformer predicts ε - x0 (Wan's flow target) from the text context
   of the caption (dropped to "" 10 % of the time, for classifier-free guidance); σ is logit-normal with Wan's
   time shift. An EMA of the transformer and text encoder weights is what gets saved.
Seeds: training scenes use world seeds below `EVAL_SEED_BASE` (10^9); `toy check` and eval use seeds above.
The output folder is a diffusers pipeline (`save_pretrained`, fp16) plus `train_state.json` (config, steps,
losses, seconds), from which a later run resumes. Under ``torchrun`` every stage is data-parallel over the GPUs
(`parallel.py`): batch sizes are per process.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import AttnscopeError
from .data import (
    caption_ids,
    captions_of,
    encode_text,
    sample_sigmas,
    scenes_for,
    training_seed,
    vae_input,
    video_batch,
)
from .model import build_toy_pipeline
from .parallel import Parallel
from .trainconfig import (  # noqa: F401  (STATE_FILE and TrainConfig are this module's API too)
    POOL_SEED_OFFSET,
    STATE_FILE,
    StageState,
    TrainConfig,
    _finished,
    _log,
    _lr_factor,
)
from .world import FRAMES, SIZE, render_batch


def _load(cfg: TrainConfig):
    source = cfg.resume if cfg.resume is not None else (cfg.out if (cfg.out / STATE_FILE).exists() else None)
    if source is None:
        return build_toy_pipeline(cfg.seed), {"vae": StageState(), "dit": StageState()}
    source = Path(source)
    if not (source / STATE_FILE).exists():
        raise AttnscopeError(f"{source} has no {STATE_FILE}: resume from a folder written by `attnscope toy train`")
    from diffusers import WanPipeline

    pipe = WanPipeline.from_pretrained(str(source), dtype=torch.float32)
    raw = json.loads((source / STATE_FILE).read_text())
    stages = {k: StageState(**{**v, "losses": [tuple(x) for x in v["losses"]]}) for k, v in raw["stages"].items()}
    _log(f"resumed from {source}: " + ", ".join(f"{k} {v.steps} steps" for k, v in stages.items()))
    return pipe, stages


def save(pipe, cfg: TrainConfig, stages: dict[str, StageState], out: Path | None = None) -> Path:
    """Write the pipeline in fp16 diffusers format and the training state beside it."""
    from diffusers.utils import logging as diffusers_logging

    out = Path(out or cfg.out)
    level = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # the fp16 copy is for storage only; its warnings are noise
    try:
        copy.deepcopy(pipe).to("cpu", torch.float16).save_pretrained(str(out))
    finally:
        diffusers_logging.set_verbosity(level)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
    state = {"config": config, "stages": {k: asdict(v) for k, v in stages.items()}}
    (out / STATE_FILE).write_text(json.dumps(state, indent=1))
    return out


class _Saver:
    """Saves every ``save_every_seconds`` (rank 0 only: the other processes hold the same weights)."""

    def __init__(self, pipe, cfg: TrainConfig, stages: dict[str, StageState], par: Parallel):
        self.pipe, self.cfg, self.stages, self.par, self.last = pipe, cfg, stages, par, time.time()

    def maybe(self, before_save=None) -> bool:
        if time.time() - self.last >= self.cfg.save_every_seconds:
            self.now(before_save)
            return True
        return False

    def now(self, before_save=None) -> None:
        if not self.par.main:
            self.last = time.time()
            return
        if before_save is not None:
            with before_save():
                save(self.pipe, self.cfg, self.stages)
        else:
            save(self.pipe, self.cfg, self.stages)
        self.last = time.time()


class _Unclamped:
    """The VAE decoder's output before ``AutoencoderKLWan`` clamps it to [-1, 1], for the training loss.

    Why: a clamped pixel has no gradient, so once the decoder pushes a colour channel below -1 (the cheap way to
    draw the black background), objects of that colour can never come back; that is how earlier toy VAEs lost
    blue and green. A forward hook keeps each frame's decoder output (diffusers decodes frame by frame).
    """

    def __init__(self, vae) -> None:
        self.frames: list[torch.Tensor] = []
        self.handle = vae.decoder.register_forward_hook(lambda module, args, out: self.frames.append(out))

    def decode(self, vae, z: torch.Tensor) -> torch.Tensor:
        self.frames = []
        vae.decode(z)
        out, self.frames = torch.cat(self.frames, dim=2), []
        return out

    def remove(self) -> None:
        self.handle.remove()


def train_vae(pipe, cfg: TrainConfig, stage: StageState, device: torch.device, saver: _Saver,
              par: Parallel = Parallel()) -> None:
    vae = pipe.vae.to(device).train()
    trained = [*vae.decoder.parameters(), *vae.post_quant_conv.parameters()] if cfg.vae_decoder_only else list(
        vae.parameters())
    par.broadcast(list(vae.parameters()))
    opt = torch.optim.AdamW(trained, lr=cfg.vae_lr, weight_decay=0.0, betas=(0.9, 0.99))
    gen = torch.Generator(device).manual_seed(cfg.seed * 7 + stage.steps + 1_000_003 * par.rank)
    unclamped = _Unclamped(vae)
    window: list[float] = []
    begin = copy.copy(stage)
    while not _finished(stage, cfg.vae_steps, cfg.vae_seconds):
        start = time.time()
        first = (stage.steps * par.world + par.rank) * cfg.vae_batch  # each process its own clips
        seeds = [training_seed(cfg.seed, first + i) for i in range(cfg.vae_batch)]
        clip = video_batch(scenes_for(seeds), device)  # [B, 3, 17, H, W]
        t0 = int(torch.randint(0, clip.shape[2] - cfg.vae_frames + 1, (1,), generator=gen, device=device))
        y0, x0 = (int(v) for v in torch.randint(0, clip.shape[-1] - cfg.vae_crop + 1, (2,), generator=gen,
                                                device=device))
        x = clip[:, :, t0:t0 + cfg.vae_frames, y0:y0 + cfg.vae_crop, x0:x0 + cfg.vae_crop]  # [B, 3, f, c, c]
        for group in opt.param_groups:
            group["lr"] = cfg.vae_lr * _lr_factor(stage, begin, cfg.vae_steps, cfg.vae_seconds, 50)
        with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
            with torch.set_grad_enabled(not cfg.vae_decoder_only):
                posterior = vae.encode(x).latent_dist
            # A decoder trained alone serves the denoiser, whose targets are posterior means: sampling noise as
            # large as the gap between blue and the background would teach it to draw blue as background.
            z = posterior.mean if cfg.vae_decoder_only else posterior.mean + posterior.std * torch.randn(
                posterior.mean.shape, generator=gen, device=device)
            rec = unclamped.decode(vae, z).float()
        weight = 1.0 + 4.0 * (x > -0.5).any(dim=1, keepdim=True).float()  # object pixels count 5x
        err = rec - x
        kl = 0.5 * (posterior.mean.float() ** 2 + posterior.var.float() - 1.0 - posterior.logvar.float()).mean()
        loss = (weight * err.abs()).mean() + (weight * err * err).mean() + cfg.kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        par.average_gradients(trained)
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        opt.step()
        stage.steps += 1
        window.append(loss.item())
        stage.seconds += par.agree(time.time() - start, device)
        if stage.steps % cfg.log_every == 0:
            stage.losses.append((stage.steps, sum(window) / len(window)))
            _log(f"vae step {stage.steps} loss {stage.losses[-1][1]:.4f} kl {float(kl.detach()):.2f} "
                 f"{stage.seconds:.0f}s")
            window = []
            if saver.maybe() and par.main and cfg.vae_report:
                _log_colour_errors(vae, cfg, device)
    unclamped.remove()
    stage.done = True
    vae.eval()
    if cfg.vae_report and par.main:
        _log_colour_errors(vae, cfg, device)


def _log_colour_errors(vae, cfg: TrainConfig, device: torch.device) -> None:
    errors = vae_colour_errors(vae, cfg.seed, device, cfg.vae_report)
    _log("vae colour error (mean |rec - x| on object pixels, 0-255): " + ", ".join(
        f"{k} {v:.0f}" for k, v in errors.items()))


@torch.no_grad()
def vae_colour_errors(vae, seed: int, device: torch.device, n: int = 24) -> dict[str, float]:
    """Reconstruction error per object colour: a colour the VAE cannot decode shows up here at once (why: a
    first model decoded blue and green as black, and the denoiser cannot fix that)."""
    scenes = scenes_for([training_seed(seed + 1, 10_000_000 + i) for i in range(n)])
    video, masks = render_batch(scenes, FRAMES, SIZE, device)  # [B, T, H, W, 3], [B, 3, T, H, W]
    x = vae_input(video)
    with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
        rec = vae.decode(vae.encode(x).latent_dist.mean).sample.float()
    err = (rec - x).abs().mean(dim=1) * 127.5  # [B, T, H, W]
    sums: dict[str, list[float]] = {}
    for i, scene in enumerate(scenes):
        for slot, obj in enumerate(scene):
            sums.setdefault(obj.colour, []).append(float(err[i][masks[i, slot]].mean()))
    return {k: sum(v) / len(v) for k, v in sorted(sums.items())}


@torch.no_grad()
def build_pool(pipe, cfg: TrainConfig, device: torch.device, par: Parallel = Parallel()
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Encode seeded scenes once: normalized latents [N, C, 5, 32, 32] (bf16) and caption ids/masks [N, L].

    Under torchrun each process encodes its own share of the scenes and keeps it; the latent statistics are
    pooled over all processes, so every process normalizes the same way."""
    start = time.time()
    seeds = [training_seed(cfg.seed, POOL_SEED_OFFSET + i) for i in range(par.rank, cfg.pool, par.world)]
    scenes = scenes_for(seeds, cfg.workers)
    _log(f"pool: sampled {len(scenes)} scenes in {time.time() - start:.0f}s")
    vae = pipe.vae.to(device).eval()
    latents = []
    batch = 32
    for i in range(0, len(scenes), batch):
        x = video_batch(scenes[i:i + batch], device)  # [b, 3, 17, H, W]
        with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
            latents.append(vae.encode(x).latent_dist.mean.to(torch.bfloat16))
        if cfg.pool_seconds > 0 and time.time() - start > cfg.pool_seconds:
            break
    pool = torch.cat(latents)  # [N, C, F', H', W']
    scenes = scenes[: pool.shape[0]]
    flat = pool.double().transpose(0, 1).reshape(pool.shape[1], -1)  # [C, N·F'·H'·W']
    moments = par.sum(torch.stack([flat.new_full((flat.shape[0],), flat.shape[1]), flat.sum(1),
                                   (flat * flat).sum(1)]))  # count, sum, sum of squares per channel
    count, total, squares = moments
    mean = total / count
    std = ((squares - count * mean * mean) / (count - 1)).clamp_min(1e-6).sqrt().clamp_min(1e-3)
    mean, std = mean.float(), std.float()
    pipe.vae.register_to_config(latents_mean=mean.tolist(), latents_std=std.tolist())
    pool = ((pool.float() - mean.view(1, -1, 1, 1, 1)) / std.view(1, -1, 1, 1, 1)).to(torch.bfloat16)
    ids, mask = caption_ids(pipe.tokenizer, captions_of(scenes))
    _log(f"pool: {pool.shape[0]} clips encoded per process ({par.world} processes) in {time.time() - start:.0f}s; "
         f"latent std {std.tolist()}")
    return pool, ids.to(device), mask.to(device)


class _Ema:
    """Exponential moving average of parameters; `swapped()` puts the averages in place while saving."""

    def __init__(self, modules: list[torch.nn.Module], decay: float):
        self.params = [p for m in modules for p in m.parameters()]
        self.shadow = [p.detach().clone() for p in self.params]
        self.decay = decay

    @torch.no_grad()
    def update(self, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1.0 - decay)

    def swapped(self):
        ema = self

        class _Swap:
            def __enter__(self):
                self.saved = [p.detach().clone() for p in ema.params]
                with torch.no_grad():
                    for p, s in zip(ema.params, ema.shadow, strict=True):
                        p.copy_(s)

            def __exit__(self, *exc):
                with torch.no_grad():
                    for p, s in zip(ema.params, self.saved, strict=True):
                        p.copy_(s)

        return _Swap()


def train_denoiser(pipe, cfg: TrainConfig, stage: StageState, device: torch.device, saver: _Saver,
                   par: Parallel = Parallel()) -> None:
    pool, ids, mask = build_pool(pipe, cfg, device, par)
    empty_ids, empty_mask = (t.to(device) for t in caption_ids(pipe.tokenizer, [""]))
    transformer = pipe.transformer.to(device).train()
    text_encoder = pipe.text_encoder.to(device).train()
    params = [*transformer.parameters(), *text_encoder.parameters()]
    par.broadcast(params)
    opt = torch.optim.AdamW(params, lr=cfg.dit_lr, weight_decay=0.01, betas=(0.9, 0.99),
                            fused=device.type == "cuda")
    ema = _Ema([transformer, text_encoder], cfg.ema)
    gen = torch.Generator(device).manual_seed(cfg.seed * 13 + stage.steps + 1_000_003 * par.rank)
    window: list[torch.Tensor] = []
    n = pool.shape[0]
    begin = copy.copy(stage)
    start = time.time()
    while not _finished(stage, cfg.dit_steps, cfg.dit_seconds):
        idx = torch.randint(0, n, (cfg.dit_batch,), generator=gen, device=device)
        x0 = pool[idx].float()  # [B, C, F', H', W']
        drop = (torch.rand(cfg.dit_batch, generator=gen, device=device) < cfg.caption_dropout)[:, None]
        batch_ids = torch.where(drop, empty_ids, ids[idx])
        batch_mask = torch.where(drop, empty_mask, mask[idx])
        sigma = sample_sigmas(cfg.dit_batch, cfg.shift, gen, device)
        noise = torch.randn(x0.shape, generator=gen, device=device)
        s = sigma.view(-1, 1, 1, 1, 1)
        xt = (1.0 - s) * x0 + s * noise
        for group in opt.param_groups:
            group["lr"] = cfg.dit_lr * _lr_factor(stage, begin, cfg.dit_steps, cfg.dit_seconds, cfg.warmup)
        with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
            context = encode_text(text_encoder, batch_ids, batch_mask)
            pred = transformer(xt, timestep=sigma * 1000.0, encoder_hidden_states=context, return_dict=False)[0]
        loss = F.mse_loss(pred.float(), noise - x0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        par.average_gradients(params)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema.update(stage.steps)
        stage.steps += 1
        window.append(loss.detach())
        # Several processes agree on the time at log steps only (agreeing waits for the GPUs), so a stage ends at
        # the same step everywhere; one process counts every step. The loss logged is the mean over processes.
        log_now = stage.steps % cfg.log_every == 0 or _finished(stage, cfg.dit_steps, 0.0)
        if log_now or par.world == 1:
            if log_now and device.type == "cuda":
                torch.cuda.synchronize()
            stage.seconds += par.agree(time.time() - start, device)
            start = time.time()
        if log_now:
            stage.losses.append((stage.steps, float(par.sum(torch.stack(window).mean()) / par.world)))
            window = []
            _log(f"dit step {stage.steps} loss {stage.losses[-1][1]:.4f} {stage.seconds:.0f}s")
            saver.maybe(ema.swapped)
    stage.done = True
    with ema.swapped():
        transformer.eval()
        text_encoder.eval()
        saver.now()
    with torch.no_grad():
        for p, s in zip(ema.params, ema.shadow, strict=True):
            p.copy_(s)


def train(cfg: TrainConfig) -> Path:
    """Run (or resume) the stages not yet done and save the pipeline to ``cfg.out``."""
    par = Parallel.from_env(cfg.device)
    device = par.device(cfg.device)
    torch.manual_seed(cfg.seed)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    cfg.out.mkdir(parents=True, exist_ok=True)
    pipe, stages = _load(cfg)
    saver = _Saver(pipe, cfg, stages, par)
    for stage, steps, seconds in ((stages["vae"], cfg.vae_steps, cfg.vae_seconds),
                                  (stages["dit"], cfg.dit_steps, cfg.dit_seconds)):
        stage.done = _finished(stage, steps, seconds)  # budgets are totals: a larger one continues a stage
    if not stages["vae"].done:
        train_vae(pipe, cfg, stages["vae"], device, saver, par)
        saver.now()
    if not stages["dit"].done:
        train_denoiser(pipe, cfg, stages["dit"], device, saver, par)
    saver.now()
    _log(f"saved to {cfg.out}" + (f" (data-parallel over {par.world} processes)" if par.world > 1 else ""))
    par.close()
    return cfg.out
