#!/usr/bin/env bash
# One session on a 2-GPU H200 machine (device kind nvidia-h200-x2), run as a daemon by gpu_daemon.sh:
#   A. GPU 0: the shipped toy VAE retrained whole (encoder too) with the loss before the decoder's clamp, so the
#      encoder can move blue away from the background; GPU 1 meanwhile: capture cost at 14B (720p) and the
#      1.3B end-to-end generation, after the distinct_keys sync fix.
#   B. both GPUs: the 1-vs-2-GPU sweep benchmark on Ray (Ray arrives in a later call: waits for
#      /tmp/site/.ray_ready).
#   C. both GPUs: the denoiser continued on the new latents, data-parallel under torchrun.
# Budgets are extra seconds over the shipped train_state.json: VAE_EXTRA, DIT_EXTRA; POOL_S caps the pool's
# encoding. BENCH=0 skips A's benchmarks and B (a dry run on a CPU box). Results in $R, the pipeline in $W.
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
R=${R:-/tmp/results}; W=${W:-/tmp/toy}; mkdir -p "$R" "$W"
say() { echo "[session $(date +%H:%M:%S)] $*"; }
FROM=src/attnscope/toy/weights
B="python3 -m attnscope.bench.cli"
nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader
read -r VAE_S DIT_S < <(python3 -c "import json; s = json.load(open('$FROM/train_state.json'))['stages']
print(s['vae']['seconds'] + ${VAE_EXTRA:-360}, s['dit']['seconds'] + ${DIT_EXTRA:-600})")
say "A: whole VAE on GPU 0 to ${VAE_S} s (total); benchmarks on GPU 1"
(CUDA_VISIBLE_DEVICES=0 python3 -m attnscope.toy.cli train --out "$W" --resume "$FROM" --workers 12 \
   --vae-steps 100000 --vae-seconds "$VAE_S" --vae-batch "${VAE_BATCH:-8}" --vae-crop "${VAE_CROP:-128}" \
   --vae-frames 17 --dit-steps 1 --log-every 25 > "$R/vae.log" 2>&1; echo "vae rc $?" >> "$R/vae.log") &
VAE=$!
if [ "${BENCH:-1}" = 1 ]; then
  export CUDA_VISIBLE_DEVICES=1
  timeout 280 $B capture --config wan2.1-14b --repeats 2 --no-naive --json "$R/capture_14b.json" > "$R/bench14.log" 2>&1
  say "capture 14b rc $?" | tee -a "$R/bench14.log"
  timeout 150 $B e2e --model wan2.1-1.3b --steps 20 --repeats 1 --json "$R/e2e_1.3b.json" > "$R/e2e.log" 2>&1
  say "e2e 1.3b rc $?" | tee -a "$R/e2e.log"
  unset CUDA_VISIBLE_DEVICES
fi
wait $VAE; say "A: VAE done"; grep -v -i warn "$R/vae.log" | tail -n 12
if [ "${BENCH:-1}" = 1 ]; then
  say "B: waiting for Ray"
  while [ ! -f /tmp/site/.ray_ready ]; do sleep 2; done
  say "B: sweep benchmark on GPUs 0,1"
  CUDA_VISIBLE_DEVICES=0,1 timeout 240 python3 scripts/bench_sweep.py --model toy --workers 1,2 --seeds 4 \
    --json "$R/sweep_toy.json" > "$R/sweep.log" 2>&1
  say "sweep rc $?"; tail -n 5 "$R/sweep.log"
fi
say "C: denoiser on 2 GPUs to ${DIT_S} s (total)"
python3 -m torch.distributed.run --standalone --nproc_per_node 2 -m attnscope.toy.cli train --out "$W" \
  --resume "$W" --workers 12 --vae-steps 1 --pool "${POOL:-40000}" --pool-seconds "${POOL_S:-75}" \
  --dit-steps 100000 --dit-seconds "$DIT_S" --dit-batch "${DIT_BATCH:-256}" --dit-lr "${DIT_LR:-5e-4}" \
  --warmup "${WARMUP:-100}" --log-every 50 2>&1 | grep --line-buffered -v -i warn | tee "$R/dit.log"
say "session done"
