"""Sweeps on a local Ray session (CPU) with the tiny pipeline: same results as direct generation, resume, failures.

One Ray session serves the whole module (starting Ray costs seconds); the tests run in order and share one sweep
folder, so resume is checked against the very runs the first test made.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import attnscope
from attnscope.bend.recipe import load_recipe
from attnscope.sweep import SweepSpecError, run
from attnscope.video import read_mp4
from conftest import torch_threads

ray = pytest.importorskip("ray")

REWEIGHT = [{"target": "attention", "op": "reweight", "word": "circle", "scale": 2.0}]
GENERATE = {"steps": 2, "frames": 5, "height": 32, "width": 32}
SPEC = {"model": "tiny", "prompts": ["a red circle moving left", "a blue circle moving up"], "seeds": [3],
        "bends": ["none", REWEIGHT], "generate": GENERATE}


@pytest.fixture(scope="module")
def ray_session():
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    src = str(Path(attnscope.__file__).resolve().parents[1])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": src}})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def swept(ray_session, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    return out, run(SPEC, out, progress=False, log=lambda m: None)


def _mtimes(out: Path, rows) -> dict[str, int]:
    return {r["name"]: (out / r["path"] / "meta.json").stat().st_mtime_ns for r in rows}


def test_sweep_runs_equal_direct_generation(swept):
    """Whichever actor ran a job, and whatever it ran before, the run equals a direct generation in this process
    at the thread count the actor used (CPU results depend on it; meta.json records it)."""
    out, result = swept
    assert result.counts == {"skipped": 0, "redone": 0, "retried": 0, "new": 4, "complete": 4, "failed": 0}
    assert result.execution.layout.actors == 2
    assert len({r["worker"] for r in result.rows}) == 2  # both actors took jobs
    pipe = attnscope.load_pipeline("tiny", device="cpu")
    pipe.set_progress_bar_config(disable=True)
    videos = {}
    for row in result.rows:
        swept_run = attnscope.open_run(out / row["path"])
        assert swept_run.complete and swept_run.meta["seed"] == 3
        # the index keeps the recipe as written, meta.json the bends as they acted (every field): the same bends
        assert load_recipe(swept_run.meta["bends"]) == load_recipe(row["bends"] or [])
        assert swept_run.meta["runtime"] == {"device": "cpu", "threads": result.execution.layout.threads}
        with torch_threads(swept_run.meta["runtime"]["threads"]):
            direct = attnscope.generate(pipe, row["prompt"], out.parent / f"direct-{row['name']}", seed=3,
                                        bends=row["bends"], quiet=True, num_inference_steps=2, num_frames=5,
                                        height=32, width=32)
        videos[row["prompt_index"], row["bend_index"]] = read_mp4(swept_run.video_path)
        np.testing.assert_array_equal(videos[row["prompt_index"], row["bend_index"]], read_mp4(direct.video_path))
        np.testing.assert_array_equal(swept_run.maps.values, direct.maps.values)
    assert not np.array_equal(videos[0, 0], videos[0, 1])  # the bend changed the video
    assert not np.array_equal(videos[0, 0], videos[1, 0])  # and so did the prompt


def test_index_and_contact_sheet(swept):
    out, result = swept
    index = json.loads(result.index_path.read_text())
    assert index["counts"] == {"complete": 4, "failed": 0, "pending": 0}
    assert {(r["prompt_index"], r["bend_index"]) for r in index["jobs"]} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert all(r["timings"]["seconds"] > 0 and r["error"] is None for r in index["jobs"])
    assert result.sheet.png.name == "contact_sheet_circle.png"  # the word the bend names
    assert (result.sheet.rows, result.sheet.columns) == (2, 2)
    assert read_mp4(result.sheet.mp4).shape[0] == 5


def test_second_run_redoes_nothing(swept):
    out, first = swept
    before = _mtimes(out, first.rows)
    again = run(SPEC, out, progress=False, log=lambda m: None)
    assert again.counts["skipped"] == 4 and again.plan.todo == [] and again.execution is None
    assert _mtimes(out, again.rows) == before
    assert [r["timings"] for r in again.rows] == [r["timings"] for r in first.rows]  # kept from the first run


def test_incomplete_run_is_redone_alone(swept):
    out, first = swept
    target = first.rows[1]
    meta_file = out / target["path"] / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps({**meta, "complete": False}))
    before = _mtimes(out, first.rows)
    again = run(SPEC, out, progress=False, log=lambda m: None)
    assert (again.counts["skipped"], again.counts["redone"], again.counts["complete"]) == (3, 1, 4)
    assert again.row(target["name"])["action"] == "redone"
    assert attnscope.open_run(out / target["path"]).complete
    after = _mtimes(out, again.rows)
    assert [n for n in before if before[n] != after[n]] == [target["name"]]


def test_failing_job_is_reported_and_others_finish(ray_session, tmp_path):
    spec = {**SPEC, "prompts": ["a red circle moving left", "a green square moving down"], "bends": [REWEIGHT]}
    result = run(spec, tmp_path, progress=False, log=lambda m: None)
    assert (result.counts["complete"], result.counts["failed"]) == (1, 1)
    failed = result.failed[0]
    assert failed["prompt"] == "a green square moving down"
    assert failed["error"]["type"] == "BendRecipeError" and "'circle' is not in the prompt" in \
        failed["error"]["message"]
    index = json.loads(result.index_path.read_text())
    assert [r["status"] for r in index["jobs"]] == ["complete", "failed"]
    assert run(spec, tmp_path, progress=False, log=lambda m: None).counts["retried"] == 1


def test_cli_exit_codes(ray_session, tmp_path, monkeypatch):
    import typer
    from typer.testing import CliRunner

    from attnscope.sweep.cli import sweep_command

    app = typer.Typer()
    app.command()(sweep_command)
    runner = CliRunner()
    assert "Example: attnscope sweep" in runner.invoke(app, ["--help"]).output
    spec = tmp_path / "fail.yaml"
    spec.write_text("model: tiny\nprompts: [a green square, a red circle]\nbends: [[{target: attention, op: reweight, "
                    "word: circle, scale: 2}]]\ngenerate: {steps: 1, frames: 1, height: 32, width: 32}\n")
    monkeypatch.chdir(tmp_path)  # a relative --out: actors write where the user means
    failed = runner.invoke(app, ["fail.yaml", "--out", "out", "--workers", "1"])
    assert failed.exit_code == 1, failed.output
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert (index["counts"]["failed"], index["counts"]["complete"]) == (1, 1)
    assert attnscope.open_run(tmp_path / "out" / index["jobs"][1]["path"]).complete
    spec.write_text("model: tiny\nprompt: [a cat]\n")
    bad = runner.invoke(app, [str(spec), "--out", str(tmp_path / "bad")])
    assert isinstance(bad.exception, SweepSpecError) and "unknown key 'prompt'" in str(bad.exception)
