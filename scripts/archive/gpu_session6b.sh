#!/usr/bin/env bash
# Sixth session, second part: the denoiser from gpu_session6.sh ($W) continued on all GPUs for DIT_EXTRA more
# seconds at a lower peak rate, into $W2; then `toy check` of it on the standard and tuning splits.
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
R=${R:-/tmp/results}; W=${W:-/tmp/toy}; W2=${W2:-/tmp/toy2}; mkdir -p "$R" "$W2"
N=$(nvidia-smi --query-gpu=index --format=csv,noheader | wc -l)
S=$(python3 -c "import json; print(json.load(open('$W/train_state.json'))['stages']['dit']['seconds'] + ${DIT_EXTRA:-400})")
python3 -m torch.distributed.run --standalone --nproc_per_node "$N" -m attnscope.toy.cli train --out "$W2" \
  --resume "$W" --workers 12 --vae-steps 1 --pool "${POOL:-40000}" --pool-seconds "${POOL_S:-60}" \
  --dit-steps 100000 --dit-seconds "$S" --dit-batch 256 --dit-lr "${DIT_LR:-2e-4}" --warmup 50 --log-every 50 \
  2>&1 | grep --line-buffered -v -i warn > "$R/dit2.log"
tail -n 3 "$R/dit2.log"
i=0
for spec in "0 50 new2_seed0" "7 60 new2_seed7"; do
  set -- $spec
  CUDA_VISIBLE_DEVICES=$i timeout 200 python3 -m attnscope.toy.cli check --model "$W2" --prompts "$2" --seed "$1" \
    --quiet --json "$R/$3.json" > "$R/$3.log" 2>&1 &
  i=$((i + 1))
done
wait
grep colour+shape "$R"/new2_*.log
