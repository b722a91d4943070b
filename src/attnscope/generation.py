"""``attnscope.generate``: one traced generation written as a Run folder with its video."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import RunExistsError
from .models import wan
from .models.info import model_info
from .render.preset import preset_steps
from .store import Run, open_run
from .store.layout import is_run
from .store.size import check_fits, estimate_store_bytes, human_bytes
from .tracing import trace
from .video import write_mp4

PREVIEW_SIDE = 160


def decode_latents(pipe, latents: torch.Tensor) -> np.ndarray:
    """Decode Wan latents [1, C, F, H, W] to uint8 frames [T, H, W, 3], exactly as the pipeline does."""
    vae = pipe.vae
    latents = latents.to(vae.device, vae.dtype)
    mean = torch.tensor(vae.config.latents_mean, device=latents.device, dtype=latents.dtype).view(1, -1, 1, 1, 1)
    inv_std = 1.0 / torch.tensor(vae.config.latents_std, device=latents.device, dtype=latents.dtype).view(
        1, -1, 1, 1, 1)
    with torch.no_grad():
        video = vae.decode(latents / inv_std + mean, return_dict=False)[0]
    frames = pipe.video_processor.postprocess_video(video, output_type="np")[0]  # [T, H, W, 3] in [0, 1]
    return to_uint8(frames)


def to_uint8(frames: np.ndarray) -> np.ndarray:
    return (np.clip(frames, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def downscale(frames: np.ndarray, side: int) -> np.ndarray:
    """uint8 frames [T, H, W, 3] box-averaged by a whole factor so the long side is at most ``side`` (previews)."""
    t, h, w, _ = frames.shape
    factor = max(1, int(np.ceil(max(h, w) / side)))
    if factor == 1:
        return frames
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()  # [T, 3, H, W]
    x = torch.nn.functional.avg_pool2d(x, factor, ceil_mode=True)
    return x.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def generate(pipe, prompt: str, out: str | Path, *, words: list[str] | None = None, seed: int = 0,
             bends=None, negative_prompt: str | None = None, heads="all", layers="all", steps="all",
             value_norm: bool = False, self_prop: bool = False, self_prop_steps=None, previews: bool | None = None,
             overwrite: bool = False, quiet: bool = False, meta: dict[str, Any] | None = None,
             precision: str = "fp16", probe_points=None, **pipe_kwargs: Any) -> Run | None:
    """Generate a video with ``pipe`` while tracing ``words``; write ``out``/video.mp4 and the store.

    Unset sizes and steps come from the model's defaults (:func:`attnscope.models.info.model_info`: toy 256², 17
    frames; a Wan pipeline you built yourself: its own call signature, 480×832×81). ``previews`` decodes the
    model's x0 estimate at every step for the timeline render; it costs one VAE decode per step, so it defaults
    to on only on a GPU and for videos up to 512 px and 33 frames. ``meta`` adds entries to the run's meta.json
    (e.g. what an experiment needs to recognise its own runs). ``precision="uint8"`` writes a compact store
    (:func:`attnscope.trace`); ``probe_points`` (latent frame, y, x) also stores each point's self-attention rows
    (checked against the token grid before anything runs). Returns the Run (None on the ranks other than 0 of
    a context-parallel generation, which hand their token slices to rank 0).
    """
    out = Path(out)
    if is_run(out) and not overwrite:
        raise RunExistsError(f"{out} already holds a run; choose another --out or pass --overwrite")
    info = model_info(pipe)
    options = dict(info.defaults)
    options.update({k: v for k, v in pipe_kwargs.items() if v is not None})
    frames, height, width = options["num_frames"], options["height"], options["width"]
    grid = wan.geometry(pipe).grid(frames, height, width)
    if self_prop and self_prop_steps is None:
        self_prop_steps = preset_steps(info.id, options["num_inference_steps"])
    tr = trace(pipe, words=words, store=out, heads=heads, layers=layers, steps=steps, bends=bends,
               value_norm=value_norm, self_prop=self_prop, overwrite=overwrite, precision=precision,
               self_prop_steps=self_prop_steps, probe_points=probe_points)
    tr.spec.check_probe_points(grid)
    clean = tr.prompt(prompt)
    n_words = len(_words_for(pipe, clean, tr.words_requested))
    transformer = next(iter(wan.transformers_of(pipe).values()))
    n_heads = len(tr.spec.head_list(transformer.blocks[0].attn2.heads))
    n_layers = len(tr.spec.layer_list(len(transformer.blocks)))
    n_steps = tr.spec.steps_kept(options["num_inference_steps"])
    needed = estimate_store_bytes(n_steps, n_layers, n_heads, n_words, grid, value_norm, self_prop, tr.precision,
                                  len(tr.spec.probe_points))
    check_fits(out.parent, needed)
    if not quiet:
        print(f"attnscope: capturing {n_words} word(s) × {n_steps} steps × {n_layers} layers × {n_heads} heads "
              f"on a {grid[0]}×{grid[1]}×{grid[2]} token grid: store ≤ {human_bytes(needed)} → {out}",
              file=sys.stderr)
    device = wan.execution_device(pipe)
    if previews is None:
        previews = device.type == "cuda" and max(height, width) <= 512 and frames <= 33
    generator = torch.Generator(device="cpu" if device.type == "mps" else device).manual_seed(seed)
    tr.extra_meta.update(
        seed=seed, negative_prompt=negative_prompt, guidance_scale=options.get("guidance_scale"),
        pixel={"frames": frames, "height": height, "width": width, "fps": info.fps},
        generate={k: v for k, v in options.items() if isinstance(v, (int, float, str, bool))}, **(meta or {}))
    call_kwargs = dict(options)
    if negative_prompt is not None:
        call_kwargs["negative_prompt"] = negative_prompt

    def on_step_end(pipeline, step, timestep, callback_kwargs):
        if previews and tr.writer is not None and tr.last_x0 is not None:
            tr.writer.write_preview(step, downscale(decode_latents(pipe, tr.last_x0[:1]), PREVIEW_SIDE))
        return callback_kwargs

    tr.keep_x0 = previews
    # the global RNG is left as it was: the seed's generator drives the sampling, and nothing a generation
    # draws elsewhere may shift what the caller (or the next generation) gets
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), tr:
        result = pipe(prompt=clean, generator=generator, output_type="np", callback_on_step_end=on_step_end,
                      **call_kwargs)
        if tr.recorder.shards is not None and not tr.recorder.shards.writes:
            return None  # context parallel: rank 0 holds the run and writes the video
        write_mp4(out / "video.mp4", to_uint8(result.frames[0]), fps=info.fps)
    return open_run(out)


def _words_for(pipe, text: str, words: list[str] | None) -> list:
    from .capture.words import resolve_words

    entries, _ = resolve_words(text, words, pipe.tokenizer)
    return entries
