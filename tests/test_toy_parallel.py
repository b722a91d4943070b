"""Data-parallel toy training on the CPU (gloo): the same code path torchrun runs on several GPUs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from attnscope.toy.parallel import Parallel
from attnscope.toy.train import STATE_FILE


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    par = Parallel.from_env("cpu")
    a = torch.nn.Parameter(torch.full((3,), float(rank)))
    b = torch.nn.Parameter(torch.zeros(2))
    a.grad = torch.full((3,), float(rank + 1))  # b has no gradient on any process
    par.average_gradients([a, b])
    weights = torch.nn.Parameter(torch.full((2,), 10.0 + rank))
    par.broadcast([weights])
    results[rank] = {"a": a.grad.tolist(), "b": b.grad.tolist(), "weights": weights.data.tolist(),
                     "agree": par.agree(1.5 + rank, torch.device("cpu")),
                     "sum": par.sum(torch.tensor([float(rank)])).tolist(), "main": par.main}
    dist.destroy_process_group()


def test_gradients_are_averaged_weights_broadcast_and_time_agreed():
    world = 2
    results = mp.Manager().dict()
    mp.spawn(_worker, args=(world, _free_port(), results), nprocs=world, join=True)
    for rank in range(world):
        r = results[rank]
        assert r["a"] == [1.5] * 3, "mean of the gradients 1 and 2"
        assert r["b"] == [0.0, 0.0], "a missing gradient counts as zero"
        assert r["weights"] == [10.0, 10.0], "rank 0's weights everywhere"
        assert r["agree"] == 2.5, "the largest elapsed time"
        assert r["sum"] == [1.0]
        assert r["main"] == (rank == 0)


def test_single_process_needs_no_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    par = Parallel.from_env("cpu")
    assert (par.world, par.main) == (1, True)
    p = torch.nn.Parameter(torch.ones(2))
    p.grad = torch.full((2,), 3.0)
    par.average_gradients([p])
    assert p.grad.tolist() == [3.0, 3.0]
    assert par.agree(4.0, torch.device("cpu")) == 4.0
    assert not dist.is_initialized()


def test_torchrun_trains_the_toy_on_two_processes(tmp_path: Path):
    out = tmp_path / "toy"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(_free_port()), "-m", "attnscope.toy.cli", "train", "--out", str(out), "--device", "cpu",
           "--vae-steps", "2", "--vae-batch", "1", "--vae-frames", "5", "--vae-crop", "64", "--pool", "2",
           "--dit-steps", "2", "--dit-batch", "1", "--log-every", "1", "--vae-report", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "data-parallel over 2 processes" in done.stdout
    assert done.stdout.count("dit step 2 loss") == 1, "rank 0 alone logs"
    assert "1 clips encoded per process (2 processes)" in done.stdout, "each process encodes its share"
    state = json.loads((out / STATE_FILE).read_text())
    assert {k: v["steps"] for k, v in state["stages"].items()} == {"vae": 2, "dit": 2}
    assert (out / "transformer" / "diffusion_pytorch_model.safetensors").exists()
