"""The shipped toy pipeline: loads offline from the package, is small, and `toy check` scores its videos."""

from __future__ import annotations

import json

from diffusers import WanPipeline
from typer.testing import CliRunner

from attnscope.toy.cli import app
from attnscope.toy.model import TOY_DEFAULTS, TOY_WEIGHTS_DIR, load_toy_pipeline


def test_shipped_weights_load_offline_and_fit_the_budget(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    size = sum(p.stat().st_size for p in TOY_WEIGHTS_DIR.rglob("*") if p.is_file())
    assert size <= 20e6
    pipe = load_toy_pipeline("toy", "cpu")
    assert isinstance(pipe, WanPipeline)
    t = pipe.transformer.config
    assert len(pipe.transformer.blocks) >= 6 and t.num_attention_heads >= 4 and tuple(t.patch_size) == (1, 2, 2)
    assert pipe.vae_scale_factor_spatial == 8 and pipe.vae_scale_factor_temporal == 4
    grid = TOY_DEFAULTS["height"] // 16
    assert grid == 16 and (TOY_DEFAULTS["num_frames"] - 1) // 4 + 1 == 5
    ids = pipe.tokenizer("a red circle moving left").input_ids
    assert len(ids) == 6 and pipe.tokenizer.unk_token_id not in ids, "one token per toy word, then EOS"


def test_toy_check_scores_a_handful_of_prompts(tmp_path):
    out = tmp_path / "check.json"
    result = CliRunner().invoke(app, ["check", "--prompts", "2", "--steps", "1", "--device", "cpu", "--json",
                                      str(out), "--sheet", str(tmp_path / "sheet.png"), "--shift", "5"])
    assert result.exit_code == 0, result.output
    assert "colour+shape present" in result.output
    report = json.loads(out.read_text())
    assert report["totals"]["prompts"] == 2 and report["totals"]["objects"] == 3
    assert report["totals"]["shift"] == 5.0 and "shift 5.0" in result.output
    assert [len(r["objects"]) for r in report["results"]] == [1, 2]
    assert all(0.0 <= report["totals"][k] <= 1.0 for k in ("present", "motion", "clean"))
    assert (tmp_path / "sheet.png").stat().st_size > 1000


def test_check_refuses_a_folder_without_a_pipeline(tmp_path):
    result = CliRunner().invoke(app, ["check", "--model", str(tmp_path), "--prompts", "1"])
    assert result.exit_code != 0 and "toy train" in str(result.exception)
