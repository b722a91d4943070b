"""The viewer in a real browser (Debian's Chromium through Playwright): load, move a slider, see the change.

Screenshots go to $ATTNSCOPE_SCREENSHOTS when set (the README's pictures are made that way), else to tmp_path.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("gradio")
playwright = pytest.importorskip("playwright.sync_api")

from attnscope.app.server import serve  # noqa: E402
from attnscope.render.synthetic import make_synthetic_run  # noqa: E402
from conftest import BROWSER_MARKS, CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    make_synthetic_run(root / "circle-and-square", grid=(9, 20, 32), num_steps=6, layers=4, heads=3,
                       words=("circle", "square", "triangle"))
    demo, url = serve(root, port=free_port(), block=False, quiet=True)
    yield url
    demo.close()


def still_src(page) -> str:
    return page.locator("#still img").first.get_attribute("src") or ""


def test_browser_moves_a_slider_and_the_picture_changes(url, tmp_path):
    shots = Path(os.environ.get("ATTNSCOPE_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1360, "height": 1000})
        page.goto(url)
        page.locator("#cards .as-card").first.wait_for(timeout=30_000)
        assert "circle-and-square" in page.locator("#cards").inner_text()
        page.screenshot(path=str(shots / "viewer_runs.png"))
        page.get_by_role("tab", name="Explore").click()
        page.locator("#still img").first.wait_for(timeout=30_000)
        opened = still_src(page)
        assert opened
        # an unmeasured model's run opens at the mean over every step (as `attnscope render` draws it): show one
        # step, so the step slider has something to move
        page.locator("#step_mean input").uncheck()
        page.wait_for_function("(old) => { const i = document.querySelector('#still img');"
                               " return i && i.src && i.src !== old; }", arg=opened, timeout=30_000)
        first = still_src(page)
        page.locator("#step input[type=range]").fill("0")  # the earliest step: a diffuse map
        page.wait_for_function("(old) => { const i = document.querySelector('#still img');"
                               " return i && i.src && i.src !== old; }", arg=first, timeout=30_000)
        second = still_src(page)
        assert second != first
        page.locator("#frame input[type=range]").fill("12")
        page.wait_for_function("(old) => document.querySelector('#still img').src !== old", arg=second,
                               timeout=30_000)
        page.wait_for_timeout(300)
        page.screenshot(path=str(shots / "viewer_explore.png"), full_page=True)
        assert "error" not in page.locator("#status").inner_text().lower()
        browser.close()
    assert (shots / "viewer_explore.png").stat().st_size > 10_000
