#!/usr/bin/env bash
# Second capture-cost run (pinned pool, fp32-output tensor-core logits, rotated order); short on purpose.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
B="python3 -m attnscope.bench.cli"
$B capture --config wan2.1-1.3b --repeats 4 --no-naive --json $OUT/capture2_1.3b.json 2>&1 | grep -v Warning
$B capture --config wan2.1-14b --repeats 1 --no-naive --json $OUT/capture2_14b.json 2>&1 | grep -v Warning
