#!/usr/bin/env bash
# Train the toy Wan on the GPU machine (device tool), check it, and bring it back through $OUT in <= 8 files:
# weights_rest.tar (everything but the transformer), transformer.safetensors, train.log, check.txt, sheet.png.
# Budgets in seconds via env: VAE_S, POOL_S, DIT_S, CHECK_S.
set -uo pipefail
PY=${PY:-python3}
[ -n "${SKIP_PIP:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; W=${WORK:-/tmp/toy}
mkdir -p "$OUT" "$W"
RESUME=()
if [ -f .gpu_ckpt/train_state.json ]; then RESUME=(--resume .gpu_ckpt); fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>&1 | tee "$OUT/train.log"
start=$(date +%s)
$PY -m attnscope.toy.cli train --out "$W" "${RESUME[@]}" --vae-steps 100000 --vae-seconds "${VAE_S:-110}" \
  --pool "${POOL:-30000}" --pool-seconds "${POOL_S:-45}" --dit-steps 100000 --dit-seconds "${DIT_S:-290}" \
  --dit-batch "${DIT_BATCH:-256}" --vae-batch "${VAE_BATCH:-8}" --vae-crop "${VAE_CROP:-256}" \
  --vae-frames "${VAE_FRAMES:-9}" --warmup "${WARMUP:-200}" --workers 12 --log-every "${LOG_EVERY:-50}" ${EXTRA:-} \
  2>&1 | grep --line-buffered -v -i warn | tee -a "$OUT/train.log"
echo "train wall $(( $(date +%s) - start )) s" | tee -a "$OUT/train.log"
tar cf "$OUT/weights_rest.tar" -C "$W" --exclude=transformer/diffusion_pytorch_model.safetensors .
cp "$W/transformer/diffusion_pytorch_model.safetensors" "$OUT/transformer.safetensors"
timeout "${CHECK_S:-75}" $PY -m attnscope.toy.cli check --model "$W" --prompts "${PROMPTS:-50}" \
  --sheet "$OUT/sheet.png" --json "$OUT/check.json" 2>&1 | grep -v -i -E "warn|Loading" | tee "$OUT/check.txt"
echo "total wall $(( $(date +%s) - start )) s"
ls -la "$OUT"
