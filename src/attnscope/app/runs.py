"""Find the runs under RUNS_DIR and summarize each one for the Runs tab, without opening its maps."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

MAX_DEPTH = 3  # runs/<sweep>/<cell>/<run>: sweeps nest runs two levels down


@dataclass(frozen=True)
class RunSummary:
    """What the Runs tab shows for one folder; ``error`` is set when meta.json cannot be read."""

    rel: str  # path relative to RUNS_DIR, the run's id in the app
    prompt: str = ""
    model: str = ""
    seed: Any = None
    created: str = ""
    complete: bool = False
    steps_done: int = 0
    num_steps: int = 0
    words: tuple[str, ...] = ()
    bent: bool = False
    has_video: bool = False
    error: str | None = None

    @property
    def status(self) -> str:
        if self.error:
            return "unreadable"
        if self.complete:
            return "complete"
        return f"incomplete ({self.steps_done}/{self.num_steps} steps)"

    @property
    def label(self) -> str:
        """The run picker's text: folder, then the state when it is not simply complete."""
        return self.rel if self.status == "complete" else f"{self.rel}  [{self.status}]"


def _is_run(path: Path) -> bool:
    return (path / "meta.json").is_file() or (path / "maps.zarr").is_dir()


def find_runs(root: Path) -> list[Path]:
    """Run folders under ``root`` (up to ``MAX_DEPTH`` levels, not inside another run, no hidden folders),
    newest first. Symlinked folders are not followed: a link could point outside the runs folder."""
    root = Path(root).resolve()
    found: list[Path] = []
    stack: list[tuple[Path, int]] = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            children = [c for c in folder.iterdir() if c.is_dir() and not c.is_symlink() and not c.name.startswith(".")]
        except OSError:
            continue  # unreadable folder (permissions): nothing to list there
        for child in children:
            if _is_run(child):
                found.append(child)
            elif depth + 1 < MAX_DEPTH:
                stack.append((child, depth + 1))
    return sorted(found, key=_mtime, reverse=True)


def _mtime(path: Path) -> float:
    meta = path / "meta.json"
    return (meta if meta.exists() else path).stat().st_mtime


def summarize(root: Path, path: Path) -> RunSummary:
    """Read meta.json only; a damaged file becomes a summary with ``error`` set (shown as an error card)."""
    rel = path.resolve().relative_to(Path(root).resolve()).as_posix()
    meta_file = path / "meta.json"
    if not meta_file.is_file():
        return RunSummary(rel=rel, error="no meta.json: the run was interrupted before its first step, or is "
                                         "not an attnscope run")
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return RunSummary(rel=rel, error=f"meta.json cannot be read ({exc})")
    if not isinstance(meta, dict):
        return RunSummary(rel=rel, error="meta.json does not hold an object")
    model = meta.get("model") or {}
    created = meta.get("created") or datetime.fromtimestamp(meta_file.stat().st_mtime).isoformat(timespec="seconds")
    missing = [k for k in ("grid", "layers", "heads", "num_steps") if k not in meta]
    return RunSummary(
        rel=rel,
        prompt=str(meta.get("prompt") or ""),
        model=str(model.get("id", "")) if isinstance(model, dict) else str(model),
        seed=meta.get("seed"),
        created=str(created)[:19].replace("T", " "),
        complete=bool(meta.get("complete")),
        steps_done=len(meta.get("steps") or []),
        num_steps=int(meta.get("num_steps") or 0),
        words=tuple(str(w.get("label")) for w in meta.get("words") or [] if isinstance(w, dict)),
        bent=bool(meta.get("bends")),
        has_video=(path / "video.mp4").is_file(),
        error=f"meta.json lacks {', '.join(missing)}: the run is damaged or from another tool" if missing else None,
    )


def list_runs(root: Path) -> list[RunSummary]:
    """Summaries of every run under ``root``, newest first."""
    return [summarize(root, p) for p in find_runs(root)]


def meta_mtime(path: Path) -> int:
    """meta.json's modification time in ns (0 when absent): a run being written gets a new cache key per step."""
    try:
        return os.stat(path / "meta.json").st_mtime_ns
    except FileNotFoundError:
        return 0
