"""`attnscope generate --parallel` through the CLI: ``--parallel`` is a launch option, not a generation option, so
it reaches the context-parallel setup instead of the options model (which refused it as an extra input); a plain
process is told to launch with torchrun before any model loads; a rank other than 0 generates (the baseline of
--compare too, or rank 0 would wait for it forever) and writes and prints nothing."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from attnscope import cli
from attnscope.errors import AttnscopeError


def invoke(*args: str):
    app = typer.Typer()
    app.command("generate")(cli.generate)
    app.command("noop")(lambda: None)  # two commands: typer keeps "generate" as a sub-command name
    return CliRunner().invoke(app, ["generate", "a red circle moving left", *args])


@pytest.fixture
def no_model(monkeypatch):
    """Loading a model here would be a failure: the launch must be refused first."""
    def refuse(*_, **__):
        raise AssertionError("the model was loaded before --parallel was checked")

    monkeypatch.setattr("attnscope.models.loading.load_pipeline", refuse)


def test_a_single_process_is_told_to_launch_with_torchrun(monkeypatch, no_model):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    result = invoke("--model", "toy", "--steps", "1", "--parallel", "ulysses")
    assert isinstance(result.exception, AttnscopeError), result.output
    message = str(result.exception)
    assert "Extra inputs" not in message
    assert "several GPUs" in message and "torchrun --nproc_per_node N" in message and "--parallel ulysses" in message


def test_an_unknown_kind_is_refused_before_the_model_loads(no_model):
    result = invoke("--parallel", "fast")
    assert isinstance(result.exception, AttnscopeError) and "choose ulysses or ring" in str(result.exception)


def test_a_torchrun_rank_gets_the_parallel_kind_and_generates_the_baseline_too(monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setattr("torch.accelerator.device_count", lambda: 2)
    pipe, seen, generated = object(), {}, []

    def load(model, device=None):
        seen["load"] = model, device
        return pipe

    def enable(p, kind):
        seen["parallel"] = p, kind
        return 1

    def generate(p, prompt, out, **kwargs):
        generated.append((p, out.name, kwargs))
        return None  # what attnscope.generate gives a rank other than 0

    monkeypatch.setattr("attnscope.models.loading.load_pipeline", load)
    monkeypatch.setattr("attnscope.parallel.enable_context_parallel", enable)
    monkeypatch.setattr("attnscope.generation.generate", generate)
    (tmp_path / "r.yaml").write_text("bends:\n  - {target: attention, op: reweight, word: circle, scale: 0.5}\n")
    result = invoke("--model", "toy", "--steps", "3", "--parallel", "ring", "--bend", str(tmp_path / "r.yaml"),
                    "--compare", "--out", str(tmp_path / "bent"))
    assert result.exit_code == 0, (result.output, result.exception)
    assert seen == {"load": ("toy", None), "parallel": (pipe, "ring")}
    assert [(p, name) for p, name, _ in generated] == [(pipe, "bent"), (pipe, "bent-baseline")]
    assert all(kwargs["num_inference_steps"] == 3 for *_, kwargs in generated)
    assert "wrote" not in result.output and not list(tmp_path.glob("bent*"))


@pytest.mark.parametrize("args, says", [(["--self-prop"], "self_prop and probe points"),
                                        (["--probe", "0,1,1"], "self_prop and probe points")])
def test_what_context_parallelism_cannot_do_is_refused_before_the_model_loads(no_model, args, says):
    result = invoke("--model", "toy", "--parallel", "ulysses", *args)
    assert isinstance(result.exception, AttnscopeError) and says in str(result.exception), result.output


def test_a_spatial_bend_is_refused_before_the_model_loads(no_model, tmp_path):
    recipe = tmp_path / "move.yaml"
    recipe.write_text("bends:\n  - {target: attention, op: reweight, object: red circle, scale: 0, eos: masked}\n")
    result = invoke("--model", "toy", "--parallel", "ulysses", "--bend", str(recipe))
    assert isinstance(result.exception, AttnscopeError) and "reweight moves maps" in str(result.exception)
