"""Run by tests/test_parallel.py under torchrun: a traced generation with diffusers' Ulysses context parallelism
on the CPU (gloo). diffusers places ranks on accelerators; with none, the count is shimmed to one so the mesh
lands on the CPU — everything else (the sequence split, the all-to-alls, the gather at proj_out) is diffusers'."""

import json
import sys

import torch
import torch.distributed as dist

import attnscope
from attnscope.models.tiny import build_tiny_pipeline

dist.init_process_group("gloo")
torch.accelerator.device_count = lambda: 1
torch.set_num_threads(1)
from attnscope.parallel import enable_context_parallel  # noqa: E402

args = json.loads(sys.argv[1])
pipe = build_tiny_pipeline("t2v")
pipe.set_progress_bar_config(disable=True)
enable_context_parallel(pipe, "ulysses")
run = attnscope.generate(pipe, args["prompt"], args["out"], words=args["words"], seed=1, quiet=True,
                         bends=args.get("bends"), **args["size"])
assert (run is not None) == (dist.get_rank() == 0)
dist.destroy_process_group()
