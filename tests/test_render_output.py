"""Files written by render() and the CLI: MP4s decode with PyAV at the expected frame count and size."""

from __future__ import annotations

import av
import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from attnscope.errors import AttnscopeError, RunFormatError, SelectionError
from attnscope.render import render
from attnscope.render.cli import render_command
from attnscope.render.synthetic import make_synthetic_run
from attnscope.store import open_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    # 24x40 px tokens would not fit Wan; an odd pixel size (100x150) checks that any frame size encodes
    path = make_synthetic_run(tmp_path_factory.mktemp("out") / "run", grid=(3, 6, 9), pixel=(9, 100, 150))
    return open_run(path)


def _decode(path) -> tuple[int, int, int, float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        rate = float(stream.average_rate)
        codec = stream.codec_context.name
    assert codec == "h264"
    return len(frames), frames[0].shape[0], frames[0].shape[1], rate


@pytest.mark.parametrize("kind", ["overlay", "heatmap", "segmentation"])
def test_video_kinds_decode_at_the_videos_count_and_size(run, kind):
    words = ["circle", "square"] if kind == "segmentation" else "circle"
    path = render(run, words, kind)
    assert path.parent == run.path / "renders" and path.suffix == ".mp4"
    count, h, w, fps = _decode(path)
    assert (count, fps) == (9, 16)
    assert (h, w) == (100, 150)


def test_timeline_decodes_at_steps_times_hold(run):
    count, h, w, _ = _decode(render(run, "circle", "timeline"))
    assert count == 4 * 4 and (h, w) == (100, 300)  # 4 steps held 4 frames each; preview | map
    count, *_ = _decode(render(run, "circle", "timeline", frames_in_steps=True, out=run.path / "t2.mp4"))
    assert count == 4 * 9


def test_stills_and_grid_png(run, tmp_path):
    for kind in ("overlay", "heatmap", "segmentation"):
        img = Image.open(render(run, "circle", kind, out=tmp_path / f"{kind}.png"))
        assert img.size == (150, 100)
    strip = Image.open(render(run, "circle", "timeline", out=tmp_path / "timeline.png"))
    assert strip.size == (4 * 150, 2 * 100)  # 4 steps side by side, x0 estimate above the map
    one = Image.open(render(run, "circle", "grid"))  # layers x heads
    two = Image.open(render(run, ["circle", "square"], "grid", norm="frame", out=tmp_path / "g.png"))
    assert one.size[0] > 2 * 112 and two.size[1] > 2 * 70
    pixels = np.asarray(one)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # panels, not an empty sheet


def test_bad_requests(run, tmp_path):
    with pytest.raises(SelectionError, match="overlay, heatmap, timeline, segmentation, grid"):
        render(run, "circle", "sparkles")
    with pytest.raises(SelectionError, match="--kind segmentation or grid"):
        render(run, ["circle", "square"], "overlay")
    with pytest.raises(SelectionError, match=r"\.png"):
        render(run, "circle", "grid", out=tmp_path / "g.mp4")
    with pytest.raises(SelectionError, match="hold, linear"):
        render(run, "circle", time="cubic")
    with pytest.raises(RunFormatError, match="no meta.json"):
        render(tmp_path, "circle")


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("render")(render_command)
    app.command("noop")(lambda: None)  # two commands: typer keeps "render" as a sub-command name
    return app


def test_cli(run, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli.mp4"
    result = runner.invoke(_app(), ["render", str(run.path), "--word", "square", "--kind", "heatmap",
                                    "--step", "1-3", "--layer", "1", "--norm", "frame", "--clip", "99",
                                    "--time", "linear", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.exists() and _decode(out)[0] == 9
    help_text = runner.invoke(_app(), ["render", "--help"]).output
    assert "Example: attnscope render" in help_text
    bad = runner.invoke(_app(), ["render", str(run.path), "--word", "dog"])
    assert isinstance(bad.exception, AttnscopeError) and "words captured: 'circle', 'square'" in str(bad.exception)


def test_matte_folder_holds_one_sequence_per_default_word(run, tmp_path):
    result = CliRunner().invoke(_app(), ["render", str(run.path), "--kind", "matte", "-o", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert names == [f"{w}_matte_{t:04d}.png" for w in ("circle", "square") for t in range(9)]
    help_text = CliRunner().invoke(_app(), ["render", "--help"]).output
    assert "--no-colorbar" in help_text and "--rgba" in help_text and "matte" in help_text
