"""bend-eval's scoring on hand-made detections, and merging a split run in parts (the generations themselves are
the toy model's and take minutes: `attnscope bend-eval` runs them)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from attnscope.bend.evaluate import DX, SIZE, BendCase, CaseResult, score, summarize, write_json
from attnscope.toy.detect import Detection
from attnscope.toy.world import ToyObject


def _blob(colour: str, shape: str, x: float, y: float = 128.0, r: int = 20, frames: int = 4) -> Detection:
    masks = np.zeros((frames, SIZE, SIZE), bool)
    masks[:, int(y) - r:int(y) + r, int(x) - r:int(x) + r] = True
    return Detection(colour, shape, "still", masks, np.tile([x, y], (frames, 1)).astype(float), 0.9)


CASE = BendCase("a red circle standing still and a blue square moving up", 1,
                [ToyObject("red", "circle", "still"), ToyObject("blue", "square", "up")])


def test_translate_scores_the_centroid_shift_and_a_lost_object():
    base = [_blob("red", "circle", 64), _blob("blue", "square", 190)]
    moved = [_blob("red", "circle", 64 + DX * SIZE), _blob("blue", "square", 190)]
    row = score("translate", CASE, base, moved, {"dx": DX})
    assert row["success"] and row["ratio"] == pytest.approx(1.0, abs=0.02) and row["others_kept"]
    assert row["collateral"] == pytest.approx(0.0)
    short = score("translate", CASE, base, [_blob("red", "circle", 64 + 0.1 * SIZE), base[1]], {"dx": DX})
    assert not short["success"] and short["shift"] == pytest.approx(0.1, abs=0.01)
    wrong_way = score("translate", CASE, base, [_blob("red", "circle", 64 + DX * SIZE), base[1]], {"dx": -DX})
    assert not wrong_way["success"]
    lost = score("translate", CASE, base, [base[1]], {"dx": DX})
    assert lost["lost"] and not lost["success"]
    assert score("translate", CASE, [base[1]], moved, {"dx": DX}) == {"skipped": "baseline lacks the object"}


def test_suppress_needs_the_object_gone_from_its_place_and_the_others_kept():
    base = [_blob("red", "circle", 64), _blob("blue", "square", 190)]
    assert score("suppress", CASE, base, [base[1]], {})["success"]
    recoloured_in_place = score("suppress", CASE, base, [_blob("white", "circle", 64), base[1]], {})
    assert recoloured_in_place["named_gone"] and not recoloured_in_place["success"]
    collateral = score("suppress", CASE, base, [], {})
    assert not collateral["success"] and not collateral["others_kept"]


def _part(tmp_path, name, seeds, split=0, success=True):
    results = [CaseResult(f"prompt {s}", s, "red circle", ["red circle"],
                          {"suppress": {"success": success, "others_kept": True, "collateral": 0.0,
                                        "named_gone": success, "removed": success}}) for s in seeds]
    path = tmp_path / name
    write_json(path, results, {"prompts": len(seeds), "split": split, "start": seeds[0], "device": "cpu",
                               "seconds": 10.0})
    return path


def test_merging_parts_of_a_split_gives_one_report_in_prompt_order(tmp_path, monkeypatch, capsys):
    import sys

    from attnscope import cli

    cli._mount()
    a = _part(tmp_path, "a.json", [3, 4], success=False)
    b = _part(tmp_path, "b.json", [1, 2])
    result = CliRunner().invoke(cli.app, ["bend-eval", "--merge", str(a), "--merge", str(b), "--out",
                                          str(tmp_path)])
    assert result.exit_code == 0, result.output
    merged = json.loads((tmp_path / "bend_eval.json").read_text())
    assert [c["seed"] for c in merged["cases"]] == [1, 2, 3, 4]
    assert merged["summary"]["suppress"]["success"] == 0.5 and merged["settings"]["seconds"] == 20.0
    assert merged["summary"] == json.loads(json.dumps(summarize([CaseResult(**c) for c in merged["cases"]])))
    other = _part(tmp_path, "c.json", [9], split=1)
    monkeypatch.setattr(sys, "argv", ["attnscope", "bend-eval", "--merge", str(a), "--merge", str(other)])
    with pytest.raises(SystemExit) as done:
        cli.main()  # as the console script runs it: one line, exit 2
    assert done.value.code == 2 and "different splits" in capsys.readouterr().err


def test_merging_parts_by_op_keeps_every_op_and_a_later_part_replaces_an_op(tmp_path):
    from attnscope import cli

    cli._mount()
    first = _part(tmp_path, "all.json", [1, 2], success=False)
    again = _part(tmp_path, "suppress.json", [1, 2], success=True)
    report = json.loads(first.read_text())
    for case in report["cases"]:
        case["ops"]["translate"] = {"success": True, "others_kept": True, "collateral": 0.0, "shift": 0.3,
                                    "lost": False, "bend": {"dx": 0.3}}
    first.write_text(json.dumps(report))
    result = CliRunner().invoke(cli.app, ["bend-eval", "--merge", str(first), "--merge", str(again), "--out",
                                          str(tmp_path)])
    assert result.exit_code == 0, result.output
    merged = json.loads((tmp_path / "bend_eval.json").read_text())
    assert set(merged["summary"]) == {"suppress", "translate"}
    assert merged["summary"]["suppress"]["success"] == 1.0 and merged["summary"]["translate"]["success"] == 1.0
