#!/usr/bin/env bash
# One session on a 4-GPU H200 machine (device kind nvidia-h200-x4), run as a daemon by gpu_daemon.sh:
#   GPUs 0-1: capture-cost benchmarks (bench capture) and the 1-vs-2-GPU sweep benchmark (once Ray has arrived)
#   GPUs 2-3: the toy VAE, data-parallel (torchrun), trained from scratch
#   then all four GPUs: the toy denoiser, data-parallel, then `toy check` on GPU 0.
# BENCH=0 skips the benchmarks (a dry run on a CPU box).
# GPU 1 times the 14B forward while GPU 0 times the 1.3B one with each store writer; then the sweep on both.
# Results (logs, JSON, check sheet) gather in $R; the pipeline in $W. Budgets (s): VAE_S, POOL_S, DIT_S, CHECK_S
# (0: no check). Ray arrives separately (too large for one call): the sweep benchmark waits for /tmp/site/.ray_ready.
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
R=${R:-/tmp/results}; W=${W:-/tmp/toy}; mkdir -p "$R" "$W"
say() { echo "[session $(date +%H:%M:%S)] $*"; }
train() { n=$1; shift; python3 -m torch.distributed.run --standalone --nproc_per_node "$n" -m attnscope.toy.cli train \
  --out "$W" --workers 12 "$@"; }
B="python3 -m attnscope.bench.cli"
nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader
say "VAE on GPUs 2,3 for ${VAE_S:-300} s; benchmarks on GPUs 0,1"
(CUDA_VISIBLE_DEVICES=2,3 train 2 --vae-steps 100000 --vae-seconds "${VAE_S:-300}" \
   --vae-batch "${VAE_BATCH:-8}" --vae-crop "${VAE_CROP:-128}" --vae-frames "${VAE_FRAMES:-17}" --dit-steps 0 \
   --log-every 25 > "$R/vae.log" 2>&1; echo "vae rc $?" >> "$R/vae.log") &
VAE=$!
([ "${BENCH:-1}" = 1 ] || exit 0
 (CUDA_VISIBLE_DEVICES=1 timeout 260 $B capture --config wan2.1-14b --repeats 2 --no-naive --writer process \
    --json "$R/capture_14b.json" > "$R/bench14.log" 2>&1; say "capture 14b rc $?" >> "$R/bench14.log") &
 export CUDA_VISIBLE_DEVICES=0
 for w in process thread; do
   timeout 130 $B capture --config wan2.1-1.3b --repeats 4 --no-naive --writer $w \
     --json "$R/capture_1.3b_$w.json" >> "$R/bench.log" 2>&1
   say "capture 1.3b $w rc $?" >> "$R/bench.log"
 done
 wait
 while [ ! -f /tmp/site/.ray_ready ]; do sleep 2; done
 CUDA_VISIBLE_DEVICES=0,1 timeout 200 python3 scripts/bench_sweep.py --model toy --workers 1,2 --seeds 4 \
   --json "$R/sweep_toy.json" >> "$R/bench.log" 2>&1
 say "sweep rc $?" >> "$R/bench.log") &
BENCH=$!
wait $VAE; say "VAE done"; tail -n 3 "$R/vae.log"
wait $BENCH; say "benchmarks done"
say "denoiser on 4 GPUs for ${DIT_S:-900} s"
train 4 --resume "$W" --vae-steps 1 --pool "${POOL:-40000}" --pool-seconds "${POOL_S:-60}" \
  --dit-steps 100000 --dit-seconds "${DIT_S:-900}" --dit-batch "${DIT_BATCH:-256}" --dit-lr "${DIT_LR:-5e-4}" \
  --warmup 200 --log-every 50 2>&1 | grep --line-buffered -v -i warn | tee "$R/dit.log"
[ "${CHECK_S:-120}" -gt 0 ] && say "check" && CUDA_VISIBLE_DEVICES=0 timeout "${CHECK_S:-120}" python3 -m attnscope.toy.cli check --model "$W" --prompts 50 \
  --sheet "$R/sheet.png" --json "$R/check.json" 2>&1 | grep -v -i -E "warn|Loading" | tee "$R/check.txt"
say "session done"
