"""Measured per-op defaults for where and when a bend acts, shipped beside a model's weights.

The toy model's file is ``attnscope/toy/weights/bend_defaults.json``: for each op (``attention.reweight``,
``attention.translate``, ...; ``attention.*`` for the other attention ops) the ``steps`` and ``layers`` that made
the op work on held-out prompts (``attnscope bend-eval``), and for object targets how the end-of-sequence token is
bent (``eos``: true, false, masked or edited), how a reweight renormalizes, which guidance branch a bend acts on, and
whether a translate moves the latent too. A bend that leaves ``steps`` (or ``layers``, ``eos``, ``renormalize``,
``branch``, ``latent``) unset takes the default; one that names them, ``steps: [0.0, 1.0]`` for the whole
schedule, keeps its own.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from .recipe import Bend, parse_bend

__all__ = ["TOY_BEND_DEFAULTS", "apply_defaults", "is_toy_transformer", "load_defaults"]

TOY_BEND_DEFAULTS = Path(__file__).resolve().parents[1] / "toy" / "weights" / "bend_defaults.json"
_TOY_ARCH = ("num_layers", "num_attention_heads", "attention_head_dim", "text_dim", "in_channels", "ffn_dim")


@lru_cache(maxsize=1)
def _toy_config() -> dict[str, Any]:
    path = TOY_BEND_DEFAULTS.parent / "transformer" / "config.json"
    return json.loads(path.read_text()) if path.exists() else {}


def is_toy_transformer(transformer: torch.nn.Module) -> bool:
    """Is this the toy model's architecture (the shipped weights, or weights `attnscope toy train` made)?"""
    toy, config = _toy_config(), getattr(transformer, "config", None)
    if not toy or config is None:
        return False
    return all(toy.get(k) == config.get(k) for k in _TOY_ARCH)


@lru_cache(maxsize=4)
def _read(path: str) -> dict[str, Any]:
    p = Path(path)
    return json.loads(p.read_text()).get("ops", {}) if p.exists() else {}


def load_defaults(model: str | Path | None) -> dict[str, dict[str, Any]]:
    """Per-op defaults: ``"toy"`` for the shipped file, a path for another file, None for none."""
    if model is None:
        return {}
    path = TOY_BEND_DEFAULTS if str(model) == "toy" else Path(model)
    return _read(str(path))


def _key(bend: Bend) -> str:
    return f"{bend.target}.{bend.op}"


def apply_defaults(index: int, bend: Bend, defaults: dict[str, dict[str, Any]]) -> Bend:
    """The bend with the op's default ``steps``/``layers`` where it left them unset."""
    chosen = defaults.get(_key(bend)) or (defaults.get(f"{bend.target}.*") if bend.target == "attention" else None)
    if not chosen:
        return bend
    update = {k: chosen[k] for k in ("steps", "layers", "eos")
              if chosen.get(k) is not None and getattr(bend, k, "absent") is None}
    if "eos" in update and getattr(bend, "object", None) is None:
        del update["eos"]  # the default end-of-sequence handling is an object's; a word keeps its own (none)
    # fields with a value of their own ("all", "both") take the model's default only when the recipe left them out
    update.update({k: chosen[k] for k in ("renormalize", "branch", "latent")
                   if chosen.get(k) is not None and k in type(bend).model_fields and k not in bend.model_fields_set})
    if not update:
        return bend
    return parse_bend(index, {**bend.model_dump(mode="json"), **update})
