#!/bin/bash
# omniglot-batch-hard on two worker processes of this machine (MultiWorkerMirroredStrategy),
# interrupted after step 700 (both workers killed: kill -9) and resumed. From the repository root:
#   bash results/omniglot-batch-hard-multiworker/run.sh --overwrite  # train from scratch
#   bash results/omniglot-batch-hard-multiworker/run.sh --resume     # continue an interrupted run
# (PYTHON=.venv/bin/python to choose the interpreter; ONESHOT_DATA_DIR when offline)
# Each worker prints "worker N: batch-hard weights <fingerprint>": equal on both, and the
# uninterrupted run and the interrupted-and-resumed one both ended with b5f7948d94050f69.
set -euo pipefail
extra=${1:-}
PY=${PYTHON:-python}
pids=()
for i in 0 1; do
  TF_CONFIG="{\"cluster\": {\"worker\": [\"localhost:25001\", \"localhost:25002\"]}, \"task\": {\"type\": \"worker\", \"index\": $i}}" \
    "$PY" -m oneshot.train --experiment omniglot-batch-hard --strategy multiworker \
      --out results/omniglot-batch-hard-multiworker $extra &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
