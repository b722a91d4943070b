"""attnscope.analyze: the attention of existing footage, read by re-noising it (issue 13)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import attnscope
from attnscope import cli
from attnscope.errors import FootageError, NoiseLevelError, ShapeError, WordNotFoundError
from attnscope.eval.metrics import latent_mask
from attnscope.footage import run as footage_run
from attnscope.footage.clip import Footage, fit, read_footage
from attnscope.footage.noising import noise_levels
from attnscope.models import wan
from attnscope.toy.world import EVAL_SEED_BASE, caption, render, scene_for_seed
from attnscope.video import read_mp4, write_mp4


def _random_clip(frames=12, height=40, width=60, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def tiny():
    pipe = attnscope.load_pipeline("tiny", device="cpu")
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def toy_footage(tmp_path_factory):
    """A held-out toy-world clip (one object) analyzed by the shipped toy model at one level: (run, scene, masks)."""
    pipe = attnscope.load_pipeline("toy", device="cpu")
    pipe.set_progress_bar_config(disable=True)
    scene = scene_for_seed(EVAL_SEED_BASE + 913_000, n_objects=1)
    video, masks = render(scene)
    path = tmp_path_factory.mktemp("footage") / "clip.mp4"
    write_mp4(path, video.numpy(), fps=16)
    out = path.parent / "run"
    run = attnscope.analyze(pipe, path, caption(scene), words=[scene[0].colour, scene[0].shape], out=out,
                            sigmas=[0.5], frames=9, quiet=True)
    return run, scene, masks.numpy()


def test_fit_crops_to_aspect_resizes_and_cuts_to_4k_plus_1():
    geometry = wan.WanGeometry(vae_temporal=4, vae_spatial=8, patch=(1, 2, 2))
    clip = fit(Footage(_random_clip(30, 100, 200), 30.0, "x.mp4"), geometry, None, 32, 48)
    assert clip.frames.shape == (29, 32, 48, 3) and clip.frames.dtype == np.uint8
    r = clip.resize
    assert r["crop"] == {"y": 0, "x": 25, "height": 100, "width": 150}  # 200 wide → 150 (3:2), centred
    assert r["frames_dropped"] == 1 and r["size"] == {"frames": 29, "height": 32, "width": 48}
    assert r["note"] == ("200×100, 30 frames @ 30 fps → centre crop 150×100 → resized to 48×32; first 29 frames "
                         "kept (1 dropped)")
    same = fit(Footage(_random_clip(9, 32, 32), 16.0, "array"), geometry, 17, 32, 32)
    assert "size kept" in same.resize["note"] and same.frames.shape[0] == 9
    with pytest.raises(ShapeError, match="divisible by 16"):
        fit(same, geometry, None, 30, 32)


def test_noise_levels_pair_sigma_with_the_schedulers_timestep():
    scheduler = attnscope.load_pipeline("toy", device="cpu").scheduler  # UniPC, flow sigmas, shift 3
    levels = noise_levels(scheduler, [0.2, 0.5])
    assert [(lv.sigma, lv.timestep) for lv in levels] == [(0.2, 200.0), (0.5, 500.0)]
    own = noise_levels(scheduler, steps=4)
    probe = type(scheduler).from_config(scheduler.config)
    probe.set_timesteps(4)
    assert [lv.sigma for lv in own] == pytest.approx(probe.sigmas[:4].tolist())
    assert [lv.timestep for lv in own] == probe.timesteps.tolist()
    assert [lv.sigma for lv in noise_levels(scheduler)] == [0.2, 0.5, 0.8]
    for bad in ([0.0], [1.5], []):
        with pytest.raises(NoiseLevelError):
            noise_levels(scheduler, bad)
    with pytest.raises(NoiseLevelError, match="not both"):
        noise_levels(scheduler, [0.5], steps=2)


def test_toy_footage_run_shapes_meta_and_video(toy_footage):
    run, scene, _ = toy_footage
    assert run.complete and run.words == [scene[0].colour, scene[0].shape]
    assert run.maps.sizes == {"step": 1, "layer": 8, "head": 8, "word": 2, "frame": 3, "y": 16, "x": 16}
    assert run.meta["prompt"] == caption(scene) and run.meta["num_steps"] == 1
    assert run.meta["steps"] == [{"index": 0, "timestep": 500.0, "sigma": 0.5, "expert": "transformer"}]
    source = run.meta["source"]
    assert source["sigmas"] == [0.5] and source["draws"] == 1 and source["video"].endswith("clip.mp4")
    assert source["resize"]["size"] == {"frames": 9, "height": 256, "width": 256}
    assert source["resize"]["frames_dropped"] == 8
    assert run.meta["pixel"] == {"frames": 9, "height": 256, "width": 256, "fps": 16.0}
    video = read_mp4(run.video_path)
    assert video.shape == (9, 256, 256, 3)


def test_toy_footage_word_is_hotter_on_its_object(toy_footage):
    run, scene, masks = toy_footage
    g = run.meta["grid"]
    on = latent_mask(masks[0, :9], (g["frames"], g["height"], g["width"]))
    for word in run.words:
        heat = run.maps.sel(word=word).astype("float32").mean(("step", "layer", "head")).values
        assert heat[on].mean() > 1.5 * heat[~on].mean(), word


def test_draws_are_averaged_into_one_slab_per_level(tiny, tmp_path, monkeypatch):
    clip = _random_clip()
    one = attnscope.analyze(tiny, clip, "a red cat playing", words=["cat"], out=tmp_path / "one", sigmas=[0.3, 0.7],
                            quiet=True)
    two = attnscope.analyze(tiny, clip, "a red cat playing", words=["cat"], out=tmp_path / "two", sigmas=[0.3, 0.7],
                            draws=2, quiet=True)
    assert two.complete and two.maps.sizes["step"] == 2 and [s["sigma"] for s in two.meta["steps"]] == [0.3, 0.7]
    assert not np.allclose(one.maps.values, two.maps.values)  # the second draw counts
    assert {p.name for p in tmp_path.iterdir()} == {"one", "two"}  # the scratch run of the draws is gone
    real = footage_run.draw_noise
    monkeypatch.setattr(footage_run, "draw_noise", lambda shape, draws, seed: real(shape, 1, seed) * draws)
    same = attnscope.analyze(tiny, clip, "a red cat playing", words=["cat"], out=tmp_path / "same",
                             sigmas=[0.3, 0.7], draws=2, quiet=True, previews=True)
    np.testing.assert_array_equal(same.maps.values, one.maps.values)  # the mean of two equal draws is the draw
    np.testing.assert_array_equal(same.prompt_mass.values, one.prompt_mass.values)
    assert same.previews.shape == (2, 9, 32, 32, 3)


def test_steps_take_the_schedulers_own_levels(tiny, tmp_path):
    run = attnscope.analyze(tiny, _random_clip(), "a red cat playing", words=["cat"], out=tmp_path / "r", steps=3,
                            quiet=True)
    probe = type(tiny.scheduler).from_config(tiny.scheduler.config)
    probe.set_timesteps(3)
    assert [s["sigma"] for s in run.meta["steps"]] == pytest.approx(probe.sigmas[:3].tolist())
    assert run.meta["source"]["levels_from"] == "steps"


def test_bad_input_raises_before_anything_is_written(tiny, tmp_path):
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all")
    with pytest.raises(FootageError, match="cannot read"):
        read_footage(tmp_path / "junk.mp4")
    with pytest.raises(FootageError, match="at least 5"):
        attnscope.analyze(tiny, _random_clip(frames=3), "a red cat", out=tmp_path / "a")
    with pytest.raises(WordNotFoundError):
        attnscope.analyze(tiny, _random_clip(), "a red cat", words=["dog"], out=tmp_path / "b")
    with pytest.raises(NoiseLevelError):
        attnscope.analyze(tiny, _random_clip(), "a red cat", sigmas=[0.0], out=tmp_path / "c")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.mp4"]


def _main(monkeypatch, capsys, *args) -> tuple[int, str]:
    """Run ``attnscope ARGS`` through cli.main, as the console script does (AttnscopeError → exit 2)."""
    monkeypatch.setattr(sys, "argv", ["attnscope", *args])
    with pytest.raises(SystemExit) as done:
        cli.main()
    return done.value.code, capsys.readouterr().err


def test_cli_analyze_writes_a_run_and_bad_input_exits_2(tmp_path, monkeypatch, capsys):
    write_mp4(tmp_path / "clip.mp4", _random_clip(frames=10, height=48, width=48), fps=12)
    cli._mount()
    result = CliRunner().invoke(cli.app, ["analyze", str(tmp_path / "clip.mp4"), "--caption", "a red cat playing",
                                          "-w", "cat", "--model", "tiny", "--sigmas", "0.4,0.6", "--out",
                                          str(tmp_path / "run"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    run = attnscope.open_run(tmp_path / "run")
    assert run.complete and run.meta["source"]["sigmas"] == [0.4, 0.6] and run.meta["pixel"]["fps"] == 12
    (tmp_path / "junk.mp4").write_bytes(b"\x00" * 64)
    cases = [
        (["analyze", str(tmp_path / "junk.mp4"), "-c", "a red cat"], "cannot read"),
        (["analyze", str(tmp_path / "none.mp4"), "-c", "a red cat"], "no video at"),
        (["analyze", str(tmp_path / "clip.mp4"), "-c", "a red cat", "-w", "dog"], "'dog' is not in the prompt"),
        (["analyze", str(tmp_path / "clip.mp4"), "-c", "a red cat", "--sigmas", "0.2,x"], "comma list"),
    ]
    for args, message in cases:
        code, err = _main(monkeypatch, capsys, *args, "--model", "tiny", "--device", "cpu", "--out",
                          str(tmp_path / "bad"))
        assert code == 2 and message in err and err.strip().count("\n") == 0, (args, err)
    assert not (tmp_path / "bad").exists()


def test_footage_array_keeps_torch_rng(tiny, tmp_path):
    torch.manual_seed(7)
    before = torch.rand(1)
    torch.manual_seed(7)
    attnscope.analyze(tiny, _random_clip(), "a red cat", out=tmp_path / "r", sigmas=[0.5], quiet=True)
    assert torch.equal(torch.rand(1), before)  # noise comes from its own seeded generator
