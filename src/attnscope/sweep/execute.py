"""Run jobs on Ray: one actor per GPU (or a few CPU actors), each holding a loaded pipeline, fed from one queue.

Ray is the established engine for fanning work over the GPUs of one host or a cluster and runs locally too.
We keep our own small queue (``ray.wait`` on one job per idle actor) rather than a task per job, because an
actor keeps its pipeline loaded between jobs; a job goes to whichever actor is free first, so fast and slow GPUs
share the work without hand-splitting.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import AttnscopeError
from .jobs import Job
from .worker import SweepWorker, error_record


class SweepRayError(AttnscopeError):
    """Ray is missing or the cluster cannot be reached."""


@dataclass(frozen=True)
class Layout:
    """How many actors and what each one asks Ray for."""

    kind: str  # "gpu" | "cpu"
    actors: int
    threads: int  # torch CPU threads per actor
    num_cpus: float
    num_gpus: float

    def describe(self) -> str:
        if self.kind == "gpu":
            return f"{self.actors} GPU actor{'s' * (self.actors > 1)}"
        return f"{self.actors} CPU actor{'s' * (self.actors > 1)} x {self.threads} thread{'s' * (self.threads > 1)}"


def plan_layout(resources: dict[str, float], n_jobs: int, workers: int | None) -> Layout:
    """One actor per GPU; without GPUs one per CPU core, threads splitting the cores. ``workers`` caps the count."""
    if workers is not None and workers < 1:
        raise SweepRayError(f"--workers must be at least 1, got {workers}")
    gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
    if gpus >= 1:
        n = max(1, min(gpus, workers or gpus, n_jobs))
        return Layout("gpu", n, threads=max(1, min(4, cpus // n)), num_cpus=1, num_gpus=1)
    n = max(1, min(cpus, workers or cpus, n_jobs))
    threads = max(1, cpus // n)
    return Layout("cpu", n, threads=threads, num_cpus=threads, num_gpus=0)


def fixed_threads_env(threads: int) -> dict[str, str]:
    """Environment for a worker process whose CPU maths must not change between runs: a fixed thread count, and
    neither OpenMP nor MKL (torch's CPU BLAS) free to pick fewer threads per call (MKL's own reproducibility
    conditions). Results on the CPU depend on the thread count, so a job's meta.json records it."""
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "OMP_DYNAMIC": "FALSE",
            "MKL_DYNAMIC": "FALSE"}


def _src_path() -> str:
    """The folder holding the attnscope package, so Ray workers import this very copy (source checkouts too)."""
    return str(Path(__file__).resolve().parents[2])


@contextmanager
def ray_session(address: str | None = None) -> Iterator[tuple[str, bool]]:
    """Use the running Ray session, connect to ``address`` / ``RAY_ADDRESS``, or start a local one (and stop it).

    Yields a description and whether the session is shared (started by someone else: leave it running).
    """
    try:
        import ray
    except ImportError as exc:
        raise SweepRayError("attnscope sweep needs Ray: pip install 'attnscope[sweep]'") from exc
    if ray.is_initialized():
        yield "the running Ray session", True
        return
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    pythonpath = os.pathsep.join(p for p in (_src_path(), os.environ.get("PYTHONPATH")) if p)
    options: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.WARNING,
                                   runtime_env={"env_vars": {"PYTHONPATH": pythonpath}})
    address = address or os.environ.get("RAY_ADDRESS")
    try:
        if address:
            ray.init(address=address, **options)
            where = f"the Ray cluster at {address}"
        else:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, **options)
            where = "a local Ray instance"
    except ConnectionError as exc:
        raise SweepRayError(f"cannot connect to Ray at {address!r} ({exc}); start it with `ray start --head` or "
                            "leave out --address / RAY_ADDRESS to run locally") from exc
    try:
        yield where, False
    finally:
        ray.shutdown()


def _start(ray, layout: Layout, model: str, count: int) -> list[Any]:
    """Start ``count`` actors and load their pipelines; a model that cannot load stops the sweep here."""
    remote = ray.remote(SweepWorker).options(num_cpus=layout.num_cpus, num_gpus=layout.num_gpus, max_restarts=0,
                                             runtime_env={"env_vars": fixed_threads_env(layout.threads)})
    device = None if layout.kind == "gpu" else "cpu"
    actors = [remote.remote(model, device, layout.threads) for _ in range(count)]
    try:
        ray.get([a.load.remote() for a in actors])
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, AttnscopeError):
            raise exc.cause from None
        raise
    return actors


# Idle actors kept between sweeps of one driver in a shared Ray session (a notebook, a test module), so a second
# sweep does not load the pipeline again: (Ray job id, model, kind) -> actors. They end with the driver.
_IDLE: dict[tuple[str, str, str], list[Any]] = {}


def _room(ray, layout: Layout) -> int:
    """How many more actors of ``layout`` fit in the resources free now."""
    free = ray.available_resources()
    if layout.kind == "gpu":
        return int(free.get("GPU", 0) // layout.num_gpus)
    return int(free.get("CPU", 0) // layout.num_cpus)


def _acquire(ray, layout: Layout, model: str, shared: bool) -> tuple[list[Any], list[Any]]:
    """(actors to use, spare actors to keep): cached ones first, new ones as resources allow."""
    key = (ray.get_runtime_context().get_job_id(), model, layout.kind)
    cached = _IDLE.pop(key, []) if shared else []
    use, spare = cached[:layout.actors], cached[layout.actors:]
    wanted = layout.actors - len(use)
    if use:  # idle cached actors hold resources: only start what still fits, never wait for room
        wanted = min(wanted, _room(ray, layout))
    return use + (_start(ray, layout, model, wanted) if wanted > 0 else []), spare


def _release(ray, layout: Layout, model: str, shared: bool, actors: list[Any]) -> None:
    if shared:
        _IDLE[(ray.get_runtime_context().get_job_id(), model, layout.kind)] = actors
        return
    for actor in actors:
        ray.kill(actor)


@dataclass
class Execution:
    layout: Layout
    where: str
    load_seconds: float
    jobs_seconds: float


def execute(jobs: list[Job], out: Path, model: str, on_result: Callable[[Job, dict[str, Any]], None], *,
            address: str | None = None, workers: int | None = None, announce: Callable[[str], None] | None = None,
            progress: bool = True) -> Execution:
    """Run ``jobs`` into ``out/<job.name>``; ``on_result(job, result)`` is called as each one finishes."""
    from tqdm import tqdm

    with ray_session(address) as (where, shared):
        import ray

        layout = plan_layout(ray.cluster_resources(), len(jobs), workers)
        start = time.perf_counter()
        idle, spare = _acquire(ray, layout, model, shared)
        layout = replace(layout, actors=len(idle))
        if announce:
            announce(f"{layout.describe()} on {where}, {model} loaded in {time.perf_counter() - start:.1f} s")
        loaded = time.perf_counter()
        queue, pending = deque(jobs), {}
        failed = 0
        try:
            with tqdm(total=len(jobs), unit="job", desc="sweep", file=sys.stderr, disable=not progress) as bar:
                while queue or pending:
                    while idle and queue:
                        actor, job = idle.pop(), queue.popleft()
                        pending[actor.run.remote(job.to_dict(), str(out / job.name))] = (actor, job)
                    (ref,), _ = ray.wait(list(pending), num_returns=1)
                    actor, job = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayActorError as exc:  # the process died (e.g. killed for memory)
                        result = {"status": "failed", "error": error_record(exc), "timings": {}, "worker": None}
                        ray.kill(actor)
                        actor = _start(ray, layout, model, 1)[0]
                    idle.append(actor)
                    failed += result["status"] == "failed"
                    on_result(job, result)
                    bar.set_postfix(failed=failed)
                    bar.update()
        except BaseException:  # interrupted: busy actors must not outlive the sweep in a shared session
            for actor in idle + spare + [a for a, _ in pending.values()]:
                ray.kill(actor)
            raise
        _release(ray, layout, model, shared, idle + spare)
    return Execution(layout, where, load_seconds=loaded - start, jobs_seconds=time.perf_counter() - loaded)
