#!/usr/bin/env bash
# Sixth session, one machine of N ≥ 2 H200 GPUs (nvidia-h200-x4 or -x2), run as a daemon by gpu_daemon.sh:
#   A. GPU 0: capture cost after the fewer-passes capture math (1.3B at 480p, 14B at 720p, then a 14B profile);
#      GPUs 1..N-1 meanwhile: `toy check` of the shipped model on a tuning split (seed 7) at several flow shifts,
#      to see whether the sampler, not the weights, makes the duplicate objects.
#   B. the toy denoiser continued, data-parallel under torchrun: on GPUs 1..N-1 as soon as A's checks end when
#      N ≥ 4, else on all GPUs once A is done. DIT_EXTRA seconds over the shipped train_state.json.
#   C. `toy check` of the new model on every GPU: the standard split (seed 0) and the tuning split, shifts 3, 5.
# Results (logs, JSON) gather in $R, the pipeline in $W. BENCH=0 skips A's benchmarks.
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
R=${R:-/tmp/results}; W=${W:-/tmp/toy}; mkdir -p "$R" "$W"
say() { echo "[session $(date +%H:%M:%S)] $*"; }
FROM=src/attnscope/toy/weights
B="python3 -m attnscope.bench.cli"
N=$(nvidia-smi --query-gpu=index --format=csv,noheader | wc -l)
nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader
DIT_S=$(python3 -c "import json; print(json.load(open('$FROM/train_state.json'))['stages']['dit']['seconds'] + ${DIT_EXTRA:-480})")
check() {  # check GPU MODEL SEED PROMPTS NAME [options...]
  gpu=$1 model=$2 seed=$3 n=$4 name=$5; shift 5
  CUDA_VISIBLE_DEVICES=$gpu timeout "${CHECK_T:-240}" python3 -m attnscope.toy.cli check --model "$model" \
    --prompts "$n" --seed "$seed" --quiet --json "$R/$name.json" "$@" > "$R/$name.log" 2>&1
  echo "$name rc $?: $(grep 'colour+shape' "$R/$name.log")"
}
train() {  # train GPUS
  gpus=$1; n=$(echo "$gpus" | tr ',' '\n' | wc -l)
  CUDA_VISIBLE_DEVICES=$gpus python3 -m torch.distributed.run --standalone --nproc_per_node "$n" \
    -m attnscope.toy.cli train --out "$W" --resume "$FROM" --workers 12 --vae-steps 1 --pool "${POOL:-40000}" \
    --pool-seconds "${POOL_S:-75}" --dit-steps 100000 --dit-seconds "$DIT_S" --dit-batch "${DIT_BATCH:-256}" \
    --dit-lr "${DIT_LR:-3e-4}" --warmup "${WARMUP:-100}" --log-every 50 2>&1 | grep --line-buffered -v -i warn \
    > "$R/dit.log"
  say "denoiser done on GPUs $gpus: $(tail -n 2 "$R/dit.log" | tr '\n' ' ')"
}
say "A: $N GPUs; benchmarks on GPU 0, sampler checks on the others"
(if [ "${BENCH:-1}" = 1 ]; then
   export CUDA_VISIBLE_DEVICES=0
   timeout 100 $B capture --config wan2.1-1.3b --repeats 8 --no-naive --json "$R/capture6_1.3b.json" > "$R/bench13.log" 2>&1
   say "capture 1.3b rc $?"
   timeout 360 $B capture --config wan2.1-14b --repeats 3 --no-naive --json "$R/capture6_14b.json" > "$R/bench14.log" 2>&1
   say "capture 14b rc $?"
   OUT=$R timeout 150 python3 scripts/profile_capture.py --config wan2.1-14b > "$R/profile14.log" 2>&1
   say "profile 14b rc $?"
 fi) > "$R/bench.log" 2>&1 &
BENCHJOB=$!
others=$(seq -s, 1 $((N - 1)))
i=0
for opts in "--shift 3" "--shift 5" "--shift 8" "--shift 5 --steps 30"; do
  gpu=$((1 + i % (N - 1))); name="tune_$(echo "$opts" | tr -d ' -')"
  check "$gpu" toy 7 60 "$name" $opts &
  i=$((i + 1))
done
wait $(jobs -p | grep -v "^$BENCHJOB$")
say "A: sampler checks done"; cat "$R"/tune_*.log | grep colour+shape
if [ "$N" -ge 4 ]; then
  train "$others"
  wait $BENCHJOB
else
  wait $BENCHJOB
  train "$(seq -s, 0 $((N - 1)))"
fi
say "A: benchmarks done"; cat "$R/bench.log"; grep -A12 "per CFG" "$R/bench13.log" "$R/bench14.log" | head -40
say "C: checks of the new model"
i=0
for spec in "0 50 new_s3_seed0 --shift 3 --sheet $R/sheet.png" "7 60 new_s3_seed7 --shift 3" \
            "0 50 new_s5_seed0 --shift 5" "7 60 new_s5_seed7 --shift 5"; do
  # shellcheck disable=SC2086
  check $((i % N)) "$W" $spec &
  i=$((i + 1))
done
wait
say "session done"
