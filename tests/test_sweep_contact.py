"""The contact sheet's layout on synthetic runs: rows = prompt x seed, columns = bends, failures shown in place."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from attnscope.sweep.contact import HEADER, PAD, ROW_LABEL, build_contact_sheet
from attnscope.video import read_mp4, write_mp4

COLOURS = {(0, 0): (200, 40, 40), (0, 1): (40, 200, 40), (1, 0): (40, 40, 200)}


def _row(prompt_index, bend_index, status, error=None):
    name = f"p{prompt_index}-b{bend_index}"
    return {"name": name, "path": name, "status": status, "prompt_index": prompt_index, "seed": 7,
            "prompt": f"prompt {prompt_index}", "bend_index": bend_index, "bend": f"bend {bend_index}",
            "error": error}


def _fake_run(folder, colour, frames):
    folder.mkdir()
    meta = {"complete": True, "grid": [1, 1, 1], "layers": [0], "heads": [0], "num_steps": 1,
            "pixel": {"frames": frames, "height": 32, "width": 48, "fps": 8}}
    (folder / "meta.json").write_text(json.dumps(meta))
    video = np.zeros((frames, 32, 48, 3), np.uint8)
    video[:] = colour
    video[:, :, :4] = 0  # a dark left edge, to check panels are not flipped
    write_mp4(folder / "video.mp4", video, fps=8)


def test_contact_sheet_places_each_run_in_its_cell(tmp_path):
    rows = []
    for (p, b), colour in COLOURS.items():
        _fake_run(tmp_path / f"p{p}-b{b}", colour, frames=6 if p else 4)  # different lengths: short ones hold
        rows.append(_row(p, b, "complete"))
    rows.append(_row(1, 1, "failed", {"type": "WordNotFoundError", "message": "'circle' is not in the prompt"}))
    sheet = build_contact_sheet(tmp_path, rows, word=None)
    assert (sheet.rows, sheet.columns) == (2, 2)
    png = np.asarray(Image.open(sheet.png).convert("RGB"))
    h, w = 106, 160  # panels keep the videos' 2:3 aspect at 160 px wide
    assert png.shape == (HEADER + 2 * (h + PAD) + PAD, ROW_LABEL + 2 * (w + PAD) + PAD, 3)
    for (p, b), colour in COLOURS.items():
        y, x = HEADER + p * (h + PAD), ROW_LABEL + b * (w + PAD) + PAD
        np.testing.assert_allclose(png[y + h // 2, x + w // 2], colour, atol=12)
        assert png[y + h // 2, x + 2].max() < 30  # the dark edge is on the left
    failed = png[HEADER + h + PAD: HEADER + 2 * h + PAD, ROW_LABEL + w + 2 * PAD:ROW_LABEL + 2 * w + 2 * PAD]
    assert (np.abs(failed.astype(int) - 60) < 3).mean() > 0.8  # a grey panel with the error's text
    assert (failed > 150).any()
    video = read_mp4(sheet.mp4)
    assert video.shape[:3] == (6, *png.shape[:2])
