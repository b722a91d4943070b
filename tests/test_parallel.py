"""One generation split over 2 processes by diffusers' context parallelism (Ulysses, gloo on the CPU): the maps
rank 0 stores equal a one-process capture of the same generation, and the video is the same."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import attnscope
from attnscope.models.tiny import build_tiny_pipeline
from attnscope.video import read_mp4

WORKER = Path(__file__).with_name("cp_worker.py")
ARGS = {"prompt": "a red circle moving left and a blue square moving up", "words": ["circle", "blue square"],
        "size": {"num_inference_steps": 2, "num_frames": 9, "height": 64, "width": 128}}


def _torchrun(args: dict) -> subprocess.CompletedProcess:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_addr", "127.0.0.1", "--master_port", str(port), str(WORKER), json.dumps(args)],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_context_parallel_capture_equals_one_process(tmp_path):
    done = _torchrun({**ARGS, "out": str(tmp_path / "cp")})
    assert done.returncode == 0, done.stderr[-4000:]
    parallel = attnscope.open_run(tmp_path / "cp")
    pipe = build_tiny_pipeline("t2v")
    pipe.set_progress_bar_config(disable=True)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = attnscope.generate(pipe, ARGS["prompt"], tmp_path / "one", words=ARGS["words"], seed=1,
                                    quiet=True, **ARGS["size"])
    finally:
        torch.set_num_threads(before)
    assert parallel.complete and parallel.meta["parallel"] == {"world": 2, "ulysses_degree": 2, "ring_degree": 1,
                                                               "uneven": False}
    assert parallel.maps.shape == single.maps.shape
    np.testing.assert_array_equal(read_mp4(parallel.video_path), read_mp4(single.video_path))
    # each rank's maps are the exact maps of its token slice; the all-to-all self-attention may round differently
    # from one process, so the maps agree to the store's fp16 rounding
    np.testing.assert_allclose(np.asarray(parallel.maps.values, np.float32), np.asarray(single.maps.values, np.float32),
                               rtol=2e-3, atol=2e-4)
    assert not (tmp_path / "cp" / "rank1").exists()


def test_bends_that_need_the_whole_video_are_refused(tmp_path):
    bends = [{"target": "attention", "op": "translate", "word": "circle", "dx": 0.25}]
    done = _torchrun({**ARGS, "out": str(tmp_path / "cp"), "bends": bends})
    assert done.returncode != 0 and "context parallelism splits over the ranks" in done.stderr
