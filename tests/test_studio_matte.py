"""Mattes: the run's frame count and pixel size, 16-bit PNGs, grayscale MP4, RGBA overlays; the same from
``attnscope render --kind matte`` (``--rgba``), and ``--no-colorbar`` on every video kind."""

from __future__ import annotations

import json
import sys

import av
import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from attnscope import cli
from attnscope.render import lookup_table, render
from attnscope.render.cli import render_command
from attnscope.render.geometry import geometry
from attnscope.render.matte import matte_frames, write_matte_mp4, write_matte_pngs, write_rgba_pngs
from attnscope.render.output import VIDEO_KINDS
from attnscope.render.preset import PRESET_FILE
from attnscope.render.synthetic import make_synthetic_run
from attnscope.render.view import resolve_view
from attnscope.store import open_run
from attnscope.video import read_mp4


def test_matte_has_the_runs_frames_and_size_in_every_format(tmp_path):
    run = open_run(make_synthetic_run(tmp_path / "run", grid=(3, 8, 8), num_steps=2, layers=2, heads=2,
                                      words=("circle", "square")))
    geo = geometry(run)
    matte = matte_frames(run, "circle", norm="frame")
    assert matte.shape == (geo.frames, geo.height, geo.width)
    assert matte.min() >= 0.0 and matte.max() <= 1.0 and matte.max() > 0.9
    video = read_mp4(write_matte_mp4(tmp_path / "m.mp4", matte, geo.fps))
    assert video.shape[:3] == matte.shape
    assert np.abs(video[..., 0].astype(float) / 255 - matte).mean() < 0.03
    pngs = write_matte_pngs(tmp_path / "png", matte)
    assert len(pngs) == geo.frames
    first = np.asarray(Image.open(pngs[0]))
    assert first.dtype == np.uint16 and first.shape == matte.shape[1:]
    rgba = write_rgba_pngs(tmp_path / "rgba", matte)
    assert Image.open(rgba[0]).mode == "RGBA" and len(rgba) == geo.frames


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    """A run whose pixel size is not the token grid's multiple of 16 (100 x 150, 9 frames)."""
    return open_run(make_synthetic_run(tmp_path_factory.mktemp("matte") / "run", grid=(3, 6, 9),
                                       pixel=(9, 100, 150)))


def _invoke(*args: str) -> str:
    app = typer.Typer()
    app.command("render")(render_command)
    app.command("noop")(lambda: None)  # two commands: typer keeps "render" as a sub-command name
    result = CliRunner().invoke(app, ["render", *args])
    assert result.exit_code == 0, result.output
    return result.output


def _decode(path) -> np.ndarray:
    """Every frame of an MP4, decoded with PyAV: uint8 [T, H, W, 3]."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_cli_matte_mp4_has_the_runs_video_frames_and_size(odd):
    _invoke(str(odd.path), "-w", "circle", "--kind", "matte")
    matte = _decode(odd.path / "renders" / "circle_matte.mp4")
    assert matte.shape == _decode(odd.video_path).shape == (9, 100, 150, 3)
    assert np.abs(matte.astype(int) - matte[..., :1]).max() <= 2  # grey: the same value in every channel
    expected = matte_frames(odd, "circle", maps=resolve_view(odd, "circle").map(odd))
    assert np.abs(matte[..., 0] / 255 - expected).mean() < 0.02
    hot = np.unravel_index(matte[2, ..., 0].argmax(), (100, 150))
    assert hot[0] < 50 and hot[1] < 75  # the circle's blob sits in the top-left quarter


def test_cli_matte_png_sequence_is_16_bit_and_tracks_the_map(odd, tmp_path):
    _invoke(str(odd.path), "-w", "circle", "--kind", "matte", "-o", str(tmp_path / "seq"))
    paths = sorted((tmp_path / "seq").iterdir())
    assert [p.name for p in paths] == [f"circle_matte_{t:04d}.png" for t in range(9)]
    images = [Image.open(p) for p in paths]
    assert {im.mode for im in images} == {"I;16"} and {im.size for im in images} == {(150, 100)}
    frames = np.stack([np.asarray(im) for im in images])
    expected = matte_frames(odd, "circle", maps=resolve_view(odd, "circle").map(odd))
    assert frames.dtype == np.uint16 and np.abs(frames / 65535 - expected).max() <= 1 / 65535
    assert len(np.unique(frames)) > 1000  # finer than 8 bit
    _invoke(str(odd.path), "-w", "circle", "--kind", "matte", "--frame", "6", "-o", str(tmp_path / "one.png"))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "one.png")), frames[6])


def test_cli_rgba_overlays_carry_the_map_as_alpha(odd, tmp_path):
    _invoke(str(odd.path), "-w", "square", "--kind", "matte", "--rgba", "-o", str(tmp_path / "rgba"))
    paths = sorted((tmp_path / "rgba").iterdir())
    assert len(paths) == 9 and paths[0].name == "square_rgba_0000.png"
    first = Image.open(paths[7])
    assert first.mode == "RGBA" and first.size == (150, 100)
    pixels = np.asarray(first)
    expected = matte_frames(odd, "square", maps=resolve_view(odd, "square").map(odd))[7]
    assert np.abs(pixels[..., 3] / 255 - expected).max() <= 1 / 255
    assert np.array_equal(pixels[..., :3], lookup_table("inferno")[np.rint(expected * 255).astype(int)])


def test_matte_uses_the_resolved_view_of_a_measured_model(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / PRESET_FILE).write_text(json.dumps({"estimator": "renorm", "layers": [1], "step_fraction": [0.5, 1.0],
                                                 "norm": "frame", "source": "test"}))
    path = make_synthetic_run(tmp_path / "run", num_steps=4, layers=2, heads=2, previews=False)
    meta = json.loads((path / "meta.json").read_text())
    meta["model"]["id"] = str(model)
    (path / "meta.json").write_text(json.dumps(meta))
    run = open_run(path)
    render(run, "circle", "matte", out=tmp_path / "seq")
    got = np.stack([np.asarray(Image.open(p)) for p in sorted((tmp_path / "seq").iterdir())]) / 65535
    view = resolve_view(run, "circle")
    assert (view.estimator, view.norm, view.layer) == ("renorm", "frame", [1])
    assert np.abs(got - matte_frames(run, "circle", norm="frame", maps=view.map(run))).max() <= 1 / 65535
    plain = matte_frames(run, "circle")  # the plain raw mean, one range over the video
    assert np.abs(got - plain).max() > 0.05, "the preset's view is a different matte"


def _light(image: np.ndarray) -> np.ndarray:
    """Pixels light in every channel: the colour bar's and legend's text."""
    return image.min(-1) > 200


@pytest.mark.parametrize("kind", VIDEO_KINDS)
def test_no_colorbar_leaves_every_video_kind_undecorated(odd, tmp_path, kind):
    words = ["circle", "square"] if kind == "segmentation" else "circle"
    shown = {bar: np.asarray(Image.open(render(odd, words, kind, colorbar=bar, frame=4,
                                               out=tmp_path / f"{kind}_{bar}.png")).convert("RGB"))
             for bar in (True, False)}
    assert shown[True].shape == shown[False].shape
    changed = (shown[True] != shown[False]).any(-1)
    assert changed.mean() > 0.01, "the colour bar covers part of the frame"
    assert _light(shown[True])[changed].sum() > 20 and not _light(shown[False])[changed].any()
    if kind == "heatmap":  # without the bar every pixel is a colour of the map's colormap
        table = {tuple(c) for c in lookup_table("inferno")}
        inside = [tuple(p) in table for p in shown[False].reshape(-1, 3)[::7]]
        assert all(inside) and not all(tuple(p) in table for p in shown[True][changed])


@pytest.mark.parametrize("kind", VIDEO_KINDS)
def test_cli_no_colorbar_mp4s(odd, tmp_path, kind):
    words = ["-w", "circle", "-w", "square"] if kind == "segmentation" else ["-w", "circle"]
    videos = {}
    for flag in ("--colorbar", "--no-colorbar"):
        _invoke(str(odd.path), *words, "--kind", kind, flag, "-o", str(tmp_path / f"{flag}.mp4"))
        videos[flag] = _decode(tmp_path / f"{flag}.mp4")
    bar, clean = videos["--colorbar"], videos["--no-colorbar"]
    assert bar.shape == clean.shape
    changed = np.abs(bar.astype(int) - clean).max(-1) > 60  # more than the codec's noise: the bar
    assert (_light(bar) & changed).any(axis=(1, 2)).all(), "every frame carries the colour bar's text"
    assert not _light(clean)[changed].any()


def _main(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """``attnscope ARGS`` through cli.main, as the console script runs it (AttnscopeError -> exit 2)."""
    monkeypatch.setattr(sys, "argv", ["attnscope", *args])
    with pytest.raises(SystemExit) as done:
        cli.main()
    return done.value.code, capsys.readouterr().err


def test_bad_matte_requests_exit_2_with_one_line(odd, tmp_path, monkeypatch, capsys):
    run = str(odd.path)
    cases = [
        (["-w", "circle", "--kind", "sparkles"], "choose one of overlay, heatmap, timeline, segmentation, grid, matte"),
        (["-w", "dog", "--kind", "matte"], "words captured: 'circle', 'square'"),
        (["-w", "circle", "--kind", "matte", "--rgba", "-o", str(tmp_path / "x.mp4")], "RGBA overlays are PNGs"),
        (["-w", "circle", "--kind", "matte", "-o", str(tmp_path / "x.mov")], "a folder (a PNG sequence)"),
        (["-w", "circle", "--kind", "overlay", "--rgba"], "add --kind matte"),
        (["-w", "circle", "--kind", "grid", "--no-colorbar"], "a grid keeps the colour bar"),
        (["-w", "circle", "--kind", "matte", "--frame", "99", "-o", str(tmp_path / "f.png")], "frames 0-8"),
    ]
    for args, message in cases:
        code, err = _main(monkeypatch, capsys, "render", run, *args)
        assert code == 2 and message in err and err.strip().count("\n") == 0, (args, err)
    assert not (tmp_path / "x.mp4").exists() and not (tmp_path / "f.png").exists()
