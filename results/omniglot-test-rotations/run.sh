#!/bin/bash
# Test-time rotation averaging (issue 18) on the validation alphabets: the two committed
# float32 models of omniglot-precision (the omniglot-tuning recipe, seeds 0 and 1), one-pixel
# shift averaging as trained, plus views rotated by +/-R degrees. The evaluation set is untouched.
# Run from the repository root with ONESHOT_DATA_DIR set: bash results/omniglot-test-rotations/run.sh
set -euo pipefail
OUT=results/omniglot-test-rotations
for S in 0 1; do
  for R in 0 5 10 15; do
    "${PYTHON:-python}" -m oneshot.evaluate --model results/omniglot-precision/seed$S/float32/model.keras \
      --dataset omniglot --split background --validation-alphabets 6 --image-size 35 \
      --shifts 1 --rotations $R --episodes 4000 --protocol nway cmc --out $OUT/seed$S-rot$R.json
  done
done
