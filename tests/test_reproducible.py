"""Same seed, same video, in any process: a generation leaves nothing behind that changes the next one.

Bent, unbent and bent generations in one process must equal the same generations made one by one in fresh
processes (same device, same thread count), and a generation that fails must leave the pipeline as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import attnscope
from attnscope.video import read_mp4

PROMPT = "a red circle moving left and a blue square moving up"
BENDS = {
    "none": None,
    "bent": [{"target": "attention", "op": "reweight", "word": "circle", "scale": 3.0},
             {"target": "attention", "op": "translate", "word": "square", "dx": 0.25, "steps": [0, 1]},
             {"target": "activation", "op": "rotate", "degrees": 90, "channels": {"cluster": 0, "of": 3},
              "layers": [1]},
             {"target": "head", "op": "ablate", "heads": [1], "layers": [2]}],
}
SIZE = dict(num_inference_steps=3, num_frames=5, height=32, width=64)

SCRIPT = """
import hashlib, json, sys, numpy as np, torch, attnscope
from attnscope.video import read_mp4
torch.set_num_threads(int(sys.argv[1]))
pipe = attnscope.load_pipeline("tiny", device="cpu")
pipe.set_progress_bar_config(disable=True)
run = attnscope.generate(pipe, sys.argv[2], sys.argv[3], seed=5, bends=json.loads(sys.argv[4]), quiet=True,
                         **json.loads(sys.argv[5]))
video, maps = read_mp4(run.video_path), np.nan_to_num(np.asarray(run.maps.values))
print(hashlib.sha256(video.tobytes()).hexdigest(), hashlib.sha256(maps.tobytes()).hexdigest())
"""


def _fingerprint(run) -> list[str]:
    video, maps = read_mp4(run.video_path), np.nan_to_num(np.asarray(run.maps.values))
    return [hashlib.sha256(video.tobytes()).hexdigest(), hashlib.sha256(maps.tobytes()).hexdigest()]


def _fresh(kind: str, out) -> list[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(torch.get_num_threads()), PROMPT, str(out),
                           json.dumps(BENDS[kind]), json.dumps(SIZE)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split()[-2:]


def _stock_state(pipe) -> list:
    """Processors and diffusers hooks on every attention module: what a generation must leave as it found."""
    transformer = pipe.transformer
    hooks = getattr(transformer, "_diffusers_hook", None)
    return ([type(b.attn1.processor) for b in transformer.blocks] + [type(b.attn2.processor) for b in transformer.blocks]
            + [sorted(hooks.hooks) if hooks is not None else []]
            + [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in transformer.modules()])


@pytest.mark.slow
def test_bent_unbent_bent_in_one_process_equal_fresh_processes(tmp_path):
    pipe = attnscope.load_pipeline("tiny", device="cpu")
    pipe.set_progress_bar_config(disable=True)
    stock = _stock_state(pipe)
    rng_before = torch.random.get_rng_state()
    here = {}
    for i, kind in enumerate(["bent", "none", "bent"]):
        run = attnscope.generate(pipe, PROMPT, tmp_path / f"here-{i}", seed=5, bends=BENDS[kind], quiet=True, **SIZE)
        here[i] = _fingerprint(run)
        assert _stock_state(pipe) == stock, f"generation {i} ({kind}) left hooks or processors behind"
    assert torch.equal(torch.random.get_rng_state(), rng_before), "a generation moved the global RNG"
    assert here[0] == here[2] and here[0] != here[1]
    assert _fresh("bent", tmp_path / "fresh-bent") == here[0]
    assert _fresh("none", tmp_path / "fresh-none") == here[1]


def test_a_failed_generation_leaves_the_pipeline_as_it_was(tiny_pipes, tmp_path):
    pipe = tiny_pipes["t2v"]
    stock = _stock_state(pipe)
    first = attnscope.generate(pipe, PROMPT, tmp_path / "a", seed=5, quiet=True, **SIZE)
    bad = [{"target": "attention", "op": "reweight", "word": "giraffe", "scale": 2.0}]
    with pytest.raises(attnscope.AttnscopeError, match="giraffe"):
        attnscope.generate(pipe, PROMPT, tmp_path / "bad", seed=5, bends=bad, quiet=True, **SIZE)
    failing = attnscope.trace(pipe, store=tmp_path / "half", self_prop=True)
    with pytest.raises(attnscope.AttnscopeError, match="self_prop"), failing as tr:  # fails inside the loop
        tr.recorder.keep_self_attention = lambda *args: None  # the self-prop pairing then fails mid-step
        pipe(prompt=tr.prompt(PROMPT), generator=torch.Generator().manual_seed(5), output_type="np", **SIZE)
    assert _stock_state(pipe) == stock
    assert not attnscope.open_run(tmp_path / "half").complete
    again = attnscope.generate(pipe, PROMPT, tmp_path / "b", seed=5, quiet=True, **SIZE)
    assert _fingerprint(again) == _fingerprint(first)
