#!/usr/bin/env bash
# Reproduce every committed run under results/ (CPU defaults; about 1 hour on 2 cores).
# Usage: bash results/reproduce.sh   (with ONESHOT_DATA_DIR set when offline)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
for experiment in mnist-triplet mnist-siamese-contrastive mnist-triplet-vs-quadruplet \
    omniglot-triplet-vs-quadruplet omniglot-batch-hard omniglot-semi-hard omniglot-batch-all; do
  "$PY" -m oneshot.train --experiment "$experiment" --out "results/$experiment" --seed 0 --overwrite
done
