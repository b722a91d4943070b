#!/usr/bin/env bash
# Capture-cost benchmarks on a GPU machine (run through the device tool; wheels carried in .whl/).
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee $OUT/gpu.txt
python3 -c "import torch, diffusers, zarr; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'zarr', zarr.__version__)" | tee -a $OUT/gpu.txt
B="python3 -m attnscope.bench.cli"
$B capture --config wan2.1-1.3b --repeats 3 --json $OUT/capture_1.3b.json 2>&1 | grep -v Warning | tee $OUT/log.txt
$B capture --config wan2.1-14b --repeats 2 --no-naive --json $OUT/capture_14b.json 2>&1 | grep -v Warning | tee -a $OUT/log.txt
$B e2e --model wan2.1-1.3b --steps 20 --repeats 1 --json $OUT/e2e_1.3b.json 2>&1 | grep -v Warning | tee -a $OUT/log.txt
