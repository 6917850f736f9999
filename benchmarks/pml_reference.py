"""pytorch-metric-learning's loss values and gradients on fixed inputs: the parity fixture.

Writes ``tests/fixtures/pml_reference.json``: for every loss that oneshot maps to a
pytorch-metric-learning (PML) loss (docs/pytorch-metric-learning.md), PML's value with its
default arguments and its gradients with respect to the embeddings and, for the losses with
class weights or proxies, to those weights, on one float64 batch of 32 embeddings of 16
dimensions (8 classes x 4, seed recorded). The fixture holds the inputs themselves and the
provenance (PML and torch versions, this script, the seed), so ``tests/test_pml_parity.py``
checks oneshot against it without torch.

Run it in a separate environment (never in the project's; torch is not a dependency):

    python3 -m venv /work/pmlvenv
    /work/pmlvenv/bin/pip install torch==2.13.0 pytorch-metric-learning==2.9.0
    /work/pmlvenv/bin/python benchmarks/pml_reference.py [--out tests/fixtures/pml_reference.json]

Class weights are stored in oneshot's layout, (C * K, D) with row ``c * K + k`` the k-th centre
of class c; PML's W matrices of shape (D, C * K) are their transpose.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytorch_metric_learning
import torch
from pytorch_metric_learning import losses

SEED = 0
CLASSES, PER_CLASS, DIM = 8, 4, 16
FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "pml_reference.json"

#: name -> (PML loss with its defaults, its class-weight attribute or None, weights per class)
PAIR_AND_TUPLE = {
    "ContrastiveLoss": lambda: losses.ContrastiveLoss(),
    "TripletMarginLoss": lambda: losses.TripletMarginLoss(),
    "LiftedStructureLoss": lambda: losses.LiftedStructureLoss(),
    "GeneralizedLiftedStructureLoss": lambda: losses.GeneralizedLiftedStructureLoss(),
    "MultiSimilarityLoss": lambda: losses.MultiSimilarityLoss(),
    "MarginLoss": lambda: losses.MarginLoss(),
    "NPairsLoss": lambda: losses.NPairsLoss(),
    "NTXentLoss": lambda: losses.NTXentLoss(),
    "SupConLoss": lambda: losses.SupConLoss(),
    "CircleLoss": lambda: losses.CircleLoss(),
}
C, D = CLASSES, DIM
WITH_WEIGHTS = {  # name -> (loss, attribute, centres per class, stored as (D, C*K))
    "NormalizedSoftmaxLoss": (lambda: losses.NormalizedSoftmaxLoss(C, D), "W", 1, True),
    "CosFaceLoss": (lambda: losses.CosFaceLoss(C, D), "W", 1, True),
    "ArcFaceLoss": (lambda: losses.ArcFaceLoss(C, D), "W", 1, True),
    "SubCenterArcFaceLoss": (
        lambda: losses.SubCenterArcFaceLoss(num_classes=C, embedding_size=D),
        "W",
        3,
        True,
    ),
    "SphereFaceLoss": (lambda: losses.SphereFaceLoss(C, D), "W", 1, True),
    "ProxyAnchorLoss": (lambda: losses.ProxyAnchorLoss(C, D), "proxies", 1, False),
    "ProxyNCALoss": (lambda: losses.ProxyNCALoss(C, D), "proxies", 1, False),
    "SoftTripleLoss": (lambda: losses.SoftTripleLoss(C, D), "fc", 10, True),
}


def inputs(seed: int = SEED) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """The embeddings (32, 16), float64 normal; the labels 0..7 repeated 4 times, interleaved
    (sample i has label i % 8); and the generator that then draws the class weights."""
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(CLASSES * PER_CLASS, DIM))
    labels = np.tile(np.arange(CLASSES), PER_CLASS)
    return embeddings, labels, rng


def rounded(values: np.ndarray) -> list:
    """Gradients to 12 significant digits (the test compares to 1e-6); inputs stay exact."""
    return [[float(f"{v:.12g}") for v in row] for row in np.asarray(values)]


def write(record: dict, path: Path) -> None:
    """JSON with one line per input array and per loss entry (readable, small diffs)."""
    lines = ["{"]
    for key in ("provenance", "embeddings", "labels"):
        lines.append(f"  {json.dumps(key)}: {json.dumps(record[key])},")
    lines.append('  "losses": {')
    entries = list(record["losses"].items())
    for i, (name, entry) in enumerate(entries):
        comma = "," if i < len(entries) - 1 else ""
        lines.append(f"    {json.dumps(name)}: {json.dumps(entry, separators=(',', ':'))}{comma}")
    lines += ["  }", "}"]
    path.write_text("\n".join(lines) + "\n")


def value_and_gradients(loss, embeddings, labels, weights=None, attribute=None, transposed=False):
    x = torch.tensor(embeddings, dtype=torch.float64, requires_grad=True)
    if weights is not None:
        w = torch.tensor(weights.T if transposed else weights, dtype=torch.float64)
        getattr(loss, attribute).data = w
        getattr(loss, attribute).grad = None
    value = loss(x, torch.tensor(labels))
    value.backward()
    out = {"value": float(value.detach()), "grad_embeddings": rounded(x.grad.numpy())}
    if weights is not None:
        grad = getattr(loss, attribute).grad.numpy()
        out["weights"] = weights.tolist()
        out["grad_weights"] = rounded(grad.T if transposed else grad)
    return out


def reference(seed: int = SEED) -> dict:
    torch.manual_seed(seed)
    embeddings, labels, rng = inputs(seed)
    results = {}
    for name, make in PAIR_AND_TUPLE.items():
        results[name] = value_and_gradients(make(), embeddings, labels)
    for name, (make, attribute, centers, transposed) in WITH_WEIGHTS.items():
        weights = rng.normal(size=(CLASSES * centers, DIM))
        loss = make().to(torch.float64)
        results[name] = value_and_gradients(
            loss, embeddings, labels, weights, attribute, transposed
        )
    return {
        "provenance": {
            "script": "benchmarks/pml_reference.py",
            "pytorch_metric_learning": pytorch_metric_learning.__version__,
            "torch": torch.__version__,
            "seed": seed,
            "inputs": "embeddings: numpy default_rng(seed).normal(size=(32, 16)); labels: "
            "tile(arange(8), 4); class weights: the same generator's next normal draws, "
            "(C * K, D) per loss in the order of the losses below",
            "arguments": "every PML loss with its defaults (ArcFace margin 28.6 degrees = "
            f"{math.radians(28.6):.6f} rad)",
        },
        "embeddings": embeddings.tolist(),
        "labels": labels.tolist(),
        "losses": results,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=FIXTURE)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    record = reference(args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write(record, args.out)
    for name, entry in record["losses"].items():
        print(f"{name:32s} {entry['value']:.12g}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
