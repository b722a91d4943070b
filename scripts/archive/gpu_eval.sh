#!/usr/bin/env bash
# Seventh session, one H200: the eval's scoring on a larger held-out split (90 prompts, seed 1) than the CPU's 30,
# with self-prop captured: scripts/eval_variants.py generates the runs (bf16) and scores raw, self-prop and
# variants of it. Its output is docs/eval/variants_gpu_seed1.json.
# Wheels: av in .whl_av, installed by an earlier call into /tmp/site_av (the tree and all wheels together pass
# the device's 64 MiB); diffusers, zarr, numcodecs, donfig, google-crc32c, dask, partd, locket, ftfy, wcwidth in
# .whl. (`attnscope eval` itself also needs pydantic there: the CLI imports the sweep commands.)
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:/tmp/site_av:$PWD/src PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 OMP_NUM_THREADS=8
python3 scripts/eval_variants.py "${N:-90}" 1 /tmp/evalruns "$OUT/variants_gpu.json" 2>&1 | grep -v -i "warn\|Loading"
