"""Compare (bent run beside its baseline) and the self-contained HTML export, including its CLI body."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

pytest.importorskip("gradio")

import typer  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from attnscope.app import compare  # noqa: E402
from attnscope.app.cli import export_command, view_command  # noqa: E402
from attnscope.app.explore import Controls  # noqa: E402
from attnscope.app.export import export_report  # noqa: E402
from attnscope.app.session import Viewer  # noqa: E402
from attnscope.render.synthetic import make_synthetic_run  # noqa: E402
from attnscope.video import read_mp4  # noqa: E402

BEND = [{"kind": "attention", "op": "reweight", "words": ["circle"], "scale": 3.0}]


def _meta(path, **changes):
    meta = json.loads((path / "meta.json").read_text())
    meta.update(changes)
    (path / "meta.json").write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    make_synthetic_run(runs / "cat-baseline", words=("circle", "square"))
    make_synthetic_run(runs / "cat", words=("circle", "square"), blobs={"circle": (2, 12, 4), "square": (1, 4, 11)})
    _meta(runs / "cat", bends=BEND, baseline="../cat-baseline")
    make_synthetic_run(runs / "dog", words=("circle", "square"), blobs={"circle": (2, 8, 8), "square": (1, 4, 11)})
    _meta(runs / "dog", bends=BEND)  # no "baseline" key: found by prompt, seed and model
    return runs


def test_baseline_found_by_meta_key_or_by_prompt_seed_model(root):
    viewer = Viewer(root)
    assert compare.find_baseline(viewer, "cat") == "cat-baseline"
    assert compare.find_baseline(viewer, "dog") == "cat-baseline"  # same prompt/seed/model, no bends
    assert compare.find_baseline(viewer, "cat-baseline") is None
    assert set(compare.bent_runs(viewer)) == {"cat", "dog"}


def test_baseline_key_cannot_leave_the_runs_folder(root):
    viewer = Viewer(root)
    _meta(root / "dog", baseline="../../../etc")
    try:
        with pytest.raises(Exception, match="outside the runs folder"):
            compare.find_baseline(viewer, "dog")
    finally:
        _meta(root / "dog", baseline=None)


def test_compare_draws_both_sides_at_one_frame(root):
    viewer = Viewer(root, out_dir=root.parent / "out")
    c = Controls(word="circle", step=3, layer=1, frame=8, alpha=1.0, colorbar=False)
    bent, base = compare.compare_stills(viewer, "cat", None, c)
    hot = [np.unravel_index(img.astype(float).sum(-1).argmax(), img.shape[:2]) for img in (bent, base)]
    assert hot[0][0] // 16 >= 11 and hot[1][0] // 16 <= 5  # the bent run's circle sits lower
    moved, _ = compare.compare_stills(viewer, "cat", None, c.with_(frame=2))
    assert np.abs(moved.astype(int) - bent.astype(int)).mean() > 1
    both = read_mp4(compare.compare_video(viewer, "cat", "cat-baseline", c))
    assert both.shape[1:3] == (256, 512)


def test_export_is_self_contained(root, tmp_path):
    out = export_report(root / "cat", tmp_path / "report.html", step="2-3", layer="mean")
    page = out.read_text()
    assert page.count("data:video/mp4;base64,") == 3  # the video and one overlay per word
    assert page.count("data:image/") >= 4  # stills, segmentation, chart
    assert "<table" in page and "a circle and a square" in page and "bent" in page
    assert not re.search(r"""(src|href)=["'](https?:|/|file:)""", page)  # nothing fetched from elsewhere


def test_cli_bodies_have_examples_and_export_runs(root, tmp_path):
    app = typer.Typer()
    app.command("view")(view_command)
    app.command("export")(export_command)
    runner = CliRunner()
    for name in ("view", "export"):
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0 and "Example: attnscope " + name in result.output
    result = runner.invoke(app, ["export", str(root / "cat-baseline"), "-o", str(tmp_path / "r.html"),
                                 "-w", "square", "--step", "3"])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r.html").read_text()
    assert "<h2>square</h2>" in page and "<h2>circle</h2>" not in page
