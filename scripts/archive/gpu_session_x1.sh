#!/usr/bin/env bash
# One session on a single H200 (device kind nvidia-h200), run as a daemon by gpu_daemon.sh:
#   1. capture cost at Wan2.1-1.3B size with the process and the thread store writer (bench capture);
#   2. the shipped toy model continued: its VAE decoder retrained on 17-frame clips with the loss before the clamp
#      (the encoder, and so the denoiser's latent space, kept), then more denoiser training on a fresh pool.
# Budgets are extra seconds over what the shipped train_state.json holds: VAE_EXTRA, DIT_EXTRA; POOL_S.
# Results (logs, JSON) gather in $R; the pipeline in $W.
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
R=${R:-/tmp/results}; W=${W:-/tmp/toy}; mkdir -p "$R" "$W"
say() { echo "[session $(date +%H:%M:%S)] $*"; }
FROM=src/attnscope/toy/weights
nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader
if [ "${BENCH:-1}" = 1 ]; then
  for w in process thread; do
    timeout 150 python3 -m attnscope.bench.cli capture --config wan2.1-1.3b --repeats 4 --no-naive --writer $w \
      --json "$R/capture_1.3b_$w.json" >> "$R/bench.log" 2>&1
    say "capture 1.3b $w rc $?" | tee -a "$R/bench.log"
  done
fi
read -r VAE_S DIT_S < <(python3 -c "import json; s = json.load(open('$FROM/train_state.json'))['stages']
print(s['vae']['seconds'] + ${VAE_EXTRA:-220}, s['dit']['seconds'] + ${DIT_EXTRA:-1000})")
say "training: VAE decoder to ${VAE_S} s, denoiser to ${DIT_S} s (totals)"
python3 -m attnscope.toy.cli train --out "$W" --resume "$FROM" --workers 12 --vae-decoder-only \
  --vae-steps 100000 --vae-seconds "$VAE_S" --vae-batch "${VAE_BATCH:-8}" --vae-crop "${VAE_CROP:-128}" \
  --vae-frames 17 --pool "${POOL:-40000}" --pool-seconds "${POOL_S:-90}" --dit-steps 100000 \
  --dit-seconds "$DIT_S" --dit-batch "${DIT_BATCH:-256}" --warmup "${WARMUP:-100}" --log-every 50 2>&1 \
  | grep --line-buffered -v -i warn | tee "$R/train.log"
say "session done"
