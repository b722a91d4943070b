"""``attnscope.sweep.run``: validate, plan (resume), execute on Ray, index, contact sheet."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .contact import Sheet, build_contact_sheet
from .execute import Execution, execute
from .index import job_row, now, read_index, write_index
from .jobs import Job, expand
from .plan import Plan, make_plan
from .spec import SweepSpec, load_spec


@dataclass
class SweepResult:
    """What a sweep invocation did: one index row per job, what happened to each, where the results are."""

    out: Path
    index_path: Path
    rows: list[dict[str, Any]]
    plan: Plan
    sheet: Sheet | None = None
    execution: Execution | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        """``skipped`` / ``redone`` / ``retried`` / ``new`` of this invocation, and ``complete`` / ``failed``."""
        statuses = [r["status"] for r in self.rows]
        return {**self.plan.counts, "complete": statuses.count("complete"), "failed": statuses.count("failed")}

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] == "failed"]

    def row(self, name: str) -> dict[str, Any]:
        return next(r for r in self.rows if r["name"] == name)


def default_word(spec: SweepSpec) -> str | None:
    """The contact sheet's word: the spec's ``word``, else the first word a bend names, else none (videos only)."""
    if spec.word:
        return spec.word
    for recipe in spec.bends:
        for bend in recipe or []:
            if bend.get("word"):
                return bend["word"]
    return None


def _model_source(model: str) -> str:
    """A local diffusers folder as an absolute path (actors may run elsewhere); names and hub ids unchanged."""
    folder = Path(model).expanduser()
    return str(folder.resolve()) if (folder / "model_index.json").exists() else model


def run(spec: str | Path | dict | SweepSpec, out: str | Path, *, address: str | None = None,
        workers: int | None = None, word: str | None = None, progress: bool = True,
        log: Callable[[str], None] | None = None) -> SweepResult:
    """Run every job of ``spec`` not yet complete under ``out``; write ``out/index.json`` and the contact sheet.

    Re-running skips complete runs and redoes incomplete ones. A failing job is recorded (type, message,
    traceback) and the others go on. ``address`` (or ``RAY_ADDRESS``) joins an existing Ray cluster.
    """
    import time

    say = log or (lambda message: print(f"attnscope sweep: {message}", file=sys.stderr))
    spec = load_spec(spec)
    out = Path(out).resolve()  # actors may run in another working directory
    out.mkdir(parents=True, exist_ok=True)
    jobs = expand(spec)
    before = read_index(out)
    plan = make_plan(jobs, out, {n for n, r in before.items() if r.get("status") == "failed"})
    say(f"{plan.summary()} -> {out}")
    rows: dict[str, dict[str, Any]] = {}
    for job in jobs:
        action = plan.actions[job.name]
        if action == "skipped":
            old = before.get(job.name, {})
            rows[job.name] = job_row(job, "complete", action, old.get("timings"), worker=old.get("worker"))
        else:
            rows[job.name] = job_row(job, "pending", action)
    spec_json = spec.model_dump(mode="json")
    invocation: dict[str, Any] = {"started": now(), "plan": plan.counts}

    def save() -> Path:
        return write_index(out, spec_json, list(rows.values()), {"invocation": invocation})

    def on_result(job: Job, result: dict[str, Any]) -> None:
        rows[job.name].update(result)
        if result["status"] == "failed":
            error = result["error"]
            say(f"job {job.name} failed: {error['type']}: {error['message']}")
        save()

    save()
    start = time.perf_counter()
    execution = None
    if plan.todo:
        execution = execute(plan.todo, out, _model_source(spec.model), on_result, address=address, workers=workers,
                            announce=say, progress=progress)
        invocation.update(layout=execution.layout.describe(), ray=execution.where,
                          load_seconds=round(execution.load_seconds, 3),
                          jobs_seconds=round(execution.jobs_seconds, 3))
    word = word or default_word(spec)
    sheet = build_contact_sheet(out, list(rows.values()), word)
    invocation.update(finished=now(), contact_sheet={"png": sheet.png.name, "mp4": sheet.mp4.name, "word": word})
    index_path = save()
    result = SweepResult(out=out, index_path=index_path, rows=list(rows.values()), plan=plan, sheet=sheet,
                         execution=execution, timings={"total_seconds": time.perf_counter() - start})
    counts = result.counts
    say(f"{counts['complete']} complete, {counts['failed']} failed; index {index_path}, contact sheet {sheet.png}")
    return result
