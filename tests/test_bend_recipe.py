"""Bend recipes: every accepted form loads, round-trips through meta.json, and bad recipes fail by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attnscope.bend.recipe import BENDS, BendRecipeError, ClusterChannels, Recipe, load_recipe
from attnscope.errors import AttnscopeError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "bends"

ISSUE_EXAMPLE = [
    {"target": "attention", "op": "reweight", "word": "circle", "scale": 0.0},
    {"target": "attention", "op": "translate", "word": "cat", "dx": 0.25, "dy": 0.0, "layers": [10, 20],
     "steps": [0, 15]},
    {"target": "activation", "op": "rotate", "degrees": 90, "layers": [5], "channels": {"cluster": 2, "of": 6}},
    {"target": "head", "op": "ablate", "layers": [3], "heads": [0, 7]},
]


def test_forms_load_the_same_recipe(tmp_path):
    as_list = load_recipe(ISSUE_EXAMPLE)
    yaml_file = tmp_path / "r.yaml"
    yaml_file.write_text("bends:\n" + "".join(f"  - {json.dumps(b)}\n" for b in ISSUE_EXAMPLE))
    json_file = tmp_path / "r.json"
    json_file.write_text(json.dumps({"bends": ISSUE_EXAMPLE}))
    assert load_recipe({"bends": ISSUE_EXAMPLE}) == as_list
    assert load_recipe(yaml_file) == as_list
    assert load_recipe(str(json_file)) == as_list
    assert load_recipe(as_list) is as_list
    assert [(b.target, b.op) for b in as_list.bends] == [(b["target"], b["op"]) for b in ISSUE_EXAMPLE]
    assert as_list.bends[1].layers == [10, 20] and as_list.bends[1].steps == [0, 15]


def test_to_json_round_trips_through_json_text():
    recipe = load_recipe(ISSUE_EXAMPLE + [{"target": "attention", "op": "blur", "word": "cat", "sigma": 1.5,
                                           "steps": [0.0, 0.5], "branch": "cond", "renormalize": False}])
    text = json.dumps(recipe.to_json())
    again = load_recipe(json.loads(text))
    assert again == recipe
    assert again.bends[-1].steps == [0.0, 0.5] and isinstance(again.bends[-1].steps[0], float)
    # what the recipe left out stays out (a model's measured defaults fill it), what it set is kept
    assert json.loads(text)[0]["scale"] == 0.0 and "branch" not in json.loads(text)[0]
    assert again.bends[0].branch == "both" and json.loads(text)[-1]["branch"] == "cond"


def test_every_registered_bend_dumps_and_reloads():
    for (target, op), model in BENDS.items():
        required = {k: v for k, v in {"word": "cat", "heads": [0], "degrees": 30.0, "factor": 2.0, "sigma": 1.0,
                                      "amount": 0.5, "level": 0.5, "frames": 1, "scale": 2.0, "std": 0.1,
                                      "source": "runs/a"}.items()
                    if k in model.model_fields}
        recipe = load_recipe([{"target": target, "op": op, **required}])
        assert load_recipe(recipe.to_json()) == recipe, (target, op)


def test_ranges_and_all():
    bend = load_recipe([{"target": "head", "op": "ablate", "layers": "2-4", "heads": ["0-1", 5],
                         "steps": "all"}]).bends[0]
    assert bend.layers == [2, 3, 4] and bend.heads == [0, 1, 5] and bend.steps is None


@pytest.mark.parametrize(("steps", "num_steps", "expected"), [
    ([0.0, 0.5], 10, [0, 1, 2, 3, 4]),
    ([0.5, 1.0], 10, [5, 6, 7, 8, 9]),
    ([0.0, 0.3], 4, [0, 1]),  # progress 0, .25
    ([0.2, 0.6], 5, [1, 2]),  # progress .2, .4; .6 is excluded (half-open)
    ([0, 2], 5, [0, 2]),  # integers are indices
])
def test_step_selection(steps, num_steps, expected):
    bend = load_recipe([{"target": "head", "op": "ablate", "heads": [0], "steps": steps}]).bends[0]
    chosen = [s for s in range(num_steps) if bend.selects(s, num_steps, 0, "cond", "transformer")]
    assert chosen == expected


def test_layer_branch_expert_selection():
    bend = load_recipe([{"target": "head", "op": "ablate", "heads": [0], "layers": [1, 3], "branch": "uncond",
                         "experts": ["transformer_2"]}]).bends[0]
    assert bend.selects(0, 4, 3, "uncond", "transformer_2")
    assert not bend.selects(0, 4, 2, "uncond", "transformer_2")
    assert not bend.selects(0, 4, 3, "cond", "transformer_2")
    assert not bend.selects(0, 4, 3, "uncond", "transformer")


@pytest.mark.parametrize(("bend", "words"), [
    ({"target": "attention", "op": "twist", "word": "cat"}, ["unknown op 'twist'", "translate", "reweight"]),
    ({"target": "attention", "op": "translate", "word": "cat", "dz": 1}, ["translate", "'dz'", "dx, dy"]),
    ({"target": "attention", "op": "reweight", "word": "cat", "scale": 1, "branch": "negative"},
     ["branch", "'cond', 'uncond' or 'both'"]),
    ({"target": "attention", "op": "reweight", "word": "cat", "scale": -1}, ["'scale'", "greater than or equal to 0"]),
    ({"target": "attention", "op": "reweight", "scale": 0}, ["missing parameter 'word'"]),
    ({"target": "attention", "op": "rotate", "word": "cat", "degrees": 9, "steps": [0.5]}, ["steps", "[start, end]"]),
    ({"target": "attention", "op": "rotate", "word": "cat", "degrees": 9, "steps": [0.6, 0.2]}, ["start < end"]),
    ({"target": "attention", "op": "mask", "word": "cat", "x0": 0.6, "x1": 0.2}, ["x0 < x1"]),
    ({"target": "head", "op": "ablate", "heads": [0], "layers": [-1]}, ["'layers'", ">= 0"]),
    ({"target": "activation", "op": "ablate", "channels": {"cluster": 6, "of": 6}}, ["channels", "numbered 0-5"]),
    ({"target": "activation", "op": "ablate", "channels": "half"}, ["channels is 'all'"]),
    ({"target": "weights", "op": "ablate"}, ["unknown target 'weights'", "attention, activation, head, layer"]),
])
def test_bad_bends_name_the_problem(bend, words):
    with pytest.raises(BendRecipeError) as info:
        load_recipe([{"target": "head", "op": "ablate", "heads": [1]}, bend])
    message = str(info.value)
    assert isinstance(info.value, AttnscopeError)
    assert "bend 1" in message
    for word in words:
        assert word in message, (word, message)


def test_bad_recipe_shapes(tmp_path):
    with pytest.raises(BendRecipeError, match="not found"):
        load_recipe(tmp_path / "missing.yaml")
    with pytest.raises(BendRecipeError, match="unknown recipe key"):
        load_recipe({"bends": [], "bend": []})
    with pytest.raises(BendRecipeError, match="bend 0: expected a mapping"):
        load_recipe(["reweight"])
    broken = tmp_path / "broken.yaml"
    broken.write_text("bends: [ {target: attention")
    with pytest.raises(BendRecipeError, match="not valid YAML"):
        load_recipe(broken)


def test_cluster_file_resolves_beside_the_recipe(tmp_path):
    path = tmp_path / "sub" / "r.yaml"
    path.parent.mkdir()
    path.write_text("bends:\n  - {target: activation, op: ablate, channels: {cluster: 0, of: 2, file: c.json}}\n")
    channels = load_recipe(path).bends[0].channels
    assert isinstance(channels, ClusterChannels)
    assert Path(channels.file) == (path.parent / "c.json").resolve()


def test_identities_are_recognized():
    identities = load_recipe([
        {"target": "attention", "op": "reweight", "word": "a", "scale": 1.0},
        {"target": "attention", "op": "translate", "word": "a", "dx": 0.0},
        {"target": "attention", "op": "rotate", "word": "a", "degrees": 360},
        {"target": "activation", "op": "scale", "factor": 1.0},
        {"target": "activation", "op": "multiply", "factor": 1.0},
    ])
    assert all(b.is_identity() for b in identities.bends)
    assert not load_recipe([{"target": "attention", "op": "translate", "word": "a", "dx": 0.01}]).bends[0].is_identity()


def test_shipped_examples_load():
    files = sorted(EXAMPLES.glob("*.yaml"))
    assert {f.name for f in files} >= {"suppress.yaml", "translate.yaml"}
    for f in files:
        assert isinstance(load_recipe(f), Recipe) and load_recipe(f).bends
