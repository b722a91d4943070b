"""``attnscope eval``: generate held-out toy prompts, capture shape and colour words, score against masks.

Object masks come from the project's detector reading the *generated* video (so a map is judged against where
the model actually drew the object), matched to the caption's objects by colour (colours are distinct within a
toy video).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

from ..generation import generate
from ..models.loading import load_pipeline
from ..toy.detect import detect_objects
from ..toy.world import EVAL_SEED_BASE, caption, scene_for_seed
from ..video import read_mp4
from .evaluate import Sample, evaluate

EVAL_OFFSET = 500_000  # eval seeds: 10^9 + 500,000 + ...; `toy check` uses 10^9 + ..., training < 10^9


def eval_prompts(n: int, seed: int = 0) -> list[tuple[str, list]]:
    """n held-out scenes from the toy grammar, half with one object and half with two."""
    scenes = [scene_for_seed(EVAL_SEED_BASE + EVAL_OFFSET + seed * 100_000 + i, n_objects=1 + i % 2)
              for i in range(n)]
    return [(caption(s), s) for s in scenes]


def weights_fingerprint(pipe) -> str:
    """sha256 of every weight of the pipeline's models. Why: the eval reuses runs it finds in its work folder,
    and a run made by other weights of the same architecture (an earlier toy model) must not be scored again."""
    digest = hashlib.sha256()
    for name in ("text_encoder", "transformer", "transformer_2", "vae"):
        module = getattr(pipe, name, None)
        if module is None:
            continue
        for key, tensor in module.state_dict().items():
            digest.update(key.encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def _labels(objects) -> list[tuple[str, str, str]]:
    """(label, kind, colour) per captured word, with the "(2)" suffix a repeated shape word gets."""
    seen: dict[str, int] = {}
    out = []
    for obj in objects:
        for word, kind in ((obj.colour, "colour"), (obj.shape, "shape")):
            seen[word] = seen.get(word, 0) + 1
            label = word if seen[word] == 1 else f"{word} ({seen[word]})"
            out.append((label, kind, obj.colour))
    return out


def colour_masks(detections) -> dict[str, np.ndarray]:
    """Pixel mask [T, H, W] per colour: the union of every object detected in it.

    Why the union: a model that draws a requested object twice (the toy model sometimes does) drew both copies
    from the same words, so a map that lights both is right; judged against one copy it would lose half its IoU.
    Objects of one prompt have distinct colours, so a colour names one requested object.
    """
    out: dict[str, np.ndarray] = {}
    for d in detections:
        out[d.colour] = out[d.colour] | d.masks if d.colour in out else d.masks.copy()
    return out


def collect(model: str = "toy", n_prompts: int = 30, seed: int = 0, workdir: str | Path = "runs/eval",
            steps: int | None = None, progress: bool = True) -> tuple[list[Sample], dict]:
    """Generate (or reuse complete runs made by the same weights) and build the samples; returns samples and detection statistics."""
    pipe = load_pipeline(model)
    pipe.set_progress_bar_config(disable=True)
    workdir = Path(workdir)
    weights = weights_fingerprint(pipe)
    samples, stats = [], {"prompts": n_prompts, "objects": 0, "objects_found": 0}
    for i, (text, scene) in enumerate(eval_prompts(n_prompts, seed)):
        out = workdir / f"p{i:03d}"
        words = list(dict.fromkeys(w for o in scene for w in (o.colour, o.shape)))
        from ..store import open_run

        made = {"prompt": text, "seed": i, "weights": weights, "steps": steps}
        previous = open_run(out) if (out / "meta.json").exists() else None
        if (previous is not None and previous.complete and previous.value_proj is not None
                and previous.self_prop is not None and previous.meta.get("eval") == made):
            run = previous
        else:
            # self-prop at every step: the eval measures which steps the view needs (step windows)
            run = generate(pipe, text, out, words=words, seed=i, value_norm=True, self_prop=True,
                           self_prop_steps="all", previews=False, overwrite=True, quiet=True,
                           num_inference_steps=steps, meta={"eval": made})
        video = read_mp4(run.video_path)
        found = colour_masks(detect_objects(video))
        split = "select" if (i // 2) % 2 == 0 else "test"
        for label, kind, colour in _labels(scene):
            stats["objects"] += kind == "shape"
            if colour not in found:
                continue
            stats["objects_found"] += kind == "shape"
            samples.append(Sample(run, label, kind, found[colour], split))
        if progress:
            print(f"[{i + 1}/{n_prompts}] {text}: {len([c for c in found if c in {o.colour for o in scene}])}"
                  f"/{len(scene)} objects found", file=sys.stderr)
    return samples, stats


def run_eval(model: str = "toy", n_prompts: int = 30, seed: int = 0, out: str | Path | None = None,
             json_path: str | Path | None = None, workdir: str | Path = "runs/eval", steps: int | None = None) -> dict:
    """Everything `attnscope eval` does; returns the result dict (also written as JSON / report when asked)."""
    samples, stats = collect(model, n_prompts, seed, workdir, steps)
    if not samples:
        raise RuntimeError("the detector found none of the requested objects; is the model trained?")
    result = evaluate(samples)
    result["detection"] = stats
    result["settings"] = {"model": model, "prompts": n_prompts, "seed": seed, "samples": len(samples),
                          "test_samples": sum(s.split == "test" for s in samples)}
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=1, default=_plain))
    if out:
        from ..render.preset import PRESET_FILE, save_preset
        from .report import write_report

        write_report(result, Path(out))
        save_preset(result, Path(out) / PRESET_FILE)  # copy it into a model folder to make it that model's default
    return result


def _plain(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(type(obj).__name__)
