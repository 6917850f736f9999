#!/usr/bin/env bash
# The applications of the README's "Your own images" section on real images exported as PNG
# class folders, with committed models. Run from the repository root:
#   bash results/applications/run.sh > results/applications/output.txt
# 1. MNIST: 300 test digits (the first 30 of each class), the committed mnist-triplet model.
# 2. Omniglot: the 20 evaluation alphabets (659 characters, never seen in training), the
#    committed omniglot-best seed-0 model: drawers 1-10 of the first 15 alphabets enrolled;
#    drawers 11-20 of all 20 alphabets are the queries (the last 5 alphabets are unseen classes).
set -euo pipefail
PY=${PYTHON:-.venv/bin/python}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
exec > >(sed -u "s|$W|\$W|g")  # the output names the temporary folder \$W
export TF_CPP_MIN_LOG_LEVEL=3

M=results/mnist-triplet/triplet/model.keras
echo "## MNIST: 300 test digits, $M"
$PY -m oneshot.data --export "$W/digits" --dataset mnist --split test --per-class 30
$PY -m oneshot.index build --model $M --images "$W/digits" --out "$W/digits.npz" --quiet
$PY -m oneshot.index evaluate --index "$W/digits.npz" --top 5
$PY -m oneshot.verify calibrate --model $M --images "$W/digits" --far 0.01 --out "$W/digits.verify.json" --quiet
$PY -m oneshot.cluster --model $M --images "$W/digits" --quiet

O=results/omniglot-best/seed0/batch-hard/model.keras
echo
echo "## Omniglot: the evaluation alphabets, $O"
$PY -m oneshot.data --export "$W/omniglot" --dataset omniglot --split evaluation --image-size 35
$PY - "$W" <<'PYTHON'
"""Enrol drawers 1-10 of the first 15 alphabets; drawers 11-20 of all 20 are the queries."""
import shutil, sys
from pathlib import Path
work = Path(sys.argv[1])
alphabets = sorted(p.name for p in (work / "omniglot").iterdir())
for png in sorted((work / "omniglot").glob("*/*/*.png")):
    alphabet, character = png.parent.parent.name, png.parent.name
    drawer = int(png.stem.split("_")[1])
    known = alphabet not in alphabets[-5:]
    for folder, keep in (("enrolled", known and drawer <= 10), ("queries", drawer > 10)):
        if keep:
            target = work / folder / alphabet / character / png.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(png, target)
PYTHON
$PY -m oneshot.index build --model $O --images "$W/enrolled" --out "$W/enrolled.npz" --quiet
$PY -m oneshot.index evaluate --index "$W/enrolled.npz" --top 5
$PY -m oneshot.identify --model $O --gallery "$W/enrolled.npz" --queries "$W/queries" --far 0.01 --quiet
$PY -m oneshot.novelty --model $O --gallery "$W/enrolled.npz" --queries "$W/queries" --quiet
