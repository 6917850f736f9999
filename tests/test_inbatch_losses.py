"""In-batch losses (TripletMarginLoss, ContrastiveLoss, QuadrupletLoss and the legacy aliases).

Every value and gradient is checked against a brute-force reference written as explicit Python
loops over the tuples (float64, relative error < 1e-5): the reference mines its tuples from the
distances, computes one loss per tuple, reduces them per sample, and its gradient is a central
finite difference with the tuples (and adaptive margins) held fixed, as the miners'
stop-gradient does. Then: per-sample output and Keras reductions, zero distances, degenerate
batches, hand-worked cases, the previous version's formulas (legacy aliases), bad input,
serialization and one ``fit`` step on real MNIST P x K batches. (Saved models of every loss
load after ``import oneshot``: tests/test_losses.py.)
"""

from __future__ import annotations

import itertools
from functools import partial

import keras
import numpy as np
import pytest
import tensorflow as tf

from oneshot.data import load_mnist
from oneshot.data.samplers import pk_dataset
from oneshot.distances import CosineSimilarity, LpDistance, get_distance
from oneshot.losses import (
    ContrastiveLoss,
    OnlineContrastiveLoss,
    OnlineQuadrupletLoss,
    OnlineTripletLoss,
    QuadrupletLoss,
    TripletMarginLoss,
    active_triplet_fraction,
)
from oneshot.miners import (
    BatchAllMiner,
    BatchHardMiner,
    HardPairMiner,
    MultiSimilarityMiner,
    QuadrupletMarginMiner,
    SemiHardMiner,
)
from oneshot.models import build_online
from oneshot.models.networks import conv4
from oneshot.reducers import (
    MeanNonZeroReducer,
    MeanReducer,
    PerAnchorReducer,
    PerPartReducer,
    SumReducer,
)

F64 = "float64"
RTOL = 1e-5  # the acceptance criterion, in float64
DISTANCES = {
    "euclidean": LpDistance(),
    "squared_euclidean": LpDistance(power=2),
    "l1": LpDistance(p=1),
    "cosine": CosineSimilarity(),
}
REDUCERS = {
    "mean": MeanReducer,
    "mean_nonzero": MeanNonZeroReducer,
    "per_anchor": PerAnchorReducer,
    "sum": SumReducer,
}
# Three classes of three, one pair and one singleton (an anchor without positives).
LABELS = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4])


def clustered_batch(seed: int, dim: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Float64 embeddings loosely clustered by class (distances of order 1) and shuffled labels."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(LABELS)
    centers = rng.normal(size=(labels.max() + 1, dim))
    return 0.6 * centers[labels] + 0.5 * rng.normal(size=(len(labels), dim)), labels


# --- brute-force reference: explicit loops ------------------------------------------------------


def np_dissimilarities(emb: np.ndarray, distance: str) -> np.ndarray:
    """(B, B) dissimilarities from the differences themselves (the losses expand
    |x|^2 - 2 x.y + |y|^2 instead); 1 - cos for the cosine similarity."""
    diff = emb[:, None, :] - emb[None, :, :]
    if distance == "euclidean":
        return np.sqrt(np.sum(diff**2, axis=-1))
    if distance == "squared_euclidean":
        return np.sum(diff**2, axis=-1)
    if distance == "l1":
        return np.sum(np.abs(diff), axis=-1)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    return 1.0 - unit @ unit.T


def positives(labels, a: int) -> list[int]:
    return [j for j in range(len(labels)) if j != a and labels[j] == labels[a]]


def negatives(labels, a: int) -> list[int]:
    return [j for j in range(len(labels)) if labels[j] != labels[a]]


def mine_triplets(d: np.ndarray, labels, miner: str, margin: float) -> list[tuple[int, int, int]]:
    """The (a, p, n) triplets each triplet miner keeps, one loop per rule."""
    triplets = []
    for a in range(len(labels)):
        pos, neg = positives(labels, a), negatives(labels, a)
        if not pos or not neg:
            continue
        if miner == "batch_hard":
            p = max(pos, key=lambda j: d[a, j])
            triplets.append((a, p, min(neg, key=lambda j: d[a, j])))
            continue
        for p in pos:
            if miner == "all":
                triplets += [(a, p, n) for n in neg]
            elif miner == "batch_all":
                triplets += [(a, p, n) for n in neg if d[a, p] - d[a, n] + margin > 0]
            elif miner == "semi_hard":  # TF Addons: closest farther negative, else the farthest
                farther = [n for n in neg if d[a, n] > d[a, p]]
                if farther:
                    triplets.append((a, p, min(farther, key=lambda n: d[a, n])))
                else:
                    triplets.append((a, p, max(neg, key=lambda n: d[a, n])))
            elif miner == "semi_hard_hardest":  # FaceNet window, else the closest negative
                window = [n for n in neg if d[a, p] < d[a, n] < d[a, p] + margin]
                triplets.append((a, p, min(window or neg, key=lambda n: d[a, n])))
            else:
                raise AssertionError(miner)
    return triplets


def mine_pairs(d: np.ndarray, labels, miner: str, pos_margin: float, neg_margin: float, eps: float):
    """Positive pairs and negative pairs each pair miner keeps (every ordered pair i != j)."""
    pos_pairs, neg_pairs = [], []
    for i, j in itertools.permutations(range(len(labels)), 2):
        same = labels[i] == labels[j]
        if miner == "all":
            keep = True
        elif miner == "hard_pairs":
            keep = d[i, j] > pos_margin if same else d[i, j] < neg_margin
        elif miner == "multi_similarity":
            pos, neg = positives(labels, i), negatives(labels, i)
            if not pos or not neg:
                keep = False
            elif same:
                keep = d[i, j] > min(d[i, n] for n in neg) - eps
            else:
                keep = d[i, j] < max(d[i, p] for p in pos) + eps
        else:
            raise AssertionError(miner)
        if keep:
            (pos_pairs if same else neg_pairs).append((i, j))
    return pos_pairs, neg_pairs


def np_adaptive_margins(d: np.ndarray, labels, w1: float, w2: float) -> tuple[float, float]:
    pos, neg = [], []
    for i, j in itertools.permutations(range(len(labels)), 2):
        (pos if labels[i] == labels[j] else neg).append(d[i, j])
    gap = max(np.mean(neg) - np.mean(pos), 0.0) if pos and neg else 0.0
    return w1 * gap, w2 * gap


def mine_quadruplets(d: np.ndarray, labels, alpha1: float, alpha2: float):
    """Per positive pair (a, p): a's closest negative n, and the closest pair (n, n2) of two
    different classes both unlike a's; each kept if it violates its margin."""
    b, triplets, quads = len(labels), [], []
    for a, p in itertools.permutations(range(b), 2):
        if labels[a] != labels[p]:
            continue
        neg = negatives(labels, a)
        if neg:
            n = min(neg, key=lambda k: d[a, k])
            if d[a, p] - d[a, n] + alpha1 > 0:
                triplets.append((a, p, n))
        others = [
            (i, j)
            for i, j in itertools.permutations(range(b), 2)
            if labels[i] != labels[j] and labels[a] not in (labels[i], labels[j])
        ]
        if others:
            i, j = min(others, key=lambda ij: d[ij])
            if d[a, p] - d[i, j] + alpha2 > 0:
                quads.append((a, p, i, j))
    return triplets, quads


def np_reduce(losses: list[float], anchors: list[int], b: int) -> dict[str, np.ndarray]:
    """Per-sample values (B,) of every reducer, each averaging to that reducer's loss."""
    sums, counts = np.zeros(b), np.zeros(b)
    for value, a in zip(losses, anchors, strict=True):
        sums[a] += value
        counts[a] += 1
    nonzero = sum(value > 0 for value in losses)
    return {
        "mean": sums * b / max(len(losses), 1),
        "mean_nonzero": sums * b / max(nonzero, 1),
        "per_anchor": np.array([s / c if c else 0.0 for s, c in zip(sums, counts, strict=True)]),
        "sum": sums * b,
    }


def softplus(x: float) -> float:
    return float(np.log1p(np.exp(x)))


def hinge(x: float) -> float:
    return max(x, 0.0)


def triplet_values(d, triplets, margin, soft):
    return [softplus(d[a, p] - d[a, n]) if soft else hinge(d[a, p] - d[a, n] + margin)
            for a, p, n in triplets]  # fmt: skip


def contrastive_values(d, pos_pairs, neg_pairs, pos_margin, neg_margin):
    return [hinge(d[i, j] - pos_margin) ** 2 for i, j in pos_pairs] + [
        hinge(neg_margin - d[i, j]) ** 2 for i, j in neg_pairs
    ]


def numeric_gradient(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central finite differences (K,) + x.shape of a function returning K values."""
    grad = np.zeros(np.shape(f(x)) + x.shape)
    for idx in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[idx] = h
        grad[(...,) + idx] = (f(x + step) - f(x - step)) / (2 * h)
    return grad


def check_against_reference(loss_class, kwargs, reference, emb, labels, reducers):
    """Per-sample values, loss and gradient of ``loss_class(**kwargs)`` in float64 with each
    named reducer, against ``reference(x)``: {reducer: per-sample vector}, with the tuples
    mined at ``emb`` (the gradient is a finite difference of the reference)."""
    want = reference(emb)
    want_grads = numeric_gradient(
        lambda z: np.array([reference(z)[r].mean() for r in reducers]), emb
    )
    for name, want_grad in zip(reducers, want_grads, strict=True):
        loss = loss_class(**kwargs, reducer=REDUCERS[name](), dtype=F64)
        x = tf.Variable(emb)
        with tf.GradientTape() as tape:
            per_sample = loss.compute(labels, x)
            value = tf.reduce_mean(per_sample)
        assert per_sample.dtype == tf.float64 and per_sample.shape == (len(labels),), name
        np.testing.assert_allclose(
            per_sample.numpy(), want[name], rtol=RTOL, atol=1e-12, err_msg=name
        )
        assert float(value) == pytest.approx(want[name].mean(), rel=RTOL), name
        grad = tape.gradient(value, x)
        assert grad is not None, name
        np.testing.assert_allclose(grad.numpy(), want_grad, rtol=RTOL, atol=1e-8, err_msg=name)


def reducers_for(distance: str, default: str) -> list[str]:
    """Every reducer with the Euclidean distance; the loss's default with the others."""
    return list(REDUCERS) if distance == "euclidean" else [default]


# --- values and gradients against the brute force -----------------------------------------------

TRIPLET_MINERS = {
    "all": (None, False),
    "batch_hard": (BatchHardMiner(), False),
    "batch_hard_soft": (BatchHardMiner(), True),
    "batch_all": (BatchAllMiner(margin=0.3), False),
    "semi_hard": (SemiHardMiner(), False),
    "semi_hard_hardest": (SemiHardMiner(margin=0.3, fallback="hardest"), False),
    "semi_hard_soft": (SemiHardMiner(), True),
}


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("miner", TRIPLET_MINERS)
def test_triplet_margin_loss_matches_brute_force(miner, distance):
    emb, labels = clustered_batch(seed=len(miner) + len(distance))
    margin, (miner_obj, soft) = 0.3, TRIPLET_MINERS[miner]
    triplets = mine_triplets(
        np_dissimilarities(emb, distance), labels, miner.removesuffix("_soft"), margin
    )

    def reference(x):
        values = triplet_values(np_dissimilarities(x, distance), triplets, margin, soft)
        return np_reduce(values, [a for a, _, _ in triplets], len(x))

    assert reference(emb)["mean"].sum() > 0  # not vacuous
    kwargs = dict(margin=margin, soft_margin=soft, distance=DISTANCES[distance], miner=miner_obj)
    reducers = reducers_for(distance, "mean_nonzero")
    check_against_reference(TripletMarginLoss, kwargs, reference, emb, labels, reducers)


PAIR_MINERS = {
    "all": None,
    "hard_pairs": HardPairMiner(pos_margin=0.1, neg_margin=1.0),
    "multi_similarity": MultiSimilarityMiner(epsilon=0.1),
}


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("miner", PAIR_MINERS)
def test_contrastive_loss_matches_brute_force(miner, distance):
    emb, labels = clustered_batch(seed=3 + len(miner) + len(distance))
    pos_margin, neg_margin = 0.1, 1.0
    d0 = np_dissimilarities(emb, distance)
    pos_pairs, neg_pairs = mine_pairs(d0, labels, miner, pos_margin, neg_margin, eps=0.1)
    assert pos_pairs and neg_pairs

    def reference(x):
        d = np_dissimilarities(x, distance)
        values = contrastive_values(d, pos_pairs, neg_pairs, pos_margin, neg_margin)
        return np_reduce(values, [i for i, _ in pos_pairs + neg_pairs], len(x))

    kwargs = dict(pos_margin=pos_margin, neg_margin=neg_margin, distance=DISTANCES[distance])
    kwargs["miner"] = PAIR_MINERS[miner]
    reducers = reducers_for(distance, "mean")
    check_against_reference(ContrastiveLoss, kwargs, reference, emb, labels, reducers)


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("adaptive", [False, True], ids=["fixed", "adaptive"])
def test_quadruplet_loss_matches_brute_force(adaptive, distance):
    emb, labels = clustered_batch(seed=7 + len(distance))
    d0 = np_dissimilarities(emb, distance)
    # The margins are constant for the gradient (stop-gradient), as the tuples are.
    alpha1, alpha2 = np_adaptive_margins(d0, labels, 1.0, 0.5) if adaptive else (0.4, 0.2)
    triplets, quads = mine_quadruplets(d0, labels, alpha1, alpha2)
    assert alpha1 > 0 and triplets and quads

    def reference(x):
        d = np_dissimilarities(x, distance)
        term1 = [hinge(d[a, p] - d[a, n] + alpha1) for a, p, n in triplets]
        term2 = [hinge(d[a, p] - d[n, n2] + alpha2) for a, p, n, n2 in quads]
        one = np_reduce(term1, [t[0] for t in triplets], len(x))
        two = np_reduce(term2, [q[0] for q in quads], len(x))
        return {name: one[name] + two[name] for name in one}  # each term reduced on its own

    kwargs = dict(alpha1=0.4, alpha2=0.2, adaptive_margin=adaptive, distance=DISTANCES[distance])
    reducers = reducers_for(distance, "mean")
    check_against_reference(QuadrupletLoss, kwargs, reference, emb, labels, reducers)


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_active_triplet_fraction_counts_violating_triplets(distance):
    emb, labels = clustered_batch(seed=11)
    d = np_dissimilarities(emb, distance)
    valid = mine_triplets(d, labels, "all", 0.3)
    active = mine_triplets(d, labels, "batch_all", 0.3)
    got = float(active_triplet_fraction(labels, emb, 0.3, DISTANCES[distance]))
    assert 0 < len(active) < len(valid)
    assert got == pytest.approx(len(active) / len(valid), rel=1e-12)


# --- the Keras side: per-sample output, reductions, sample weights, graph mode -----------------


# Every in-batch loss with each of its miners, then the five legacy configurations.
LOSSES: list[keras.losses.Loss] = [
    TripletMarginLoss(dtype=F64),
    TripletMarginLoss(miner=BatchHardMiner(), reducer=MeanReducer(), dtype=F64),
    TripletMarginLoss(miner=BatchAllMiner(0.2), dtype=F64),
    TripletMarginLoss(miner=SemiHardMiner(), reducer=MeanReducer(), dtype=F64),
    TripletMarginLoss(miner=SemiHardMiner(fallback="hardest"), soft_margin=True, dtype=F64),
    ContrastiveLoss(dtype=F64),
    ContrastiveLoss(miner=HardPairMiner(), reducer=PerAnchorReducer(), dtype=F64),
    ContrastiveLoss(miner=MultiSimilarityMiner(), dtype=F64),
    QuadrupletLoss(alpha1=0.4, alpha2=0.2, dtype=F64),
    QuadrupletLoss(adaptive_margin=True, reducer=MeanNonZeroReducer(), dtype=F64),
    OnlineTripletLoss("batch_hard", dtype=F64),
    OnlineTripletLoss("batch_all", dtype=F64),
    OnlineTripletLoss("semi_hard", dtype=F64),
    OnlineQuadrupletLoss(dtype=F64),
    OnlineContrastiveLoss(dtype=F64),
]


def loss_id(loss: keras.losses.Loss) -> str:
    miner = loss.get_config().get("miner")
    return f"{type(loss).__name__}-{miner['class_name'] if isinstance(miner, dict) else miner}"


LOSS_IDS = [f"{i}-{loss_id(loss)}" for i, loss in enumerate(LOSSES)]
all_losses = pytest.mark.parametrize("index", range(len(LOSSES)), ids=LOSS_IDS)


@all_losses
def test_per_sample_output_reductions_and_sample_weight(index):
    loss = LOSSES[index]
    emb, labels = clustered_batch(seed=index)
    b = len(labels)
    per_sample = loss.compute(labels, emb).numpy()
    assert per_sample.shape == (b,) and per_sample.sum() > 0
    np.testing.assert_array_equal(loss.call(labels, emb).numpy(), per_sample)
    value = loss(labels, emb)
    assert value.dtype == tf.float64 and float(value) == pytest.approx(per_sample.mean(), rel=1e-12)
    # sample_weight weighs each anchor's share; "sum_over_batch_size" still divides by B.
    weights = np.random.default_rng(index).uniform(0, 2, b)
    weighted = float(loss(labels, emb, sample_weight=weights))
    assert weighted == pytest.approx((weights * per_sample).sum() / b, rel=1e-12)
    config = loss.get_config()
    none = type(loss).from_config({**config, "reduction": "none"})(labels, emb)
    np.testing.assert_allclose(none.numpy(), per_sample, rtol=1e-12)
    total = float(type(loss).from_config({**config, "reduction": "sum"})(labels, emb))
    assert total == pytest.approx(b * per_sample.mean(), rel=1e-12)
    # (B, 1) labels, and the default float32, give the same values.
    np.testing.assert_allclose(loss.compute(labels[:, None], emb).numpy(), per_sample, rtol=1e-12)
    value32 = type(loss).from_config({**config, "dtype": None})(labels, emb.astype(np.float32))
    assert value32.dtype == tf.float32 and float(value32) == pytest.approx(float(value), rel=1e-4)


# Every combination but batch-hard (which the fit test below runs in graph mode).
GRAPH_MODE = [0, 2, 3, 4, 5, 6, 7, 8, 9]


@pytest.mark.parametrize("index", GRAPH_MODE, ids=[LOSS_IDS[i] for i in GRAPH_MODE])
def test_graph_mode_with_unknown_batch_size_matches_eager(index):
    loss = LOSSES[index]
    emb, labels = clustered_batch(seed=index)
    spec = (tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, emb.shape[1]], tf.float64))

    @tf.function(input_signature=spec)
    def graph(y, x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = loss(y, x)
        return value, tape.gradient(value, x)

    x = tf.constant(emb)
    with tf.GradientTape() as tape:
        tape.watch(x)
        eager = loss(labels, x)
    value, grad = graph(tf.constant(labels, tf.int32), x)
    assert float(value) == pytest.approx(float(eager), rel=1e-12)
    np.testing.assert_allclose(grad.numpy(), tape.gradient(eager, x).numpy(), atol=1e-12)


# --- zero distances and degenerate batches ------------------------------------------------------


def value_and_gradient(loss, labels, emb) -> tuple[float, tf.Tensor | None]:
    x = tf.Variable(np.asarray(emb, np.float64))
    with tf.GradientTape() as tape:
        value = loss(np.asarray(labels), x)
    return float(value), tape.gradient(value, x)


@all_losses
def test_gradients_are_finite_at_zero_distance(index):
    """All embeddings identical, and rows duplicated within and across classes, with every
    distance (the derivative of sqrt at 0 is infinite; safe_sqrt must hide it)."""
    rng = np.random.default_rng(index)
    # Rows 2k and 2k + 1 are duplicates: of one class for k < 3, of two classes for k >= 3.
    labels = np.array([0, 0, 1, 1, 2, 2, 0, 1, 2, 0, 1, 2])
    cases = {
        "all identical": np.ones((12, 3)),
        "duplicate rows": np.repeat(rng.normal(size=(6, 3)), 2, axis=0),
    }
    config = LOSSES[index].get_config()
    for name, distance in DISTANCES.items():
        serialized = keras.saving.serialize_keras_object(distance)
        loss = type(LOSSES[index]).from_config({**config, "distance": serialized})
        for case, emb in cases.items():
            value, grad = value_and_gradient(loss, labels, emb)
            assert np.isfinite(value), (name, case)
            assert grad is not None and np.all(np.isfinite(grad.numpy())), (name, case)


@all_losses
def test_degenerate_batches_give_zero_loss_and_zero_gradient(index):
    """No tuple to learn from: the loss is exactly 0 and the gradient exists and is all zeros.

    Triplet and quadruplet losses (and contrastive with multi-similarity mining, which needs a
    positive and a negative per anchor): one class, all labels distinct, a single sample.
    Contrastive losses still have pairs there; their degenerate batches are those whose every
    pair meets its margin: one class at a single point, and distinct labels 2 apart (margin 1).
    """
    loss = LOSSES[index]
    rng = np.random.default_rng(index)
    if isinstance(loss, ContrastiveLoss) and not isinstance(loss.miner, MultiSimilarityMiner):
        cases = {
            "one class, one point": (np.ones((6, 3)), [0] * 6),
            "far apart": (2 * np.eye(6), range(6)),
        }
    else:
        cases = {
            "one class": (rng.normal(size=(6, 3)), [0] * 6),
            "distinct": (rng.normal(size=(6, 3)), range(6)),
        }
    cases["one sample"] = (rng.normal(size=(1, 3)), [3])
    for case, (emb, labels) in cases.items():
        value, grad = value_and_gradient(loss, list(labels), emb)
        assert value == 0.0, case
        assert grad is not None, f"{case}: the gradient is None, not zeros"
        np.testing.assert_array_equal(grad.numpy(), np.zeros_like(emb), err_msg=case)


# --- hand-worked cases --------------------------------------------------------------------------

SEMI_HARD_EMB = np.array([[0.0], [1.0], [0.5], [-2.0]])
SEMI_HARD_LABELS = np.array([0, 0, 1, 2])


def test_semi_hard_hand_worked():
    """Points 0, 1, 0.5, -2 with labels 0, 0, 1, 2, Euclidean, margin 0.2.

    Positive pairs (0, 1) and (1, 0), both with d_ap = 1. Negatives of 0: 0.5 (at 0.5) and -2
    (at 2); negatives of 1: 0.5 (at 0.5) and -2 (at 3).

    - TF Addons rule (default ``fallback="farthest"``): the closest negative farther than
      d_ap = 1 is -2 for both pairs: max(1 - 2 + 0.2, 0) = 0 and max(1 - 3 + 0.2, 0) = 0.
      Mean 0.0.
    - FaceNet window (``fallback="hardest"``): no negative in (1, 1.2), so the closest negative,
      0.5, for both: max(1 - 0.5 + 0.2, 0) = 0.7 twice. Mean 0.7.
    - Legacy ``OnlineTripletLoss("semi_hard")`` keeps the previous (window) rule: 0.7.
    """
    tf_addons = TripletMarginLoss(0.2, miner=SemiHardMiner(), reducer=MeanReducer(), dtype=F64)
    window = TripletMarginLoss(
        0.2, miner=SemiHardMiner(0.2, fallback="hardest"), reducer=MeanReducer(), dtype=F64
    )
    legacy = OnlineTripletLoss("semi_hard", margin=0.2, dtype=F64)
    assert float(tf_addons(SEMI_HARD_LABELS, SEMI_HARD_EMB)) == 0.0
    assert float(window(SEMI_HARD_LABELS, SEMI_HARD_EMB)) == pytest.approx(0.7, rel=1e-12)
    assert float(legacy(SEMI_HARD_LABELS, SEMI_HARD_EMB)) == pytest.approx(0.7, rel=1e-12)
    # Per sample: anchors 0 and 1 carry 0.7 each, B = 4, so B x 0.7 / 2 each.
    np.testing.assert_allclose(window.compute(SEMI_HARD_LABELS, SEMI_HARD_EMB), [1.4, 1.4, 0, 0])


def test_batch_hard_and_batch_all_hand_worked():
    """Points 0, 1, 1.5, 3 with labels 0, 0, 1, 1, Euclidean, margin 0.2.

    Batch-hard, per anchor max(d_ap - min d_an + 0.2, 0): anchor 0: 1 - 1.5 + 0.2 < 0 -> 0;
    anchor 1: 1 - 0.5 + 0.2 = 0.7; anchor 1.5: 1.5 - 0.5 + 0.2 = 1.2; anchor 3: 1.5 - 2 + 0.2
    < 0 -> 0. Mean 0.475.

    Batch-all (all 8 triplets, mean over the active ones): (0,1,1.5) 0; (0,1,3) 0;
    (1,0,1.5) 0.7; (1,0,3) 0; (1.5,3,1) 1.2; (1.5,3,0) 0.2; (3,1.5,1) 0; (3,1.5,0) 0.
    Active 0.7, 1.2, 0.2: mean 0.7.
    """
    emb, labels = np.array([[0.0], [1.0], [1.5], [3.0]]), [0, 0, 1, 1]
    hard = TripletMarginLoss(0.2, miner=BatchHardMiner(), reducer=MeanReducer(), dtype=F64)
    assert float(hard(labels, emb)) == pytest.approx(0.475, rel=1e-12)
    assert float(TripletMarginLoss(0.2, dtype=F64)(labels, emb)) == pytest.approx(0.7, rel=1e-12)
    assert float(active_triplet_fraction(labels, emb, 0.2)) == pytest.approx(3 / 8)


def test_contrastive_and_quadruplet_hand_worked():
    """Points 0, 0.5, 0.8, 3 with labels 0, 0, 1, 2, Euclidean.

    Contrastive (pos_margin 0, neg_margin 1, every ordered pair, mean over 12 pairs): the
    positive pair (0, 0.5) twice, 0.25 each; negatives inside the margin: (0, 0.8) 0.2^2 = 0.04
    and (0.5, 0.8) 0.7^2 = 0.49, twice each. Sum 2 x (0.25 + 0.04 + 0.49) = 1.56; / 12 = 0.13.

    Quadruplet (alpha1 0.4, alpha2 0.2): positive pairs (0, 0.5) and (0.5, 0) with d_ap = 0.5.
    Term 1: anchor 0's closest negative 0.8 -> 0.5 - 0.8 + 0.4 = 0.1; anchor 0.5's is 0.8 at
    0.3 -> 0.5 - 0.3 + 0.4 = 0.6; mean 0.35. Term 2: the only pair of classes 1 and 2 is
    (0.8, 3) at 2.2 -> 0.5 - 2.2 + 0.2 < 0, nothing kept, 0. Loss 0.35.
    """
    emb, labels = np.array([[0.0], [0.5], [0.8], [3.0]]), [0, 0, 1, 2]
    assert float(ContrastiveLoss(dtype=F64)(labels, emb)) == pytest.approx(0.13, rel=1e-12)
    quadruplet = QuadrupletLoss(alpha1=0.4, alpha2=0.2, dtype=F64)
    assert float(quadruplet(labels, emb)) == pytest.approx(0.35, rel=1e-12)


def test_contrastive_plain_hinges_and_per_part_reduction_hand_worked():
    """The same points, plain hinges (``squared=False``, pytorch-metric-learning's form).

    Positive pairs: (0, 0.5) twice at 0.5 -> 0.5 each. Negative pairs (10 ordered): inside the
    margin (0, 0.8) at 0.2 and (0.5, 0.8) at 0.7, twice each; the other 6 cost 0.
    - one mean over the 12 pairs (``MeanReducer``): (2 x 0.5 + 2 x 0.2 + 2 x 0.7) / 12 = 2.8 / 12;
    - ``PerPartReducer()``: non-zero positives 1.0 / 2 = 0.5, non-zero negatives 1.8 / 4 = 0.45;
      loss 0.95.
    """
    emb, labels = np.array([[0.0], [0.5], [0.8], [3.0]]), [0, 0, 1, 2]
    plain = ContrastiveLoss(squared=False, dtype=F64)
    assert float(plain(labels, emb)) == pytest.approx(2.8 / 12, rel=1e-12)
    pml = ContrastiveLoss(squared=False, reducer=PerPartReducer(), dtype=F64)
    assert float(pml(labels, emb)) == pytest.approx(0.95, rel=1e-12)
    squared_per_part = ContrastiveLoss(reducer=PerPartReducer(), dtype=F64)
    assert float(squared_per_part(labels, emb)) == pytest.approx(0.25 + 1.06 / 4, rel=1e-12)
    with pytest.raises(ValueError, match=r"argument `squared`.*Received: squared='no'"):
        ContrastiveLoss(squared="no")


# --- legacy aliases: the previous version's formulas ---------------------------------------------


def mean_or_zero(values: list[float]) -> float:
    return float(np.mean(values)) if values else 0.0


def old_batch_hard(d, labels, margin, soft=False):
    """Mean over anchors of relu(max_p d_ap - min_n d_an + margin) (or its softplus)."""
    values = []
    for a in range(len(labels)):
        pos, neg = positives(labels, a), negatives(labels, a)
        if pos and neg:
            diff = max(d[a, pos]) - min(d[a, neg])
            values.append(softplus(diff) if soft else hinge(diff + margin))
    return mean_or_zero(values)


def old_batch_all(d, labels, margin):
    """Mean over the active triplets of d_ap - d_an + margin."""
    values = []
    for a in range(len(labels)):
        for p, n in itertools.product(positives(labels, a), negatives(labels, a)):
            if d[a, p] - d[a, n] + margin > 0:
                values.append(d[a, p] - d[a, n] + margin)
    return mean_or_zero(values)


def old_semi_hard(d, labels, margin, soft=False):
    """Mean over positive pairs; negative: closest in (d_ap, d_ap + margin), else closest."""
    values = []
    for a in range(len(labels)):
        neg = negatives(labels, a)
        for p in positives(labels, a) if neg else []:
            window = [n for n in neg if d[a, p] < d[a, n] < d[a, p] + margin]
            diff = d[a, p] - min(d[a, n] for n in window or neg)
            values.append(softplus(diff) if soft else hinge(diff + margin))
    return mean_or_zero(values)


def old_quadruplet(d, labels, margins=None, w=(1.0, 0.5)):
    """mean(term1) + mean(term2) over the violating tuples; adaptive margins unless given."""
    alpha1, alpha2 = margins or np_adaptive_margins(d, labels, *w)
    b, term1, term2 = len(labels), [], []
    for a, p in itertools.permutations(range(b), 2):
        if labels[a] != labels[p]:
            continue
        if neg := negatives(labels, a):
            term1.append(d[a, p] - min(d[a, neg]) + alpha1)
        others = [
            d[i, j]
            for i, j in itertools.permutations(range(b), 2)
            if labels[i] != labels[j] and labels[a] not in (labels[i], labels[j])
        ]
        if others:
            term2.append(d[a, p] - min(others) + alpha2)
    return mean_or_zero([v for v in term1 if v > 0]) + mean_or_zero([v for v in term2 if v > 0])


def old_contrastive(d, labels, miner, margin):
    """Mean over the mined pairs of d^2 (same) or relu(margin - d)^2 (different)."""
    values = []
    for i, j in itertools.permutations(range(len(labels)), 2):
        if labels[i] == labels[j] and (miner == "all" or d[i, j] > 0):
            values.append(d[i, j] ** 2)
        elif labels[i] != labels[j] and (miner == "all" or d[i, j] < margin):
            values.append(hinge(margin - d[i, j]) ** 2)
    return mean_or_zero(values)


LEGACY = {  # the alias, and the previous formula on (dissimilarities, labels)
    "batch_hard": (OnlineTripletLoss("batch_hard", 0.3), partial(old_batch_hard, margin=0.3)),
    "batch_hard_soft": (
        OnlineTripletLoss("batch_hard", 0.3, soft_margin=True),
        partial(old_batch_hard, margin=0.3, soft=True),
    ),
    "batch_all": (OnlineTripletLoss("batch_all", 0.3), partial(old_batch_all, margin=0.3)),
    "semi_hard": (OnlineTripletLoss("semi_hard", 0.3), partial(old_semi_hard, margin=0.3)),
    "semi_hard_soft": (
        OnlineTripletLoss("semi_hard", 0.3, soft_margin=True),
        partial(old_semi_hard, margin=0.3, soft=True),
    ),
    "quadruplet_adaptive": (OnlineQuadrupletLoss(), old_quadruplet),
    "quadruplet_fixed": (
        OnlineQuadrupletLoss(0.4, 0.2, adaptive=False),
        partial(old_quadruplet, margins=(0.4, 0.2)),
    ),
    "contrastive_hard_pairs": (
        OnlineContrastiveLoss("hard_pairs", 1.2),
        partial(old_contrastive, miner="hard_pairs", margin=1.2),
    ),
    "contrastive_all": (
        OnlineContrastiveLoss("all", 1.2),
        partial(old_contrastive, miner="all", margin=1.2),
    ),
}


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("legacy", LEGACY)
def test_legacy_aliases_give_the_previous_values(legacy, distance):
    alias, old = LEGACY[legacy]
    loss = type(alias).from_config({**alias.get_config(), "distance": distance, "dtype": F64})
    emb, labels = clustered_batch(seed=20)
    want = old(np_dissimilarities(emb, distance), labels)
    assert want > 0
    assert float(loss(labels, emb)) == pytest.approx(want, rel=RTOL)


# Configs saved by oneshot 0.1 (its ``get_config``), with the formula each one computed.
BASE = {"reduction": "sum_over_batch_size"}
OLD_CONFIGS = {
    "OnlineTripletLoss": (
        {**BASE, "name": "online_triplet_loss", "distance": "cosine", "miner": "batch_all"}
        | {"margin": 0.3, "soft_margin": False},
        partial(old_batch_all, margin=0.3),
    ),
    "OnlineQuadrupletLoss": (
        {**BASE, "name": "online_quadruplet_loss", "distance": "euclidean", "adaptive": False}
        | {"margin1": 0.4, "margin2": 0.2, "w1": 1.0, "w2": 0.5},
        partial(old_quadruplet, margins=(0.4, 0.2)),
    ),
    "OnlineContrastiveLoss": (
        {**BASE, "name": "online_contrastive_loss", "distance": "squared_euclidean"}
        | {"miner": "hard_pairs", "margin": 1.2},
        partial(old_contrastive, miner="hard_pairs", margin=1.2),
    ),
}


@pytest.mark.parametrize("class_name", OLD_CONFIGS)
def test_configs_saved_by_the_previous_version_still_load(class_name):
    config, old = OLD_CONFIGS[class_name]
    serialized = {"module": None, "class_name": class_name, "config": config}
    loss = keras.saving.deserialize_keras_object(
        serialized | {"registered_name": f"oneshot>{class_name}"}
    )
    assert type(loss).__name__ == class_name
    emb, labels = clustered_batch(seed=30)
    want = old(np_dissimilarities(emb, config["distance"]), labels)
    assert float(loss(labels, emb.astype(np.float32))) == pytest.approx(want, rel=1e-4)
    new_config = loss.get_config()  # the old keys are kept (the distance is now serialized)
    assert {k: new_config[k] for k in config if k != "distance"} == {
        k: v for k, v in config.items() if k != "distance"
    }
    assert get_distance(new_config["distance"]) == DISTANCES[config["distance"]]


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda: TripletMarginLoss(margin=-0.1), "margin"),
        (lambda: TripletMarginLoss(margin=float("nan")), "margin"),
        (lambda: TripletMarginLoss(margin=True), "margin"),
        (lambda: ContrastiveLoss(neg_margin=float("inf")), "neg_margin"),
        (lambda: ContrastiveLoss(neg_margin=-1.0), "neg_margin"),
        (lambda: ContrastiveLoss(pos_margin=-0.5), "pos_margin"),
        (lambda: QuadrupletLoss(alpha1=-1.0), "alpha1"),
        (lambda: QuadrupletLoss(alpha2=-0.5), "alpha2"),
        (lambda: QuadrupletLoss(adaptive_margin=True, w1=-1.0), "w1"),
        (lambda: OnlineTripletLoss(margin=-0.2), "margin"),
        (lambda: OnlineQuadrupletLoss(margin2=-0.2, adaptive=False), "margin2"),
        (lambda: OnlineContrastiveLoss(margin=-1.0), "margin"),
        (lambda: TripletMarginLoss(distance="l3"), "distance"),
        (lambda: TripletMarginLoss(miner="hardest"), "miner"),
        (lambda: TripletMarginLoss(reducer="median"), "reducer"),
        (lambda: ContrastiveLoss(miner="semi_hardest"), "miner"),
        (lambda: OnlineTripletLoss("hardest"), "miner"),
        (lambda: OnlineTripletLoss("batch_all", soft_margin=True), "soft_margin"),
        (lambda: OnlineContrastiveLoss("semi_hard"), "miner"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(make, argument):
    with pytest.raises(ValueError, match=rf"`{argument}\b"):
        make()


def test_numpy_margins_are_accepted():
    assert TripletMarginLoss(margin=np.float32(0.25)).margin == 0.25
    assert QuadrupletLoss(alpha1=np.float64(0.5), alpha2=np.int64(0)).alpha2 == 0.0


def test_quadruplet_loss_refuses_a_miner_other_than_its_own():
    for miner in (BatchHardMiner(), "batch_hard", QuadrupletMarginMiner(alpha1=0.3)):
        with pytest.raises(ValueError, match="`miner`"):
            QuadrupletLoss(miner=miner)
    with pytest.raises(ValueError, match="`miner`"):
        QuadrupletLoss(alpha1=0.4, miner=QuadrupletMarginMiner(alpha1=0.4, adaptive_margin=True))
    own = QuadrupletMarginMiner(alpha1=0.4, alpha2=0.2)
    for same in (own, keras.saving.serialize_keras_object(own)):
        assert QuadrupletLoss(alpha1=0.4, alpha2=0.2, miner=same).miner == own
    assert QuadrupletLoss(miner="quadruplet_margin").miner == QuadrupletMarginMiner()


@all_losses
def test_bad_shapes_raise_value_errors_naming_the_argument(index):
    loss = LOSSES[index]
    emb, labels = clustered_batch(seed=0)
    with pytest.raises(ValueError, match="`y_true`"):
        loss(np.stack([labels, labels], axis=1), emb)  # labels (B, 2)
    with pytest.raises(ValueError, match="`y_pred`"):
        loss(labels, emb[:, :, None])  # embeddings of rank 3
    with pytest.raises(ValueError, match="`y_true`.*`y_pred`"):
        loss(labels[:-1], emb)  # 11 labels for 12 embeddings
    with pytest.raises(ValueError, match="`y_pred`"):
        loss.compute(labels, emb[0])  # a single embedding vector


# --- save / load --------------------------------------------------------------------------------


@all_losses
def test_serialize_deserialize_round_trip(index):
    loss = LOSSES[index]
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()
    assert restored.dtype == "float64"
    assert (restored.distance, restored.miner, restored.reducer) == (
        loss.distance,
        loss.miner,
        loss.reducer,
    )
    emb, labels = clustered_batch(seed=index)
    assert float(restored(labels, emb)) == float(loss(labels, emb))


# --- one training step on real data -------------------------------------------------------------


def test_one_fit_step_on_mnist_pk_batches(data_dir):
    """Batch-hard through ``build_online`` (the other losses run in graph mode above)."""
    mnist = load_mnist("train", data_dir)
    loss = TripletMarginLoss(0.2, miner=BatchHardMiner(), reducer=MeanReducer())
    model = build_online(conv4((28, 28, 1), 16, width=8), loss, keras.optimizers.Adam(1e-2))
    assert model.loss is loss
    before = [w.numpy().copy() for w in model.trainable_weights]
    data = pk_dataset(mnist.images, mnist.labels, p=4, k=4, seed=0)
    history = model.fit(data, steps_per_epoch=1, epochs=1, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and history.history["loss"][0] > 0
    after = model.trainable_weights
    assert any(not np.allclose(b, w.numpy()) for b, w in zip(before, after, strict=True))


def test_a_loss_refuses_a_miner_of_the_wrong_tuples():
    """A pair miner under a triplet loss (and the reverse) is refused at construction, naming
    `miner`, instead of failing later inside the graph."""
    from oneshot.losses import ContrastiveLoss, TripletMarginLoss
    from oneshot.miners import BatchHardMiner, HardPairMiner

    with pytest.raises(ValueError, match="`miner`.*takes triplets.*returns pairs"):
        TripletMarginLoss(miner=HardPairMiner())
    with pytest.raises(ValueError, match="`miner`.*takes pairs.*returns triplets"):
        ContrastiveLoss(miner="batch_hard")
    assert ContrastiveLoss(miner=HardPairMiner()).miner == HardPairMiner()
    assert TripletMarginLoss(miner=BatchHardMiner()).miner == BatchHardMiner()
