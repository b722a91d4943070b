"""What a pipeline is: its model id, its generation defaults (size, frames, steps, guidance) and its fps.

Why here and not as attributes on the pipeline: users build pipelines themselves (``WanPipeline.from_pretrained``,
or from components), and attnscope must work on those unchanged and leave them unchanged. The defaults come, in
order, from what :func:`attnscope.load_pipeline` remembered about a pipeline it built (kept beside it, in a weak
map), from the model folder (a toy model trained by attnscope knows its 256² × 17 frames), and from the
pipeline's own ``__call__`` signature, shrunk where a small model's rotary table cannot hold that grid.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import wan


@dataclass(frozen=True)
class ModelInfo:
    """``id``: the name the model was loaded by (alias, hub id or folder), None when built in code."""

    id: str | None
    defaults: dict[str, Any] = field(default_factory=dict)
    fps: int = wan.FPS


_LOADED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def remember(pipe, model_id: str, defaults: dict[str, Any]) -> None:
    """Record what :func:`~attnscope.models.loading.load_pipeline` knows about a pipeline it built."""
    _LOADED[pipe] = ModelInfo(model_id, dict(defaults), wan.fps(pipe))


def _toy_folder(folder: Path) -> bool:
    from ..toy.model import TOY_WEIGHTS_DIR

    return folder.resolve() == TOY_WEIGHTS_DIR.resolve() or (folder / "train_state.json").exists()


def model_info(pipe) -> ModelInfo:
    """The id, generation defaults and fps of ``pipe``, however it was built."""
    if pipe in _LOADED:
        return _LOADED[pipe]
    source = getattr(pipe, "name_or_path", None) or None
    folder = Path(source).expanduser() if source else None
    if folder is not None and folder.is_dir() and _toy_folder(folder):
        from ..toy.model import TOY_DEFAULTS, TOY_WEIGHTS_DIR

        model_id = "toy" if folder.resolve() == TOY_WEIGHTS_DIR.resolve() else str(folder)
        return ModelInfo(model_id, dict(TOY_DEFAULTS), wan.FPS)
    return ModelInfo(source, wan.fit_to_model(pipe, wan.call_defaults(pipe)), wan.fps(pipe))
