"""``index.json``: one row per job (parameters, status, path, timings, error), rewritten after every job.

Rewritten atomically after each finished job, so an interrupted sweep still leaves a readable index, and read
back on the next invocation to keep the timings of skipped jobs and to know which jobs failed before.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .jobs import Job, bend_label

INDEX_NAME = "index.json"
FORMAT = "attnscope.sweep/1"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def job_row(job: Job, status: str, action: str, timings: dict[str, Any] | None = None,
            error: dict[str, Any] | None = None, worker: str | None = None) -> dict[str, Any]:
    """One row: everything to find, reproduce and judge the job."""
    return {"name": job.name, "path": job.name, "status": status, "action": action,
            "prompt_index": job.prompt_index, "prompt": job.prompt, "seed": job.seed, "bend_index": job.bend_index,
            "bend": bend_label(job.bends), "bends": job.bends, "model": job.model, "options": job.options,
            "hash": job.params_hash, "timings": timings or {}, "error": error, "worker": worker}


def read_index(out: Path) -> dict[str, dict[str, Any]]:
    """Rows of an earlier invocation by job name (empty when there is none or it is unreadable)."""
    path = out / INDEX_NAME
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}
    return {row["name"]: row for row in data.get("jobs", []) if isinstance(row, dict) and "name" in row}


def write_index(out: Path, spec: dict[str, Any], rows: list[dict[str, Any]], extra: dict[str, Any]) -> Path:
    """Atomically replace ``out/index.json``."""
    statuses = [r["status"] for r in rows]
    data = {"format": FORMAT, "updated": now(), "spec": spec,
            "counts": {s: statuses.count(s) for s in ("complete", "failed", "pending")}, **extra, "jobs": rows}
    path = out / INDEX_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)
    return path
