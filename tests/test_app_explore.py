"""Explore, views and charts driven through the viewer's event functions on a synthetic run with known blobs."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gradio")

from attnscope.app import charts, explore, views  # noqa: E402
from attnscope.app.explore import Controls  # noqa: E402
from attnscope.app.handlers import Handlers  # noqa: E402
from attnscope.app.session import Viewer  # noqa: E402
from attnscope.render.synthetic import make_synthetic_run  # noqa: E402
from attnscope.video import read_mp4  # noqa: E402

WORDS = ("circle", "square")
BLOBS = {"circle": (2, 3, 4), "square": (2, 12, 11)}  # latent (frame, y, x); 16 px per token
PLAIN = dict(alpha=1.0, colorbar=False, frame=6)  # pure colormap, no colour bar: the picture is the map


@pytest.fixture(scope="module")
def viewer(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    make_synthetic_run(root / "blobs", grid=(5, 16, 16), num_steps=4, layers=3, heads=2, words=WORDS, blobs=BLOBS)
    return Viewer(root, out_dir=tmp_path_factory.mktemp("out"))


def still(viewer, **kw) -> np.ndarray:
    return explore.still(viewer, "blobs", Controls(**{"word": "circle", "step": 3, "layer": 1, **PLAIN, **kw}))


def hot_token(image: np.ndarray) -> tuple[int, int]:
    """The latent (y, x) under the brightest pixel (inferno: brighter = more attention)."""
    y, x = np.unravel_index(image.astype(np.float32).sum(-1).argmax(), image.shape[:2])
    return int(y) // 16, int(x) // 16


def differ(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_word_moves_the_hot_region(viewer):
    for word, (_, by, bx) in BLOBS.items():
        y, x = hot_token(still(viewer, word=word))
        assert abs(y - by) <= 1 and abs(x - bx) <= 1, (word, (y, x))


def brightness(image: np.ndarray) -> float:
    return float(image.astype(np.float32).mean())


def test_step_layer_head_change_the_picture(viewer):
    base = still(viewer, norm="absolute")  # absolute: the picture shows each slice's own strength
    assert brightness(still(viewer, norm="absolute", step=0)) > brightness(base) + 0.5  # diffuse early
    layers = [brightness(still(viewer, norm="absolute", layer=i)) for i in range(3)]
    assert layers[0] < layers[1] < layers[2]  # the synthetic run's layers grow stronger
    assert layers[1] < brightness(still(viewer, norm="absolute", layer_mean=True, layer_range="1-2")) < layers[2]
    heads = [brightness(still(viewer, norm="absolute", head_mean=False, head=i)) for i in range(2)]
    assert heads[0] < brightness(base) < heads[1]  # and so do its heads; the default averages them
    assert differ(base, still(viewer, norm="absolute", step_mean=True)) > 0.5
    assert differ(base, still(viewer, norm="absolute", step_mean=True, step_range="3-3")) == 0


def test_colormap_normalization_opacity_frame(viewer):
    inferno, viridis = still(viewer), still(viewer, cmap="viridis")
    lowest = viridis.reshape(-1, 3)[viridis.sum(-1).argmin()]
    assert lowest[2] > lowest[0]  # viridis' low end is purple-blue, inferno's is black
    assert differ(inferno, viridis) > 10
    assert differ(still(viewer, frame=0), still(viewer, frame=0, norm="frame")) > 1
    video = viewer.video(viewer.run("blobs"))
    assert differ(still(viewer, alpha=0.0), video[6]) < 1  # opacity 0 shows the video
    assert differ(still(viewer, alpha=0.0), still(viewer, alpha=0.6)) > 5
    assert differ(still(viewer, frame=0), still(viewer, frame=8)) > 1


def test_only_the_selection_is_read_and_cached(viewer):
    viewer._maps.clear()
    still(viewer)
    misses = viewer._maps.misses
    for kw in ({"cmap": "magma"}, {"alpha": 0.3}, {"frame": 2}, {"norm": "frame"}):
        still(viewer, **kw)
    assert viewer._maps.misses == misses  # drawing controls reuse the selection
    still(viewer, step=2)
    assert viewer._maps.misses == misses + 1


def test_overlay_video_and_timeline(viewer):
    c = Controls(word="square", step=3, layer=1)
    frames = read_mp4(explore.overlay_video(viewer, "blobs", c))
    assert frames.shape == (17, 256, 256, 3)
    timeline = read_mp4(views.timeline_video(viewer, "blobs", c.with_(frame=8)))
    assert timeline.shape[0] >= 4 and timeline.shape[2] == 2 * timeline.shape[1]  # x0 preview | map


def test_segmentation_colours_each_blob_by_its_word(viewer):
    image = views.segmentation_still(viewer, "blobs", Controls(word="circle", step=3, layer=1, frame=8, alpha=1.0))
    circle = image[3 * 16 + 8, 4 * 16 + 8].astype(int)
    square = image[12 * 16 + 8, 11 * 16 + 8].astype(int)
    assert np.abs(circle - square).sum() > 100


def test_grid_sheet_and_charts(viewer):
    sheet = views.grid_sheet(viewer, "blobs", Controls(word="circle", step=3))
    assert sheet.width > 200 and sheet.height > 200
    mass = charts.word_mass(viewer.run("blobs"), 1, "mean")
    assert mass.dims == ("step", "word") and mass.sizes == {"step": 4, "word": 2}
    early, late = (charts.spatial_entropy(viewer.run("blobs"), "circle", s) for s in (0, 3))
    assert float(late.mean()) < float(early.mean())  # blobs sharpen over the steps
    fig = charts.mass_figure(viewer, "blobs", Controls(word="circle", layer_mean=True))
    assert len(fig.axes[0].lines) == 2


def test_handlers_return_error_cards_not_exceptions(viewer):
    h = Handlers(viewer)
    values = ("circle", 99, False, "", 0, False, "", 0, True, "", "inferno", "global", 0.6, 0, "raw", True)
    image, caption, card = h.still("blobs", *values)
    assert image is None and "out of range" in card
    good = (*values[:1], 3, *values[2:])
    image, caption, card = h.still("blobs", "nope", *good[1:])
    assert image is None and "not in this run" in card
    image, caption, card = h.still("blobs", "", *good[1:])  # no run opened yet: nothing drawn, no card
    assert image is None and card is not None and not isinstance(card, str)
    image, caption, card = h.still("blobs", *good)
    assert image.shape == (256, 256, 3) and card == ""
