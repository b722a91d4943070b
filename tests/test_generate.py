"""generate() and the `attnscope generate` command on the tiny random pipeline."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import attnscope
from attnscope.errors import DiskSpaceError, ModelNotFoundError, ShapeError
from attnscope.video import read_mp4


@pytest.fixture(scope="module")
def tiny():
    pipe = attnscope.load_pipeline("tiny")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_generate_writes_video_store_and_previews(tiny, tmp_path):
    run = attnscope.generate(tiny, "a (red) cat playing with a soccer ball", tmp_path / "r", seed=3, quiet=True,
                             previews=True)
    assert run.complete and run.words == ["red"]
    assert run.meta["prompt"] == "a red cat playing with a soccer ball"
    assert run.meta["seed"] == 3 and run.meta["model"]["id"] == "tiny"
    frames = read_mp4(run.video_path)
    assert frames.shape == (9, 32, 32, 3)
    assert run.previews.shape[:2] == (4, 9)
    assert np.isfinite(run.maps.values).all()
    again = attnscope.generate(tiny, "a (red) cat playing with a soccer ball", tmp_path / "r2", seed=3, quiet=True)
    np.testing.assert_array_equal(again.maps.values, run.maps.values)  # same seed, same maps


def test_generate_refuses_bad_shapes_and_full_disk(tiny, tmp_path, monkeypatch):
    with pytest.raises(ShapeError, match="4k\\+1"):
        attnscope.generate(tiny, "a cat", tmp_path / "a", num_frames=10, quiet=True)
    with pytest.raises(ShapeError, match="divisible by 16"):
        attnscope.generate(tiny, "a cat", tmp_path / "b", height=40, quiet=True)
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10, 10, 0))
    with pytest.raises(DiskSpaceError, match="free"):
        attnscope.generate(tiny, "a cat", tmp_path / "c", quiet=True)
    assert not (tmp_path / "c").exists()


def test_missing_weights_say_what_to_download(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="download"):
        attnscope.load_pipeline("Wan-AI/Wan2.1-T2V-1.3B-Diffusers", device="cpu")


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "attnscope.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_cli_generate_and_clear_errors(tmp_path):
    ok = _cli("generate", "a red cat playing", "--model", "tiny", "--words", "cat", "--out", "r", "--compact",
              cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert attnscope.open_run(tmp_path / "r").complete and attnscope.open_run(tmp_path / "r").precision == "uint8"
    again = _cli("generate", "a red cat playing", "--model", "tiny", "--out", "r", cwd=tmp_path)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert again.stderr.strip().count("\n") == 0
    missing = _cli("generate", "a red cat", "--model", "tiny", "--words", "dog", "--out", "x", cwd=tmp_path)
    assert missing.returncode == 2 and "'dog' is not in the prompt" in missing.stderr
    frames = _cli("generate", "a red cat", "--model", "tiny", "--frames", "8", "--out", "y", cwd=tmp_path)
    assert frames.returncode == 2 and "4k+1" in frames.stderr


def test_cli_bend_compare_writes_baseline_and_side_by_side(tmp_path):
    (tmp_path / "r.yaml").write_text("bends:\n  - {target: attention, op: reweight, word: cat, scale: 0.0}\n")
    done = _cli("generate", "a red cat playing", "--model", "tiny", "-w", "cat", "--bend", "r.yaml", "--compare",
                "--out", "bent", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    bent, base = attnscope.open_run(tmp_path / "bent"), attnscope.open_run(tmp_path / "bent-baseline")
    assert bent.meta["baseline"] == "../bent-baseline" and bent.meta["bends"][0]["scale"] == 0.0
    assert base.meta["bends"] == [] and base.meta["seed"] == bent.meta["seed"]
    assert np.all(bent.maps.values == 0) and np.all(base.maps.values > 0)
    side = read_mp4(tmp_path / "bent" / "compare.mp4")
    assert side.shape == (9, 32, 96, 3)  # baseline | bent | difference
