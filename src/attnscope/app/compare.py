"""Compare a bent run with its baseline: same prompt, seed and model, no bends.

The baseline is the run named by meta.json's ``baseline`` (a path relative to the bent run, written by
``attnscope generate --bend ... --compare``), else the newest run under RUNS_DIR with the same prompt, seed and
model and empty ``bends``. Both sides are drawn with the same controls and the same frame, so one slider moves
both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SelectionError
from ..render.geometry import geometry
from ..video import write_mp4
from .explore import Controls, draw, frame_count
from .runs import list_runs
from .session import Viewer


def find_baseline(viewer: Viewer, rel: str) -> str | None:
    """The baseline's folder relative to RUNS_DIR, or None when the run has none there."""
    run = viewer.run(rel)
    meta = run.meta
    named = meta.get("baseline")
    if named:
        path = viewer.path(run.path / named)  # checked: stays inside RUNS_DIR
        if (path / "meta.json").is_file():
            return path.relative_to(viewer.root).as_posix()
    if not meta.get("bends"):
        return None
    model = (meta.get("model") or {}).get("id") if isinstance(meta.get("model"), dict) else meta.get("model")
    for other in list_runs(viewer.root):
        if other.rel == rel or other.error or other.bent:
            continue
        if other.prompt == meta.get("prompt") and other.seed == meta.get("seed") and other.model == str(model):
            return other.rel
    return None


def bent_runs(viewer: Viewer) -> list[str]:
    """Runs with bends (the left side of a comparison)."""
    return [s.rel for s in list_runs(viewer.root) if s.bent and not s.error]


def _pair(viewer: Viewer, rel: str, base_rel: str | None) -> str:
    base_rel = base_rel or find_baseline(viewer, rel)
    if not base_rel:
        raise SelectionError(f"{rel} has no baseline under the runs folder: make one with the same prompt, seed and "
                             "model and no bends (attnscope generate ... --bend recipe.yaml --compare does it)")
    return base_rel


def compare_stills(viewer: Viewer, rel: str, base_rel: str | None, c: Controls) -> tuple[np.ndarray, np.ndarray]:
    """(bent, baseline) frames at ``c.frame`` with the same controls."""
    base_rel = _pair(viewer, rel, base_rel)
    bent, base = viewer.run(rel), viewer.run(base_rel)
    total = min(frame_count(viewer, bent), frame_count(viewer, base))
    frame = [min(max(c.frame, 0), total - 1)]
    return draw(viewer, bent, c, frame)[0], draw(viewer, base, c, frame)[0]


def compare_video(viewer: Viewer, rel: str, base_rel: str | None, c: Controls) -> Path:
    """baseline | bent overlays side by side, frame-locked, as one MP4."""
    base_rel = _pair(viewer, rel, base_rel)
    bent, base = viewer.run(rel), viewer.run(base_rel)
    left, right = draw(viewer, base, c, None), draw(viewer, bent, c, None)
    n = min(len(left), len(right))
    if left.shape[1:] != right.shape[1:]:
        raise SelectionError(f"{base_rel} and {rel} have different video sizes; they are not a bent/baseline pair")
    both = np.concatenate([left[:n], right[:n]], axis=2)  # [T, H, 2W, 3]
    return write_mp4(viewer.new_file(".mp4"), both, fps=geometry(bent).fps)
