"""Sweep files, job expansion and naming, resume planning, actor layout and the index (no Ray, no model)."""

from __future__ import annotations

import json

import pytest

from attnscope.sweep import SweepSpecError, expand, load_spec
from attnscope.sweep.execute import SweepRayError, plan_layout
from attnscope.sweep.index import read_index, write_index
from attnscope.sweep.jobs import bend_label
from attnscope.sweep.plan import make_plan, run_state

REWEIGHT = [{"target": "attention", "op": "reweight", "word": "circle", "scale": 2.0}]
SPEC = {"model": "tiny", "prompts": ["a red circle moving left", "a blue square moving up"], "seeds": [0, 1],
        "bends": ["none", REWEIGHT], "generate": {"steps": 2, "frames": 5}}


def test_spec_maps_cli_names_to_generate_arguments():
    spec = load_spec({**SPEC, "generate": {"num_inference_steps": 3, "frames": 5, "guidance": 2.5, "heads": "mean",
                                           "layers": "0-1", "capture_steps": [1], "words": ["circle"]}})
    assert spec.bends[0] is None and spec.bends[1][0]["scale"] == 2.0
    assert "branch" not in spec.bends[1][0]  # the validated recipe as written: the model's defaults fill the rest
    assert spec.generate.generate_kwargs() == {"num_inference_steps": 3, "num_frames": 5, "guidance_scale": 2.5,
                                               "heads": "mean", "layers": [0, 1], "steps": [1],
                                               "words": ["circle"]}
    assert load_spec({"prompts": ["a cat"], "seeds": "0-2"}).seeds == [0, 1, 2]


@pytest.mark.parametrize("change, message", [
    ({"prompt": ["x"]}, "unknown key 'prompt'.*valid keys: model, prompts"),
    ({"generate": {"stepz": 3}}, "unknown key 'generate.stepz'.*valid keys under generate: steps"),
    ({"bends": ["none", [{"target": "attention", "op": "reweight", "word": "circle", "scal": 2}]]},
     "'bends': entry 1: bend 0 \\(attention reweight\\):.*unknown parameter 'scal'"),
    ({"bends": [[{"target": "attention", "op": "twist", "word": "circle"}]]}, "entry 0: .*unknown op 'twist'"),
    ({"seeds": [1, 1]}, "'seeds' lists 1 more than once"),
    ({"seeds": [-1]}, "'seeds.0'|seeds must be in"),
    ({"prompts": []}, "'prompts'"),
    ({"prompts": ["  "]}, "prompts must not be empty"),
    ({"generate": {"heads": "some"}}, "'generate.heads': expected \"all\", \"mean\""),
    ({"generate": {"steps": 0}}, "'generate.steps'"),
])
def test_spec_errors_name_the_bad_key(change, message):
    with pytest.raises(SweepSpecError, match=message):
        load_spec({**SPEC, **change})


def test_spec_file_errors(tmp_path):
    with pytest.raises(SweepSpecError, match="not found"):
        load_spec(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("prompts: [a cat\n")
    with pytest.raises(SweepSpecError, match="not valid YAML"):
        load_spec(bad)
    (tmp_path / "recipe.yaml").write_text("bends: [{target: attention, op: reweight, word: cat, scale: 0}]\n")
    good = tmp_path / "sweep.yaml"
    good.write_text("prompts: [a cat]\nbends: [none, recipe.yaml]\n")  # recipe files relative to the sweep file
    assert load_spec(good).bends[1][0]["word"] == "cat"


def test_jobs_cross_product_with_stable_readable_unique_names():
    jobs = expand(load_spec(SPEC))
    assert len(jobs) == 2 * 2 * 2
    assert [(j.prompt_index, j.seed, j.bend_index) for j in jobs[:3]] == [(0, 0, 0), (0, 0, 1), (0, 1, 0)]
    names = [j.name for j in jobs]
    assert len(set(names)) == len(names)
    assert names[1].startswith("p00-a-red-circle-moving-left__s0__b01-reweight-circle-2__")
    assert names == [j.name for j in expand(load_spec(SPEC))]  # stable across invocations
    changed = expand(load_spec({**SPEC, "generate": {"steps": 3, "frames": 5}}))
    assert all(a.name.rsplit("__", 1)[0] == b.name.rsplit("__", 1)[0] and a.name != b.name
               for a, b in zip(jobs, changed, strict=True))  # other settings: same readable part, new hash
    assert bend_label([{**REWEIGHT[0], "layers": [2, 3, 4]}, REWEIGHT[0]]) == "reweight circle 2 L2-4 +1"


def _fake_run(folder, complete: bool | None, video: bool = True):
    folder.mkdir(parents=True)
    if complete is not None:
        (folder / "meta.json").write_text(json.dumps({"complete": complete}))
    if video:
        (folder / "video.mp4").write_bytes(b"")


def test_plan_skips_complete_redoes_incomplete(tmp_path):
    jobs = expand(load_spec(SPEC))
    _fake_run(tmp_path / jobs[0].name, True)
    _fake_run(tmp_path / jobs[1].name, False)
    _fake_run(tmp_path / jobs[2].name, None)  # interrupted before meta.json
    _fake_run(tmp_path / jobs[3].name, True, video=False)
    (tmp_path / jobs[4].name).mkdir()
    (tmp_path / jobs[4].name / "meta.json").write_text("{broken")
    assert [run_state(tmp_path / j.name) for j in jobs[:6]] == ["complete"] + ["incomplete"] * 4 + ["missing"]
    plan = make_plan(jobs, tmp_path, failed_before={jobs[5].name})
    assert plan.counts == {"skipped": 1, "redone": 4, "retried": 1, "new": 2}
    assert [j.name for j in plan.todo] == [j.name for j in jobs[1:]]
    assert plan.summary() == ("8 jobs: 1 complete (skipped), 4 incomplete (redone), 1 failed before (retried), "
                              "2 new")


def test_layout_one_actor_per_gpu_else_cores():
    gpu = plan_layout({"GPU": 2, "CPU": 32}, n_jobs=10, workers=None)
    assert (gpu.kind, gpu.actors, gpu.num_gpus) == ("gpu", 2, 1)
    assert plan_layout({"GPU": 8, "CPU": 32}, n_jobs=3, workers=None).actors == 3  # no idle actors
    assert plan_layout({"GPU": 8, "CPU": 32}, n_jobs=10, workers=1).actors == 1
    cpu = plan_layout({"CPU": 8}, n_jobs=10, workers=2)
    assert (cpu.kind, cpu.actors, cpu.threads, cpu.num_cpus) == ("cpu", 2, 4, 4)
    assert plan_layout({"CPU": 2}, n_jobs=10, workers=16).actors == 2  # never more actors than cores
    with pytest.raises(SweepRayError, match="at least 1"):
        plan_layout({"CPU": 2}, n_jobs=1, workers=0)


def test_index_round_trip(tmp_path):
    rows = [{"name": "a", "status": "failed"}, {"name": "b", "status": "complete"}]
    path = write_index(tmp_path, {"model": "tiny"}, rows, {"invocation": {}})
    data = json.loads(path.read_text())
    assert data["counts"] == {"complete": 1, "failed": 1, "pending": 0}
    assert read_index(tmp_path) == {"a": rows[0], "b": rows[1]}
    path.write_text("{broken")
    assert read_index(tmp_path) == {}
