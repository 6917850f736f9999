#!/usr/bin/env bash
# Reproduce every committed run under results/ (CPU defaults: about 1 hour on 2 cores; then the
# issue-8 best models: about 3 more hours run one after the other).
# Usage: bash results/reproduce.sh   (with ONESHOT_DATA_DIR set when offline)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
for experiment in mnist-triplet mnist-siamese-contrastive mnist-triplet-vs-quadruplet \
    omniglot-triplet-vs-quadruplet omniglot-batch-hard omniglot-semi-hard omniglot-batch-all; do
  "$PY" -m oneshot.train --experiment "$experiment" --out "results/$experiment" --seed 0 --overwrite
done

# Issue 8: the best models (each Omniglot run ~30 min on one core; two run side by side with
# --threads 1 on the 2-core reference machine). Tuning on held-out background alphabets first.
for run in rotated plain; do
  "$PY" -m oneshot.train --experiment omniglot-tuning --runs "$run" --threads 1 --out results/omniglot-tuning --overwrite
done
for seed in 0 1 2; do
  "$PY" -m oneshot.train --experiment omniglot-best --seed "$seed" --threads 1 --out "results/omniglot-best/seed$seed" --overwrite
done
"$PY" -m oneshot.train --experiment omniglot-best-quadruplet --seed 0 --threads 1 --out results/omniglot-best-quadruplet --overwrite
"$PY" -m oneshot.train --experiment mnist-best --seed 0 --out results/mnist-best --overwrite

# Issue 13: the loss-family comparison. Step 1 (about 2.5 core-hours): 19 losses x 3 values on
# 6 held-out background alphabets; the chosen values go into oneshot/experiments/losses.py
# (CHOSEN, checked against these runs by the tests). Step 2: 3 seeds of every loss.
"$PY" -m oneshot.train --experiment omniglot-losses-tuning --threads 1 --out results/omniglot-losses-tuning --overwrite
for seed in 0 1 2; do
  "$PY" -m oneshot.train --experiment omniglot-losses --seed "$seed" --threads 1 --out "results/omniglot-losses/seed$seed" --overwrite
done
"$PY" -m oneshot.compare --seeds results/omniglot-losses/seed0 results/omniglot-losses/seed1 results/omniglot-losses/seed2 \
  --baseline batch-hard --out results/omniglot-losses/comparison.png > results/omniglot-losses/table.md
# Issue 31 (pytorch-metric-learning parity) retrained only the runs whose definition or config
# changed, each with the command recorded in its experiment.json: omniglot-semi-hard (above), the
# 9 contrastive / n-pairs / circle tuning runs (--runs ... --overwrite), then
# --runs contrastive,n-pairs,circle of each seed (n-pairs again after its tuning chose 0.001).

# Issue 17: omniglot-batch-hard on two worker processes (MultiWorkerMirroredStrategy), ~2 minutes.
PYTHON="$PY" bash results/omniglot-batch-hard-multiworker/run.sh --overwrite

# Issue 14: the applications on exported real images with the committed models (a few minutes).
PYTHON="$PY" bash results/applications/run.sh > results/applications/output.txt

# Issue 14: few-class recipes (MNIST digits 0-4 -> one-shot on the test split's 5-9), 3 seeds
# (about 7 minutes of one core per seed; omniglot-init needs results/omniglot-best/seed0 above).
for seed in 0 1 2; do
  "$PY" -m oneshot.train --experiment mnist-few-class --seed "$seed" --threads 1 --out "results/mnist-few-class/seed$seed" --overwrite
done
"$PY" -m oneshot.compare --seeds results/mnist-few-class/seed0 results/mnist-few-class/seed1 results/mnist-few-class/seed2 \
  --baseline readme --out results/mnist-few-class/comparison.png > results/mnist-few-class/table.md

# Issue 18: accuracy round 2, levers on 6 held-out background alphabets (one core per run, two
# side by side). Precision and loss: 2 seeds x 2 runs x ~9 minutes each.
for experiment in omniglot-precision omniglot-loss-lever; do
  for seed in 0 1; do
    "$PY" -m oneshot.train --experiment "$experiment" --seed "$seed" --threads 1 --out "results/$experiment/seed$seed" --overwrite
  done
done
"$PY" -m oneshot.compare --seeds results/omniglot-precision/seed0 results/omniglot-precision/seed1 \
  --baseline float32 --out results/omniglot-precision/comparison.png > results/omniglot-precision/table.md
"$PY" -m oneshot.compare --seeds results/omniglot-loss-lever/seed0 results/omniglot-loss-lever/seed1 \
  --baseline batch-hard --out results/omniglot-loss-lever/comparison.png > results/omniglot-loss-lever/table.md
PYTHON="$PY" bash results/omniglot-test-rotations/run.sh
# The 30-minute frontier (each run ~30 minutes of one core): all four runs on seed 0, the two best on seed 1.
for run in w64-8500 w96-4800 w128-2900 w64-48px-4600; do
  "$PY" -m oneshot.train --experiment omniglot-frontier --seed 0 --runs "$run" --threads 1 --out results/omniglot-frontier/seed0 --overwrite
done
for run in w64-8500 w96-4800; do
  "$PY" -m oneshot.train --experiment omniglot-frontier --seed 1 --runs "$run" --threads 1 --out results/omniglot-frontier/seed1 --overwrite
done
"$PY" -m oneshot.compare --seeds results/omniglot-precision/seed0 results/omniglot-precision/seed1 results/omniglot-frontier/seed0 \
  results/omniglot-frontier/seed1 --baseline float32 --out results/omniglot-frontier/comparison.png > results/omniglot-frontier/table.md
# Batches from one alphabet: the tuned recipe on seeds 0 and 1, the 30-minute one on seed 0.
for seed in 0 1; do
  "$PY" -m oneshot.train --experiment omniglot-alphabet-batches --seed "$seed" --runs within-alphabet --threads 1 --out "results/omniglot-alphabet-batches/seed$seed" --overwrite
done
"$PY" -m oneshot.train --experiment omniglot-alphabet-batches --seed 0 --runs w64-within-alphabet-8500 --threads 1 --out results/omniglot-alphabet-batches/seed0 --overwrite
"$PY" -m oneshot.compare --markdown results/omniglot-precision/seed0/float32 results/omniglot-precision/seed1/float32 \
  results/omniglot-alphabet-batches/seed0/within-alphabet results/omniglot-alphabet-batches/seed1/within-alphabet \
  --out results/omniglot-alphabet-batches/comparison.png > results/omniglot-alphabet-batches/table.md
"$PY" -m oneshot.compare --markdown results/omniglot-frontier/seed0/w64-8500 results/omniglot-alphabet-batches/seed0/w64-within-alphabet-8500 \
  --out results/omniglot-alphabet-batches/comparison-8500.png >> results/omniglot-alphabet-batches/table.md
# The round-2 recipe on the evaluation set (~30 minutes of one core per seed), against omniglot-best.
for seed in 0 1 2; do
  "$PY" -m oneshot.train --experiment omniglot-best-30min --seed "$seed" --threads 1 --out "results/omniglot-best-30min/seed$seed" --overwrite
done
"$PY" -m oneshot.compare --seeds results/omniglot-best/seed0 results/omniglot-best/seed1 results/omniglot-best/seed2 \
  results/omniglot-best-30min/seed0 results/omniglot-best-30min/seed1 results/omniglot-best-30min/seed2 --baseline batch-hard \
  --out results/omniglot-best-30min/comparison.png > results/omniglot-best-30min/table.md

# Cross-batch memory (XBM) on batch-hard triplets: two memory sizes and a one-batch diagnostic on
# the validation alphabets (500 steps each), and multi-similarity with 512, then the chosen size (512) on the evaluation
# alphabets, constant partners and batch_gradient, 3 seeds of 1,000 steps, against
# omniglot-losses's batch-hard runs (above).
"$PY" -m oneshot.train --experiment omniglot-xbm-tuning --threads 1 --out results/omniglot-xbm-tuning --overwrite
"$PY" -m oneshot.compare --markdown results/omniglot-losses-tuning/batch-hard-margin=0.1 results/omniglot-xbm-tuning/batch-hard-xbm-128 \
  results/omniglot-xbm-tuning/batch-hard-xbm-512 results/omniglot-xbm-tuning/batch-hard-xbm-2048 --out results/omniglot-xbm-tuning/comparison-batch-hard.png \
  > results/omniglot-xbm-tuning/table.md
echo >> results/omniglot-xbm-tuning/table.md
"$PY" -m oneshot.compare --markdown results/omniglot-losses-tuning/multi-similarity-beta=25 results/omniglot-xbm-tuning/multi-similarity-xbm-512 \
  results/omniglot-xbm-tuning/multi-similarity-xbm-512-batch-gradient --out results/omniglot-xbm-tuning/comparison-multi-similarity.png \
  >> results/omniglot-xbm-tuning/table.md
for seed in 0 1 2; do
  "$PY" -m oneshot.train --experiment omniglot-xbm --seed "$seed" --threads 1 --out "results/omniglot-xbm/seed$seed" --overwrite
done
"$PY" -m oneshot.compare --seeds results/omniglot-losses/seed0 results/omniglot-losses/seed1 results/omniglot-losses/seed2 \
  results/omniglot-xbm/seed0 results/omniglot-xbm/seed1 results/omniglot-xbm/seed2 --baseline batch-hard \
  --out results/omniglot-xbm/comparison.png > results/omniglot-xbm/table.md
