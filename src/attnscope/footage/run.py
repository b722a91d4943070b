"""``attnscope.analyze``: the cross-attention of an existing video, read by re-noising it (IMAP's method).

The clip is encoded with the pipeline's VAE, noised to each chosen level σ, and given to the transformer once
per level and noise draw, conditioned on the caption (no CFG: the maps of a generation are the cond branch's
too). Each forward runs inside ``transformer.cache_context("cond", step_index=i, sigma=σ, ...)``, the very
context a Wan pipeline opens per step, so ``attnscope.trace`` captures it as step i of a run without knowing it
is not generating: the Run folder is an ordinary one (every renderer, the viewer and eval read it), its step
dimension the noise level and its video.mp4 the clip as the model saw it.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..capture.words import resolve_words
from ..errors import AttnscopeError, NoiseLevelError, RunExistsError
from ..generation import PREVIEW_SIDE, decode_latents, downscale
from ..models import wan
from ..models.info import model_info
from ..store import Run, open_run
from ..store.layout import is_run
from ..store.size import check_fits, estimate_store_bytes, human_bytes
from ..tracing import trace
from ..video import write_mp4
from .clip import Footage, fit, read_footage
from .draws import average_draws
from .noising import Level, draw_noise, encode, noise_levels, noised


def analyze(pipe, video: str | Path | np.ndarray | Footage, caption: str, *, out: str | Path,
            words: list[str] | None = None, sigmas: list[float] | None = None, steps: int | None = None,
            draws: int = 1, seed: int = 0, frames: int | None = None, height: int | None = None,
            width: int | None = None, fps: float | None = None, heads="all", layers="all",
            value_norm: bool = False, self_prop: bool = False, previews: bool | None = None,
            overwrite: bool = False, quiet: bool = False, meta: dict[str, Any] | None = None) -> Run:
    """Capture what ``pipe`` attends to in ``video`` (a file or uint8 [T, H, W, 3]) for the ``words`` of
    ``caption``; writes a Run folder at ``out`` whose step i is noise level i.

    Levels are ``sigmas`` (default 0.2, 0.5, 0.8) or the first ``steps`` of the scheduler's own schedule;
    ``draws`` noise draws per level are averaged (the store keeps the mean, one slab per level). The clip is
    fitted to the model (at most ``frames`` frames, default the model's, cut to 4k+1; centre crop and resize to
    ``height`` × ``width``, default the model's size), which is printed and kept in ``meta.source.resize``.
    ``previews`` decodes the model's clean-clip estimate at each level (default: on a GPU only). Bad input
    (unreadable or short clip, a word not in the caption, bad levels) raises before anything is written.
    """
    out = Path(out)
    if is_run(out) and not overwrite:
        raise RunExistsError(f"{out} already holds a run; choose another --out or pass --overwrite")
    if draws < 1:
        raise NoiseLevelError(f"--draws {draws}: need at least one noise draw per level")
    if wan.variant(pipe) == "i2v":
        raise AttnscopeError("analyze reads text-to-video Wan pipelines; an image-to-video one needs an image "
                             "condition the footage does not give it")
    levels = noise_levels(pipe.scheduler, sigmas, steps)
    clip = _fit(pipe, read_footage(video, fps), frames, height, width)
    geometry = wan.geometry(pipe)
    grid = geometry.grid(*clip.shape)
    store = out if draws == 1 else out.parent / f".{out.name}.draws"
    source = {"video": clip.source, "sigmas": [lv.sigma for lv in levels], "timesteps": [lv.timestep for lv in levels],
              "levels_from": "steps" if steps is not None else "sigmas", "draws": draws, "resize": clip.resize}
    t, h, w = clip.shape
    tr = trace(pipe, words=words, store=store, heads=heads, layers=layers, value_norm=value_norm,
               self_prop=self_prop, overwrite=True if draws > 1 else overwrite, meta={
                   "seed": seed, "negative_prompt": None, "guidance_scale": None,
                   "pixel": {"frames": t, "height": h, "width": w, "fps": clip.fps}, "source": source,
                   **(meta or {})})
    text = tr.prompt(caption)  # a word missing from the caption fails here, before anything is written
    entries, _ = resolve_words(text, tr.words_requested, pipe.tokenizer)
    transformer = next(iter(wan.transformers_of(pipe).values()))
    n_heads = len(tr.spec.head_list(transformer.blocks[0].attn2.heads))
    n_layers = len(tr.spec.layer_list(len(transformer.blocks)))
    slabs = len(levels) * (draws + 1 if draws > 1 else 1)  # draws > 1: every draw, then their mean
    needed = estimate_store_bytes(slabs, n_layers, n_heads, len(entries), grid, value_norm, self_prop)
    check_fits(out.parent, needed)
    if not quiet:
        print(f"attnscope: footage {clip.resize['note']}", file=sys.stderr)
        print(f"attnscope: capturing {len(entries)} word(s) × {len(levels)} noise level(s) × {draws} draw(s) × "
              f"{n_layers} layers × {n_heads} heads on a {grid[0]}×{grid[1]}×{grid[2]} token grid: store ≤ "
              f"{human_bytes(needed)} → {out}", file=sys.stderr)
    if previews is None:
        previews = wan.execution_device(pipe).type == "cuda" and max(h, w) <= 512 and t <= 33
    try:
        x0_estimates = _capture(pipe, tr, text, clip, levels, draws, seed, previews)
        if draws > 1:
            average_draws(open_run(store), out, draws, overwrite=overwrite, previews=x0_estimates)
    finally:
        if draws > 1:
            shutil.rmtree(store, ignore_errors=True)
    write_mp4(out / "video.mp4", clip.frames, fps=clip.fps)
    return open_run(out)


def _fit(pipe, footage: Footage, frames: int | None, height: int | None, width: int | None) -> Footage:
    """The clip on the model's grid; unset sizes from the model's defaults (toy: 256², 17 frames), else the
    clip's own size rounded down to what the model takes."""
    defaults = model_info(pipe).defaults
    geometry = wan.geometry(pipe)
    multiple = geometry.vae_spatial * geometry.patch[1]
    _, h, w = footage.shape
    height = height or defaults.get("height") or max(multiple, h // multiple * multiple)
    width = width or defaults.get("width") or max(multiple, w // multiple * multiple)
    return fit(footage, geometry, frames or defaults.get("num_frames"), height, width)


def _capture(pipe, tr, text: str, clip: Footage, levels: list[Level], draws: int, seed: int,
             previews: bool) -> list[np.ndarray] | None:
    """One conditional forward per (level, draw) inside the trace; returns the decoded x0 estimate per level
    (mean over draws) when ``previews``."""
    device = wan.execution_device(pipe)
    experts = wan.transformers_of(pipe)
    n_steps = len(levels) * draws
    decoded: list[np.ndarray] = []
    # the global RNG is left as it was (as generate leaves it): the noise comes from its own seeded generator
    forked = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=forked), tr, torch.no_grad():
        embeds = pipe.encode_prompt(prompt=text, do_classifier_free_guidance=False, num_videos_per_prompt=1,
                                    device=device)[0]
        x0 = encode(pipe, clip.frames)  # [1, C, F', H', W'] float32
        noises = draw_noise(x0.shape, draws, seed)
        for i, level in enumerate(levels):
            transformer = experts[_expert(pipe, level)]
            estimate = torch.zeros_like(x0)
            for d, noise in enumerate(noises):
                x_t = noised(x0, noise, level.sigma)
                step = i * draws + d
                context = dict(step_index=step, num_inference_steps=n_steps, timestep=level.timestep,
                               sigma=level.sigma)
                with transformer.cache_context("cond", **context):
                    velocity = transformer(hidden_states=x_t.to(transformer.dtype),
                                           timestep=_timestep(pipe, transformer, x_t, level, device),
                                           encoder_hidden_states=embeds.to(transformer.dtype),
                                           attention_kwargs=None, return_dict=False)[0]
                estimate += (x_t - level.sigma * velocity.float()) / draws  # flow matching: x0 = x_t − σ·v
            if previews:
                decoded.append(downscale(decode_latents(pipe, estimate), PREVIEW_SIDE))
                if draws == 1:
                    tr.writer.write_preview(i, decoded[-1])
    return decoded if previews else None


def _expert(pipe, level: Level) -> str:
    """Wan2.2 A14B: ``transformer`` at timesteps ≥ boundary_ratio · num_train_timesteps, else ``transformer_2``
    (as its pipeline switches)."""
    ratio = getattr(pipe.config, "boundary_ratio", None)
    if ratio is None or getattr(pipe, "transformer_2", None) is None:
        return "transformer"
    return "transformer" if level.timestep >= ratio * pipe.scheduler.config.num_train_timesteps else "transformer_2"


def _timestep(pipe, transformer, x_t: torch.Tensor, level: Level, device) -> torch.Tensor:
    """The timestep tensor as Wan's pipeline builds it: [1], or one per token for Wan2.2 TI2V (expand_timesteps,
    all tokens noised alike when there is no image)."""
    t = torch.tensor([level.timestep], device=device)
    if getattr(pipe.config, "expand_timesteps", False):
        pt, ph, pw = transformer.config.patch_size
        _, _, f, h, w = x_t.shape
        return t.expand(1, (f // pt) * (h // ph) * (w // pw))
    return t
