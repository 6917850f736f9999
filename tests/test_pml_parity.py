"""oneshot's losses against pytorch-metric-learning (PML), value and gradients, without torch.

``tests/fixtures/pml_reference.json`` holds PML's values and gradients (with respect to the
embeddings and to the class weights or proxies) for each of its losses with its default
arguments, on fixed float64 inputs, with its provenance (``benchmarks/pml_reference.py``, PML
and torch versions, seed). Here each loss is computed with the oneshot call that
docs/pytorch-metric-learning.md gives for it, on the same inputs, in float64 with
``tf.GradientTape``; value and gradients must agree within 1e-6.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from oneshot.distances import DotProductSimilarity, LpDistance
from oneshot.losses import (
    ArcFaceLoss,
    CircleLoss,
    ContrastiveLoss,
    CosFaceLoss,
    GeneralizedLiftedStructureLoss,
    LiftedStructureLoss,
    MarginLoss,
    MultiSimilarityLoss,
    NormalizedSoftmaxLoss,
    NPairsLoss,
    NTXentLoss,
    ProxyAnchorLoss,
    ProxyNCALoss,
    SoftTripleLoss,
    SphereFaceLoss,
    SubCenterArcFaceLoss,
    SupConLoss,
    TripletMarginLoss,
)
from oneshot.miners import BatchAllMiner
from oneshot.reducers import PerPartReducer

FIXTURE = Path(__file__).parent / "fixtures" / "pml_reference.json"
TOLERANCE = 1e-6
F64 = "float64"
C = 8
UNIT_L2 = LpDistance(normalize_embeddings=True)  # PML's LpDistance() normalises by default


def all_triplets_as_pairs(labels, embeddings):
    """PML's MarginLoss takes every triplet (a, p, n) and costs its pairs (a, p) and (a, n):
    oneshot's pair tuples ``(a, p, a, n)`` of all the triplets of the batch."""
    a, p, n = BatchAllMiner(margin=None)(UNIT_L2.pairwise(embeddings), labels)
    return a, p, a, n


#: PML loss name -> (the oneshot loss, tuples to pass or None). The docs' table.
MAPPING = {
    "ContrastiveLoss": lambda: ContrastiveLoss(
        0.0, 1.0, squared=False, distance=UNIT_L2, reducer=PerPartReducer(), dtype=F64
    ),
    "TripletMarginLoss": lambda: TripletMarginLoss(0.05, distance=UNIT_L2, dtype=F64),
    "LiftedStructureLoss": lambda: LiftedStructureLoss(1.0, distance=UNIT_L2, dtype=F64),
    "GeneralizedLiftedStructureLoss": lambda: GeneralizedLiftedStructureLoss(
        1.0, distance=UNIT_L2, dtype=F64
    ),
    "MultiSimilarityLoss": lambda: MultiSimilarityLoss(2.0, 50.0, 0.5, dtype=F64),
    "MarginLoss": lambda: MarginLoss(0.2, 1.2, distance=UNIT_L2, dtype=F64),
    # PML's DotProductSimilarity() normalises the embeddings by default
    "NPairsLoss": lambda: NPairsLoss(
        distance=DotProductSimilarity(normalize_embeddings=True), dtype=F64
    ),
    "NTXentLoss": lambda: NTXentLoss(0.07, dtype=F64),
    "SupConLoss": lambda: SupConLoss(0.1, dtype=F64),
    "CircleLoss": lambda: CircleLoss(80.0, 0.4, dtype=F64),
    "NormalizedSoftmaxLoss": lambda: NormalizedSoftmaxLoss(C, 0.05, dtype=F64),
    "CosFaceLoss": lambda: CosFaceLoss(C, 64.0, 0.35, dtype=F64),
    "ArcFaceLoss": lambda: ArcFaceLoss(C, 64.0, math.radians(28.6), dtype=F64),
    "SubCenterArcFaceLoss": lambda: SubCenterArcFaceLoss(C, 3, 64.0, math.radians(28.6), dtype=F64),
    "SphereFaceLoss": lambda: SphereFaceLoss(C, 4, base=0.0, lambda_min=0.0, dtype=F64),
    "ProxyAnchorLoss": lambda: ProxyAnchorLoss(C, 32.0, 0.1, dtype=F64),
    "ProxyNCALoss": lambda: ProxyNCALoss(C, 1.0, dtype=F64),
    "SoftTripleLoss": lambda: SoftTripleLoss(C, 10, 20.0, 0.1, tau=0.0, delta=0.01, dtype=F64),
}
TUPLES = {"MarginLoss": all_triplets_as_pairs}


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(FIXTURE.read_text())


def test_the_fixture_says_where_it_comes_from(reference):
    provenance = reference["provenance"]
    assert provenance["script"] == "benchmarks/pml_reference.py"
    assert provenance["pytorch_metric_learning"].startswith("2.9")
    assert provenance["torch"].startswith("2.13.0")
    assert np.shape(reference["embeddings"]) == (32, 16)
    assert sorted(reference["losses"]) == sorted(MAPPING)  # every mapped loss, no other


def oneshot_value_and_gradients(name: str, reference: dict):
    labels = tf.constant(reference["labels"])
    x = tf.Variable(np.array(reference["embeddings"]))
    entry = reference["losses"][name]
    loss = MAPPING[name]()
    w = None
    with tf.GradientTape() as tape:
        if "weights" in entry:
            w = tf.Variable(np.array(entry["weights"]))
            loss.head.build((None, x.shape[-1]))
            value = tf.reduce_mean(loss.proxy_loss(labels, x, w))
        else:
            indices = TUPLES[name](labels, x) if name in TUPLES else None
            value = tf.reduce_mean(loss.compute(labels, x, indices))
    grads = tape.gradient(value, [x] if w is None else [x, w])
    return float(value), [g.numpy() for g in grads]


@pytest.mark.parametrize("name", sorted(MAPPING))
def test_value_and_gradients_match_pytorch_metric_learning(name, reference):
    value, grads = oneshot_value_and_gradients(name, reference)
    entry = reference["losses"][name]
    assert abs(value - entry["value"]) < TOLERANCE, (value, entry["value"])
    np.testing.assert_allclose(grads[0], entry["grad_embeddings"], rtol=0, atol=TOLERANCE)
    if "weights" in entry:
        np.testing.assert_allclose(grads[1], entry["grad_weights"], rtol=0, atol=TOLERANCE)
