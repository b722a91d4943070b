"""The studio's job queue with the toy model on the CPU: one generation at a time, a queue position for the
next, Cancel between steps that leaves a readable incomplete run, and bad prompts refused before anything starts."""

from __future__ import annotations

import time

import pytest

from attnscope import open_run
from attnscope.app.studio import CANCELLED, DONE, QUEUED, Settings, Studio
from attnscope.errors import PromptTooLongError, WordNotFoundError
from attnscope.options import OptionsError

SMALL = dict(steps=3, frames=5, height=128, width=128, previews=False)


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    return Studio(tmp_path_factory.mktemp("runs"))


def wait_for_steps(studio: Studio, rel: str, n: int, timeout: float = 120) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if (studio.root / rel / "meta.json").is_file() and len(open_run(studio.root / rel).steps_done) >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"{rel} did not reach {n} steps in {timeout} s")


def test_bad_prompts_are_refused_and_start_nothing(studio):
    with pytest.raises(WordNotFoundError, match="dragon"):
        studio.submit(Settings("a (red circle) moving right", words=("dragon",), **SMALL))
    with pytest.raises(PromptTooLongError, match="512"):
        studio.submit(Settings("a (red) circle " + "moving right " * 300, **SMALL))
    with pytest.raises(OptionsError, match="--guidance"):  # the CLI's own option checks (attnscope.options)
        studio.submit(Settings("a (red) circle", **{**SMALL, "guidance": -1.0}))
    assert not list(studio.root.rglob("meta.json"))


def test_one_at_a_time_the_second_waits_and_cancel_keeps_finished_steps(studio):
    first = studio.submit(Settings("a (red circle) moving right", seed=1, **{**SMALL, "steps": 6}))
    second = studio.submit(Settings("a (blue square) moving up", seed=2, **SMALL))
    assert second.state == QUEUED and studio.position(second) >= 1
    wait_for_steps(studio, first.rel, 1)
    assert second.state == QUEUED and studio.position(second) == 1
    studio.cancel(first.id)
    studio.wait(first.id, timeout=120)
    assert first.state == CANCELLED, first.error
    run = open_run(studio.root / first.rel)
    assert not run.complete and 1 <= len(run.steps_done) < 6
    assert run.maps.isel(step=0).sum().compute() > 0  # the finished steps stay readable
    studio.wait(second.id, timeout=180)
    assert second.state == DONE, second.error
    done = open_run(studio.root / second.rel)
    assert done.complete and done.video_path is not None and done.words == ["blue square"]


def test_cancel_before_the_start_never_starts(studio):
    running = studio.submit(Settings("a (red circle) moving left", seed=3, **SMALL))
    waiting = studio.submit(Settings("a (green circle) moving left", seed=4, **SMALL))
    studio.cancel(waiting.id)
    assert waiting.state == CANCELLED and studio.position(waiting) == 0
    studio.wait(running.id, timeout=180)
    assert not (studio.root / waiting.rel).exists()
