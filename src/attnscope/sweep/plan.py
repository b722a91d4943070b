"""Resume: which jobs are already done, which were interrupted, which never ran.

A job is done when its Run folder's ``meta.json`` says ``"complete": true`` and its video exists; the writer only
sets that flag after the last step, so a crash, a kill or a full disk leaves ``false`` (or no meta at all) and
the job is redone from scratch.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .jobs import Job

State = Literal["complete", "incomplete", "missing"]
ACTIONS = {"complete": "skipped", "incomplete": "redone", "missing": "new"}


def run_state(folder: Path) -> State:
    """``complete`` (finished run with video), ``incomplete`` (started, not finished) or ``missing``."""
    if not folder.exists():
        return "missing"
    meta_file = folder / "meta.json"
    try:
        meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    except json.JSONDecodeError:
        return "incomplete"
    if meta.get("complete") is True and (folder / "video.mp4").exists():
        return "complete"
    return "incomplete"


@dataclass
class Plan:
    """The jobs of a sweep split by what this invocation does with them."""

    jobs: list[Job]
    actions: dict[str, str] = field(default_factory=dict)  # job name -> skipped | redone | new | retried

    @property
    def todo(self) -> list[Job]:
        return [j for j in self.jobs if self.actions[j.name] != "skipped"]

    @property
    def counts(self) -> dict[str, int]:
        counted = Counter(self.actions.values())
        return {a: counted.get(a, 0) for a in ("skipped", "redone", "retried", "new")}

    def summary(self) -> str:
        c = self.counts
        parts = [f"{c['skipped']} complete (skipped)", f"{c['redone']} incomplete (redone)"]
        if c["retried"]:
            parts.append(f"{c['retried']} failed before (retried)")
        parts.append(f"{c['new']} new")
        return f"{len(self.jobs)} jobs: " + ", ".join(parts)


def make_plan(jobs: list[Job], out: Path, failed_before: set[str] | None = None) -> Plan:
    """Look at each job's folder under ``out``; jobs that failed in an earlier invocation are retried."""
    failed_before = failed_before or set()
    actions = {}
    for job in jobs:
        action = ACTIONS[run_state(out / job.name)]
        if action == "new" and job.name in failed_before:
            action = "retried"
        actions[job.name] = action
    return Plan(jobs=jobs, actions=actions)
