"""The studio in a real browser (Debian's Chromium through Playwright), real server, the toy model on the CPU:
type a prompt with marked words, generate, see a live map before the run completes (within 3 s of the first
step), a second browser queued meanwhile (and a bad prompt refused there with one message), a translate bend
applied from the Bend tab with the comparison drawn, then a pixel probed and its word chart read.

Screenshots go to $ATTNSCOPE_SCREENSHOTS when set (the README's studio_*.png are made that way), else to tmp_path.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from attnscope.video import read_mp4

pytest.importorskip("gradio")
playwright = pytest.importorskip("playwright.sync_api")

from attnscope.app.server import serve  # noqa: E402
from conftest import BROWSER_MARKS, CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402

pytestmark = BROWSER_MARKS
PROMPT = "a (red circle) moving right and a (blue square) standing still"
STEPS = os.environ.get("ATTNSCOPE_STUDIO_STEPS", "4")  # the README's screenshots: 12


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("studio-runs")
    demo, url = serve(root, port=free_port(), block=False, quiet=True)
    yield url, root
    demo.close()


class FirstStep(threading.Thread):
    """Notes when the first run under ``root`` first lists a finished step in its meta.json."""

    def __init__(self, root: Path) -> None:
        super().__init__(daemon=True)
        self.root, self.at, self.stop = root, None, False

    def run(self) -> None:
        while not self.stop and self.at is None:
            for meta in self.root.rglob("meta.json"):
                try:
                    if json.loads(meta.read_text()).get("steps"):
                        self.at = time.monotonic()
                except ValueError:  # caught mid-write; the next look reads it whole
                    pass
            time.sleep(0.05)


def generate_form(page, prompt: str, words: str = "", probe: str = "") -> None:
    page.get_by_role("tab", name="Generate").click()
    page.locator("#gen_prompt textarea").fill(prompt)
    page.locator("#gen_words input").fill(words)
    page.locator("#gen_steps input").fill(STEPS)
    page.locator("#gen_probe input").fill(probe)
    page.locator("#gen_go").click()


PROBE = (8, 128, 128)  # frame 8, the middle of the toy model's 256 × 256 picture


def test_studio_generate_live_bend_probe_export(served, tmp_path):
    url, root = served
    shots = Path(os.environ.get("ATTNSCOPE_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    watcher = FirstStep(root)
    watcher.start()
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1360, "height": 1000})
        page.goto(url)
        generate_form(page, PROMPT, probe=", ".join(map(str, PROBE)))
        page.locator("#gen_state progress").wait_for(timeout=60_000)

        page.locator("#live_map img").wait_for(timeout=120_000)
        seen = time.monotonic()
        watcher.stop = True
        assert watcher.at is not None and seen - watcher.at < 3.0, f"live map {seen - watcher.at:.1f} s late"
        (run_dir,) = [m.parent for m in root.rglob("meta.json")]
        assert json.loads((run_dir / "meta.json").read_text())["complete"] is False  # before the run completes
        assert "incomplete" in (page.locator("#cards").text_content() or "")  # listed in Runs once it starts
        # a second browser while the first generation runs: a bad prompt is one message and starts nothing; a
        # good one waits its turn
        other = browser.new_context().new_page()
        other.goto(url)
        generate_form(other, PROMPT, words="dragon")
        other.locator("#gen_status .as-error").wait_for(timeout=60_000)
        assert other.locator("#gen_status .as-error").count() == 1
        assert "dragon" in other.locator("#gen_status").inner_text()
        generate_form(other, "a (red circle) " + "moving right " * 300)
        other.locator("#gen_status").get_by_text("512").wait_for(timeout=60_000)
        assert other.locator("#gen_status .as-error").count() == 1
        assert len(list(root.rglob("meta.json"))) == 1  # neither bad prompt started a run
        generate_form(other, "a (green triangle) moving up")
        other.locator("#gen_state").get_by_text("queued").wait_for(timeout=30_000)
        assert "position 1" in other.locator("#gen_state").inner_text()
        other.locator("#gen_cancel").click()
        other.locator("#gen_state").get_by_text("cancelled").wait_for(timeout=30_000)

        halfway = f"step {max(2, int(STEPS) // 2)} of"  # a few tiles in the strip for the screenshot
        page.locator("#live_caption").get_by_text(halfway).wait_for(timeout=180_000)
        page.locator("#live_x0 img").wait_for(timeout=120_000)  # the x0 estimate follows its step's VAE decode
        page.wait_for_timeout(500)
        page.screenshot(path=str(shots / "studio_generate.png"), full_page=True)
        page.locator("#gen_state").get_by_text("done").wait_for(timeout=180_000)
        assert open_run_complete(run_dir)
        assert not any("green-triangle" in str(m) for m in root.rglob("meta.json"))  # the cancelled one never ran

        # Bend: translate the red circle's maps a third of the width, apply, see baseline | bent | difference
        page.get_by_role("tab", name="Bend").click()
        page.locator("#bend_p_dx input[type=range]").fill("0.35")
        page.locator("#bend_add").click()
        page.locator("#bend_yaml").get_by_text("translate").first.wait_for(timeout=30_000)
        assert "red circle" in page.locator("#bend_yaml").inner_text()
        page.locator("#bend_apply").click()
        page.locator("#bend_diff img").wait_for(timeout=240_000)
        page.locator("#bend_bent img").wait_for(timeout=30_000)
        assert "error" not in page.locator("#bend_status").inner_text().lower()
        page.wait_for_timeout(800)
        page.screenshot(path=str(shots / "studio_bend.png"), full_page=True)

        # Probe: the run picked above is the baseline; click the red circle (found in the video) and read the
        # chart's table
        frame = read_mp4(run_dir / "video.mp4")[8].astype(int)
        ys, xs = np.nonzero((frame[..., 0] > 150) & (frame[..., 1] < 90) & (frame[..., 2] < 90))
        at = (xs.mean() / frame.shape[1], ys.mean() / frame.shape[0]) if len(xs) else (0.5, 0.5)
        page.get_by_role("tab", name="Probe").click()
        page.locator("#probe_image img, #probe_status .as-error").first.wait_for(timeout=30_000)
        assert not page.locator("#probe_status .as-error").count(), page.locator("#probe_status").inner_text()
        image = page.locator("#probe_image img")
        box = image.bounding_box()
        side = min(box["width"], box["height"])  # the frame is drawn square, centred in the box
        image.click(position={"x": (box["width"] - side) / 2 + side * at[0],
                              "y": (box["height"] - side) / 2 + side * at[1]})
        page.locator("#probe_table").get_by_text("blue square").wait_for(timeout=60_000)
        table = page.locator("#probe_table").inner_text()
        assert "red circle" in table and "pixel (" in table
        page.locator("#probe_chart img").first.wait_for(timeout=30_000)
        # the probed point (captured with the Generate tab's probe box): where it attends in space-time
        image.click(position={"x": (box["width"] - side) / 2 + side * PROBE[2] / 256,
                              "y": (box["height"] - side) / 2 + side * PROBE[1] / 256})
        page.locator("#probe_rows img").first.wait_for(timeout=60_000)
        page.wait_for_timeout(500)
        page.screenshot(path=str(shots / "studio_probe.png"), full_page=True)

        # Export: the word's matte for compositing, downloaded from Explore, decodes to the run's frames and size
        page.get_by_role("tab", name="Explore").click()
        page.locator("#matte").click()
        link = page.locator("#matte_file a").first
        link.wait_for(timeout=120_000)
        with page.expect_download(timeout=60_000) as download:
            link.click()
        download.value.save_as(tmp_path / "matte.mp4")
        matte, video = read_mp4(tmp_path / "matte.mp4"), read_mp4(run_dir / "video.mp4")
        assert matte.shape == video.shape  # the run's frame count and size
        assert (matte[..., 0] == matte[..., 1]).mean() > 0.99 and matte.max() > 200  # grey, the map at its peak
        browser.close()
    assert (shots / "studio_bend.png").stat().st_size > 10_000


def open_run_complete(path: Path) -> bool:
    from attnscope import open_run

    return open_run(path).complete
