"""Pair- and batch-based in-batch losses: lifted structure (and its generalisation),
multi-similarity, margin (with distance-weighted sampling), N-pairs, NT-Xent, SupCon, Circle.

Every value and gradient is checked against a brute-force reference written as explicit Python
loops over anchors and pairs (float64, relative error < 1e-5; gradients by central finite
differences, mined pairs held fixed as the miners' stop-gradient does). Then: hand-worked
cases, per-sample output and Keras reductions, graph mode with an unknown batch size, finite
gradients at zero distance, degenerate batches (exactly 0, zero gradient), bad input,
serialization, the distance-weighted sampler's law and seeding, and one ``fit`` step of each
loss on real MNIST P x K batches. (Saved models load after ``import oneshot``:
tests/test_losses.py.)
"""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from oneshot.data import load_mnist
from oneshot.data.samplers import pk_dataset
from oneshot.distances import CosineSimilarity, DotProductSimilarity, LpDistance
from oneshot.losses import (
    CircleLoss,
    GeneralizedLiftedStructureLoss,
    KerasCircleLoss,
    LiftedStructureLoss,
    MarginLoss,
    MultiSimilarityLoss,
    NPairsLoss,
    NTXentLoss,
    SupConLoss,
)
from oneshot.miners import DistanceWeightedMiner, HardPairMiner, MultiSimilarityMiner
from oneshot.models import build_online
from oneshot.models.networks import conv4
from oneshot.reducers import PerAnchorReducer, SumReducer

F64 = "float64"
RTOL = 1e-5
# Three classes of three, one pair and one singleton (an anchor without positives).
LABELS = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4])


def clustered_batch(seed: int, dim: int = 3, unit: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Float64 embeddings loosely clustered by class, and shuffled labels."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(LABELS)
    centers = rng.normal(size=(labels.max() + 1, dim))
    emb = 0.6 * centers[labels] + 0.5 * rng.normal(size=(len(labels), dim))
    return (emb / np.linalg.norm(emb, axis=1, keepdims=True) if unit else emb), labels


# --- brute force: explicit loops -----------------------------------------------------------------


def euclidean(x: np.ndarray) -> np.ndarray:
    return np.array([[np.sqrt(np.sum((a - b) ** 2)) for b in x] for a in x])


def cosine(x: np.ndarray) -> np.ndarray:
    return np.array([[a @ b / np.linalg.norm(a) / np.linalg.norm(b) for b in x] for a in x])


def positives(labels, a: int) -> list[int]:
    return [j for j in range(len(labels)) if j != a and labels[j] == labels[a]]


def negatives(labels, a: int) -> list[int]:
    return [j for j in range(len(labels)) if labels[j] != labels[a]]


def contrastable(labels, a: int) -> bool:
    return bool(positives(labels, a)) and bool(negatives(labels, a))


def mean_per_sample(terms: list[tuple[int, float]], b: int, nonzero: bool = False) -> np.ndarray:
    """Per-sample values (B,) of (anchor, loss) terms whose batch mean is the mean of the terms
    (of the nonzero ones with ``nonzero``)."""
    out = np.zeros(b)
    for a, value in terms:
        out[a] += value
    count = sum(v > 0 for _, v in terms) if nonzero else len(terms)
    return out * b / max(count, 1)


def ref_lifted(d, labels, margin=1.0):
    """Song et al.'s smooth loss: 1/(2|P|) sum over unordered positive pairs = half the mean over
    ordered ones of max(J, 0)^2."""
    terms = []
    for i, j in itertools.permutations(range(len(labels)), 2):
        if labels[i] != labels[j]:
            continue
        total = sum(np.exp(margin - d[i, k]) for k in negatives(labels, i))
        total += sum(np.exp(margin - d[j, k]) for k in negatives(labels, j))
        terms.append((i, 0.5 * max(np.log(total) + d[i, j], 0.0) ** 2 if total > 0 else 0.0))
    return mean_per_sample(terms, len(labels))


def ref_generalized_lifted(d, labels, margin=1.0):
    terms = []
    for a in range(len(labels)):
        if contrastable(labels, a):
            pos = np.log(sum(np.exp(d[a, p]) for p in positives(labels, a)))
            neg = np.log(sum(np.exp(margin - d[a, n]) for n in negatives(labels, a)))
            terms.append((a, max(pos + neg, 0.0)))
    return mean_per_sample(terms, len(labels))


def ref_multi_similarity(s, labels, pairs, alpha=2.0, beta=50.0, base=0.5):
    """Wang et al.'s loss on the given (mined) positive and negative pairs; ``s`` similarities
    (or, for a distance, ``-d`` with ``base`` read as ``-base``: S - base = base - d)."""
    pos_pairs, neg_pairs = pairs
    terms = []
    for a in range(len(labels)):
        if contrastable(labels, a):
            pos = sum(np.exp(-alpha * (s[a, p] - base)) for i, p in pos_pairs if i == a)
            neg = sum(np.exp(beta * (s[a, n] - base)) for i, n in neg_pairs if i == a)
            terms.append((a, np.log1p(pos) / alpha + np.log1p(neg) / beta))
    return mean_per_sample(terms, len(labels))


def ref_margin(d, labels, pairs, alpha=0.2, beta=1.2):
    """Wu et al.'s margin loss, mean over the nonzero pair losses."""
    pos_pairs, neg_pairs = pairs
    terms = [(i, max(alpha + d[i, j] - beta, 0.0)) for i, j in pos_pairs if contrastable(labels, i)]
    terms += [
        (i, max(alpha - d[i, j] + beta, 0.0)) for i, j in neg_pairs if contrastable(labels, i)
    ]
    return mean_per_sample(terms, len(labels), nonzero=True)


def ref_npairs(s, labels):
    """Sohn's formula on one pair per class (its first two samples in batch order):
    l_i = log(1 + sum_{j != i} exp(s(a_i, p_j) - s(a_i, p_i))), mean over the N anchors."""
    pairs = []
    for c in dict.fromkeys(labels):  # classes in order of first appearance
        members = [j for j in range(len(labels)) if labels[j] == c]
        if len(members) >= 2:
            pairs.append((members[0], members[1]))
    terms = []
    for i, (a, p) in enumerate(pairs):
        others = [q for j, (_, q) in enumerate(pairs) if j != i]
        terms.append((a, np.log1p(sum(np.exp(s[a, q] - s[a, p]) for q in others))))
    return mean_per_sample(terms, len(labels))


def ref_ntxent(s, labels, temperature=0.5):
    terms = []
    for a, p in itertools.permutations(range(len(labels)), 2):
        if labels[a] == labels[p] and contrastable(labels, a):
            num = np.exp(s[a, p] / temperature)
            den = num + sum(np.exp(s[a, n] / temperature) for n in negatives(labels, a))
            terms.append((a, -np.log(num / den)))
    return mean_per_sample(terms, len(labels))


def ref_supcon(s, labels, temperature=0.1):
    terms = []
    for i in range(len(labels)):
        if contrastable(labels, i):
            den = sum(np.exp(s[i, a] / temperature) for a in range(len(labels)) if a != i)
            logs = [np.log(np.exp(s[i, p] / temperature) / den) for p in positives(labels, i)]
            terms.append((i, -sum(logs) / len(logs)))
    return mean_per_sample(terms, len(labels))


def ref_circle(s, labels, gamma=80.0, m=0.4, weights_from=None):
    """Sun et al.'s loss per anchor (0 without a positive or a negative); the weights a_p, a_n
    are computed from ``weights_from`` (default ``s``): a fixed matrix holds them constant."""
    w = s if weights_from is None else weights_from
    out = []
    for i in range(len(labels)):
        pos = sum(
            np.exp(-gamma * max(1 + m - w[i, p], 0) * (s[i, p] - 1 + m))
            for p in positives(labels, i)
        )
        neg = sum(np.exp(gamma * max(w[i, n] + m, 0) * (s[i, n] - m)) for n in negatives(labels, i))
        out.append(np.log1p(pos * neg))
    return np.array(out)


def all_pairs(labels):
    pos, neg = [], []
    for i, j in itertools.permutations(range(len(labels)), 2):
        (pos if labels[i] == labels[j] else neg).append((i, j))
    return pos, neg


def ms_mined_pairs(s, labels, epsilon=0.1):
    """The paper's mining rules on similarities, written as the paper states it."""
    pos, neg = [], []
    for i in range(len(labels)):
        if not contrastable(labels, i):
            continue
        hardest_pos = min(s[i, p] for p in positives(labels, i))
        hardest_neg = max(s[i, n] for n in negatives(labels, i))
        pos += [(i, p) for p in positives(labels, i) if s[i, p] - epsilon < hardest_neg]
        neg += [(i, n) for n in negatives(labels, i) if s[i, n] + epsilon > hardest_pos]
    return pos, neg


def numeric_gradient(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[idx] = h
        grad[idx] = (f(x + step) - f(x - step)) / (2 * h)
    return grad


def check_against_reference(loss, reference, emb, labels):
    """Per-sample values, loss and gradient of ``loss`` (float64) against ``reference(x)``, the
    per-sample vector (B,) of the brute force (its finite difference for the gradient)."""
    want = reference(emb)
    assert want.sum() > 0  # not vacuous
    want_grad = numeric_gradient(lambda z: reference(z).mean(), emb)
    x = tf.Variable(emb)
    with tf.GradientTape() as tape:
        per_sample = loss.call(labels, x)
        value = tf.reduce_mean(per_sample)
    assert per_sample.dtype == tf.float64 and per_sample.shape == (len(labels),)
    np.testing.assert_allclose(per_sample.numpy(), want, rtol=RTOL, atol=1e-12)
    grad = tape.gradient(value, x).numpy()
    np.testing.assert_allclose(grad, want_grad, rtol=RTOL, atol=1e-8)


# --- values and gradients against the brute force -----------------------------------------------


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_lifted_structure_matches_brute_force(distance):
    emb, labels = clustered_batch(seed=1)
    dist, obj = (euclidean, LpDistance()) if distance == "euclidean" else (
        lambda x: 1 - cosine(x), CosineSimilarity())  # fmt: skip
    loss = LiftedStructureLoss(margin=1.0, distance=obj, dtype=F64)
    check_against_reference(loss, lambda x: ref_lifted(dist(x), labels), emb, labels)
    general = GeneralizedLiftedStructureLoss(margin=1.0, distance=obj, dtype=F64)
    check_against_reference(general, lambda x: ref_generalized_lifted(dist(x), labels), emb, labels)


def test_multi_similarity_matches_brute_force_with_and_without_the_papers_mining():
    emb, labels = clustered_batch(seed=2)
    mined = ms_mined_pairs(cosine(emb), labels)  # held fixed, as the stop-gradient does
    assert mined[0] and mined[1] and len(mined[1]) < len(all_pairs(labels)[1])
    loss = MultiSimilarityLoss(miner=MultiSimilarityMiner(epsilon=0.1), dtype=F64)
    check_against_reference(
        loss, lambda x: ref_multi_similarity(cosine(x), labels, mined), emb, labels
    )
    # Euclidean, every pair, base 1.0: S - base reads base - D, i.e. S = -D with base -1.0.
    loss = MultiSimilarityLoss(alpha=2.0, beta=5.0, base=1.0, distance=LpDistance(), dtype=F64)
    every = all_pairs(labels)
    check_against_reference(
        loss,
        lambda x: ref_multi_similarity(-euclidean(x), labels, every, 2.0, 5.0, -1.0),
        emb,
        labels,
    )


def test_multi_similarity_miner_is_the_papers_mining():
    """``MultiSimilarityMiner`` on 1 - cos keeps exactly the pairs of Wang et al.'s rules."""
    for seed in range(3):
        emb, labels = clustered_batch(seed=seed)
        a1, p, a2, n = MultiSimilarityMiner(0.1)(1 - cosine(emb), labels)
        pos, neg = ms_mined_pairs(cosine(emb), labels, 0.1)
        assert sorted(zip(a1.numpy(), p.numpy(), strict=True)) == sorted(pos)
        assert sorted(zip(a2.numpy(), n.numpy(), strict=True)) == sorted(neg)


def test_margin_loss_matches_brute_force_every_pair_and_hard_pairs():
    emb, labels = clustered_batch(seed=3, unit=True)
    loss = MarginLoss(dtype=F64)
    every = all_pairs(labels)
    check_against_reference(loss, lambda x: ref_margin(euclidean(x), labels, every), emb, labels)
    loss = MarginLoss(alpha=0.3, beta=1.0, miner=HardPairMiner(0.5, 1.2), dtype=F64)
    d0 = euclidean(emb)
    hard = ([(i, j) for i, j in every[0] if d0[i, j] > 0.5],
            [(i, j) for i, j in every[1] if d0[i, j] < 1.2])  # fmt: skip
    check_against_reference(
        loss, lambda x: ref_margin(euclidean(x), labels, hard, 0.3, 1.0), emb, labels
    )


def test_margin_loss_with_distance_weighted_negatives_matches_brute_force():
    emb, labels = clustered_batch(seed=4, dim=8, unit=True)
    miner = DistanceWeightedMiner(embedding_dim=8, seed=3)
    loss = MarginLoss(miner=miner, dtype=F64)
    # The pairs the loss will mine: the same seed, the same first draw.
    a1, p, a2, n = DistanceWeightedMiner(embedding_dim=8, seed=3)(euclidean(emb), labels)
    pairs = (list(zip(a1.numpy(), p.numpy(), strict=True)),
             list(zip(a2.numpy(), n.numpy(), strict=True)))  # fmt: skip
    check_against_reference(loss, lambda x: ref_margin(euclidean(x), labels, pairs), emb, labels)


def test_npairs_ntxent_supcon_match_brute_force():
    emb, labels = clustered_batch(seed=5)
    dot = lambda x: x @ x.T  # noqa: E731
    check_against_reference(
        NPairsLoss(dtype=F64), lambda x: ref_npairs(dot(x), labels), emb, labels
    )
    check_against_reference(
        NTXentLoss(dtype=F64), lambda x: ref_ntxent(cosine(x), labels), emb, labels
    )
    check_against_reference(
        NTXentLoss(0.2, distance=LpDistance(), dtype=F64),
        lambda x: ref_ntxent(-euclidean(x), labels, 0.2),
        emb,
        labels,
    )
    check_against_reference(
        SupConLoss(dtype=F64), lambda x: ref_supcon(cosine(x), labels), emb, labels
    )


def test_circle_holds_its_weights_constant_as_the_paper():
    """``CircleLoss``: per-sample values are Sun et al.'s formula (cosine similarities, the
    embeddings normalised by the distance), its gradient the formula's with a_p and a_n held
    at their current values; the mean is over the anchors with a loss (here all but the
    singleton)."""
    emb, labels = clustered_batch(seed=6, dim=4)
    s0 = cosine(emb)
    want = ref_circle(s0, labels)
    assert (want == 0).sum() == 1  # the singleton
    x = tf.Variable(emb)
    with tf.GradientTape() as tape:
        value = CircleLoss(dtype=F64)(labels, x)
    assert float(value) == pytest.approx(want.sum() / (want > 0).sum(), rel=RTOL)
    frozen = numeric_gradient(
        lambda z: ref_circle(cosine(z), labels, weights_from=s0).sum() / (want > 0).sum(), emb
    )
    np.testing.assert_allclose(tape.gradient(value, x).numpy(), frozen, rtol=RTOL, atol=1e-8)
    through = numeric_gradient(lambda z: ref_circle(cosine(z), labels).sum() / 11, emb)
    assert np.abs(frozen - through).max() > 1e-3  # the two definitions do differ


def test_keras_circle_matches_the_paper_and_differentiates_through_the_weights():
    """``KerasCircleLoss`` is ``keras.losses.Circle``: per-sample values are Sun et al.'s formula
    on unit-norm embeddings; its gradient is the exact derivative of that formula (the weights
    a_p, a_n included); ``sum_over_batch_size`` averages the anchors with a loss (Keras masks
    the zeros: here the singleton)."""
    assert KerasCircleLoss is keras.losses.Circle
    emb, labels = clustered_batch(seed=6, dim=4, unit=True)
    loss = KerasCircleLoss(dtype=F64)
    want = ref_circle(cosine(emb), labels)
    assert (want == 0).sum() == 1  # the singleton
    x = tf.Variable(emb)
    with tf.GradientTape() as tape:
        value = loss(labels, x)
    np.testing.assert_allclose(loss.call(labels, emb).numpy(), want, rtol=RTOL, atol=1e-12)
    assert float(value) == pytest.approx(want.sum() / (want > 0).sum(), rel=RTOL)
    # Keras reads x . y as the cosine (no normalisation inside): differentiate x . y.
    want_grad = numeric_gradient(
        lambda z: ref_circle(z @ z.T, labels).sum() / (want > 0).sum(), emb
    )
    np.testing.assert_allclose(tape.gradient(value, x).numpy(), want_grad, rtol=RTOL, atol=1e-8)
    weights = np.random.default_rng(0).uniform(0, 2, len(labels))
    weighted = float(loss(labels, emb, sample_weight=weights))
    assert weighted == pytest.approx((weights * want).sum() / (want > 0).sum(), rel=1e-10)
    none = KerasCircleLoss(reduction="none", dtype=F64)(labels, emb)
    np.testing.assert_allclose(none.numpy(), want, rtol=RTOL)


# --- hand-worked cases ---------------------------------------------------------------------------


def test_hand_worked_lifted_npairs_and_margin():
    """Points 0, 1, 3 on a line, labels 0, 0, 1, Euclidean.

    Lifted (margin 1): the positive pair (0, 1) has negatives 3 (at 3 from 0, at 2 from 1):
    J = log(e^(1-3) + e^(1-2)) + 1 = log(e^-2 + e^-1) + 1 = 0.6867; both orders give the same
    J, so the loss is J^2 / 2 = 0.2358.

    Margin (alpha 0.2, beta 1.2): positive pairs at 1: max(0.2 + 1 - 1.2, 0) = 0; negative
    pairs (0, 3) at 3: 0; (1, 3) at 2: 0; anchor 3 has no positive: its pairs do not count.
    Loss 0. With beta 2: positives 0.2 + 1 - 2 < 0; (1, 3): 0.2 - 2 + 2 = 0.2 twice among
    4 pairs, mean over nonzero 0.2.
    """
    emb, labels = np.array([[0.0], [1.0], [3.0]]), [0, 0, 1]
    j = np.log(np.exp(-2.0) + np.exp(-1.0)) + 1.0
    assert float(LiftedStructureLoss(dtype=F64)(labels, emb)) == pytest.approx(j * j / 2)
    assert float(MarginLoss(dtype=F64)(labels, emb)) == 0.0
    per_sample = MarginLoss(beta=2.0, dtype=F64).call(labels, emb).numpy()
    assert per_sample.mean() == pytest.approx(0.2, rel=1e-12)
    np.testing.assert_allclose(per_sample, [0.0, 0.6, 0.0], atol=1e-12)  # anchor 1: 0.2 x 3 / 1


def test_npairs_with_two_per_class_is_sohns_loss_and_ntxent_is_supcon():
    """K = 2: N-pairs is Sohn's formula, anchors 0-3 against the positives 4-7 (N - 1 = 3
    negatives each: the other pairs' positives); and NT-Xent equals SupCon (the anchor's only
    positive is in both denominators)."""
    rng = np.random.default_rng(0)
    emb, labels = rng.normal(size=(8, 5)), np.array([0, 1, 2, 3, 0, 1, 2, 3])
    f, f_plus = emb[:4], emb[4:]
    want = []
    for i in range(4):
        others = [j for j in range(4) if j != i]
        assert len(others) == 3
        want.append(np.log1p(sum(np.exp(f[i] @ f_plus[j] - f[i] @ f_plus[i]) for j in others)))
    per_sample = NPairsLoss(dtype=F64).call(labels, emb).numpy()
    assert float(per_sample.mean()) == pytest.approx(np.mean(want), rel=1e-12)
    np.testing.assert_array_equal(per_sample[4:], 0.0)  # the positives anchor nothing
    ntxent = NTXentLoss(temperature=0.3, dtype=F64).call(labels, emb)
    supcon = SupConLoss(temperature=0.3, dtype=F64).call(labels, emb)
    np.testing.assert_allclose(ntxent.numpy(), supcon.numpy(), rtol=1e-12)


# --- the Keras side ------------------------------------------------------------------------------

LOSSES: list[keras.losses.Loss] = [
    LiftedStructureLoss(dtype=F64),
    LiftedStructureLoss(0.5, miner=HardPairMiner(0.1, 1.0), reducer=PerAnchorReducer(), dtype=F64),
    GeneralizedLiftedStructureLoss(dtype=F64),
    MultiSimilarityLoss(miner=MultiSimilarityMiner(0.1), dtype=F64),
    MultiSimilarityLoss(distance=LpDistance(), base=1.0, dtype=F64),
    MarginLoss(dtype=F64),
    MarginLoss(miner=DistanceWeightedMiner(3, seed=0), dtype=F64),
    NPairsLoss(dtype=F64),
    NTXentLoss(dtype=F64),
    NTXentLoss(0.1, miner=MultiSimilarityMiner(0.1), reducer=SumReducer(), dtype=F64),
    SupConLoss(dtype=F64),
    CircleLoss(dtype=F64),
    CircleLoss(32.0, 0.25, miner=MultiSimilarityMiner(0.1), dtype=F64),
]
IDS = [f"{i}-{type(loss).__name__}" for i, loss in enumerate(LOSSES)]
all_losses = pytest.mark.parametrize("index", range(len(LOSSES)), ids=IDS)
PAIR_LOSSES = [*LOSSES, KerasCircleLoss(dtype=F64)]  # and Keras's Circle
PAIR_IDS = [*IDS, "Circle"]
RANDOM = (6,)  # draws differ between calls: compare values only through a fresh copy


def fresh(loss: keras.losses.Loss, **changes) -> keras.losses.Loss:
    """A new copy (a new sampler state), of the same dtype (Circle's config has none)."""
    return type(loss).from_config({**loss.get_config(), "dtype": loss.dtype, **changes})


def batch_for(index: int) -> tuple[np.ndarray, np.ndarray]:
    return clustered_batch(seed=index, unit=index in RANDOM or index == 5)


@all_losses
def test_per_sample_output_reductions_and_sample_weight(index):
    emb, labels = batch_for(index)
    b = len(labels)
    per_sample = fresh(LOSSES[index]).call(labels, emb).numpy()
    assert per_sample.shape == (b,) and per_sample.sum() > 0
    value = fresh(LOSSES[index])(labels, emb)
    assert value.dtype == tf.float64 and float(value) == pytest.approx(per_sample.mean(), rel=1e-12)
    weights = np.random.default_rng(index).uniform(0, 2, b)
    weighted = float(fresh(LOSSES[index])(labels, emb, sample_weight=weights))
    assert weighted == pytest.approx((weights * per_sample).sum() / b, rel=1e-12)
    none = fresh(LOSSES[index], reduction="none")(labels, emb)
    np.testing.assert_allclose(none.numpy(), per_sample, rtol=1e-12)
    value32 = fresh(LOSSES[index], dtype=None)(labels, emb.astype(np.float32))
    assert value32.dtype == tf.float32 and float(value32) == pytest.approx(float(value), rel=1e-3)


@pytest.mark.parametrize("index", range(len(PAIR_LOSSES)), ids=PAIR_IDS)
def test_graph_mode_with_unknown_batch_size_matches_eager(index):
    emb, labels = batch_for(index)
    graph_loss, eager_loss = fresh(PAIR_LOSSES[index]), fresh(PAIR_LOSSES[index])
    spec = (tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, emb.shape[1]], tf.float64))

    @tf.function(input_signature=spec)
    def graph(y, x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = graph_loss(y, x)
        return value, tape.gradient(value, x)

    for b in (12, 9):  # one trace serves every batch size
        x = tf.constant(emb[:b])
        with tf.GradientTape() as tape:
            tape.watch(x)
            eager = eager_loss(labels[:b], x)
        value, grad = graph(tf.constant(labels[:b], tf.int32), x)
        assert float(value) == pytest.approx(float(eager), rel=1e-10)
        np.testing.assert_allclose(grad.numpy(), tape.gradient(eager, x).numpy(), atol=1e-10)
    assert graph.experimental_get_tracing_count() == 1


serialize = keras.saving.serialize_keras_object


def value_and_gradient(loss, labels, emb) -> tuple[float, tf.Tensor | None]:
    x = tf.Variable(np.asarray(emb, np.float64))
    with tf.GradientTape() as tape:
        value = loss(np.asarray(labels), x)
    return float(value), tape.gradient(value, x)


@pytest.mark.parametrize("index", range(len(PAIR_LOSSES)), ids=PAIR_IDS)
def test_gradients_are_finite_at_zero_distance(index):
    """All embeddings identical, and all zero (cosine of zero vectors included)."""
    labels = np.array([0, 0, 1, 1, 2, 2, 0, 1, 2, 0, 1, 2])
    unit = np.ones((12, 3)) / np.sqrt(3.0)
    loss = PAIR_LOSSES[index]
    distances = [None]
    if not isinstance(loss, (MarginLoss, CircleLoss, keras.losses.Circle)):
        distances = [LpDistance(), CosineSimilarity(), DotProductSimilarity()]
    for distance in distances:
        changes = {} if distance is None else {"distance": serialize(distance)}
        for case, emb in {"identical": unit, "zero": np.zeros((12, 3))}.items():
            if case == "zero" and isinstance(loss, MarginLoss) and loss.miner is not None:
                continue  # not unit-norm: refused (test_bad_shapes_and_non_unit_embeddings...)
            value, grad = value_and_gradient(fresh(loss, **changes), labels, emb)
            assert np.isfinite(value), (distance, case)
            assert grad is not None and np.all(np.isfinite(grad.numpy())), (distance, case)


@pytest.mark.parametrize("index", range(len(PAIR_LOSSES)), ids=PAIR_IDS)
def test_batches_without_positives_give_zero_loss_and_zero_gradient(index):
    """All labels distinct: no anchor has a positive. The loss is exactly 0 and the gradient
    exists and is all zeros (the rule of the triplet losses)."""
    rng = np.random.default_rng(index)
    emb = rng.normal(size=(6, 3))
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    value, grad = value_and_gradient(fresh(PAIR_LOSSES[index]), list(range(6)), emb)
    assert value == 0.0
    assert grad is not None, "the gradient is None, not zeros"
    np.testing.assert_array_equal(grad.numpy(), np.zeros_like(emb))


@pytest.mark.parametrize("index", range(len(LOSSES)), ids=IDS)  # Keras's Circle: its own rules
def test_a_single_class_batch_is_a_clear_error_naming_y_true(index):
    """One class (or one sample): nothing to contrast. Eagerly a ValueError, inside a graph
    (``fit``) an InvalidArgumentError, both naming `y_true` and what to do."""
    rng = np.random.default_rng(index)
    for emb, labels in ((rng.normal(size=(6, 3)), [0] * 6), (rng.normal(size=(1, 3)), [3])):
        emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
        loss = fresh(LOSSES[index])
        with pytest.raises(ValueError, match="`y_true`.*at least two classes.*P >= 2"):
            loss(np.asarray(labels), emb)
        graph = tf.function(lambda y, x, loss=loss: loss(y, x))
        with pytest.raises(tf.errors.InvalidArgumentError, match="`y_true`.*two classes"):
            graph(tf.constant(labels), tf.constant(emb))
    two = fresh(LOSSES[index])(np.array([0, 0, 1, 1]), np.eye(3, dtype=np.float32)[[0, 1, 2, 0]])
    assert np.isfinite(float(two))


@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda: LiftedStructureLoss(margin=-1.0), "margin"),
        (lambda: GeneralizedLiftedStructureLoss(margin=float("nan")), "margin"),
        (lambda: MultiSimilarityLoss(alpha=0.0), "alpha"),
        (lambda: MultiSimilarityLoss(beta=-50.0), "beta"),
        (lambda: MultiSimilarityLoss(base=float("inf")), "base"),
        (lambda: MarginLoss(alpha=-0.2), "alpha"),
        (lambda: MarginLoss(beta=-1.2), "beta"),
        (lambda: MarginLoss(miner=DistanceWeightedMiner(8), distance="cosine"), "distance"),
        (lambda: NTXentLoss(temperature=0.0), "temperature"),
        (lambda: NTXentLoss(temperature=-0.5), "temperature"),
        (lambda: SupConLoss(temperature=-0.1), "temperature"),
        (lambda: NPairsLoss(miner=MultiSimilarityMiner()), "miner"),
        (lambda: NTXentLoss(miner="batch_hard"), "miner"),
        (lambda: DistanceWeightedMiner(1), "embedding_dim"),
        (lambda: DistanceWeightedMiner(8.0), "embedding_dim"),
        (lambda: DistanceWeightedMiner(8, cutoff=-0.5), "cutoff"),
        (lambda: DistanceWeightedMiner(8, nonzero_loss_cutoff=-1), "nonzero_loss_cutoff"),
        (lambda: DistanceWeightedMiner(8, seed=-1), "seed"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(make, argument):
    with pytest.raises(ValueError, match=rf"`{argument}\b"):
        make()


def test_bad_shapes_and_non_unit_embeddings_are_refused():
    emb, labels = clustered_batch(seed=0)
    for loss in LOSSES:
        with pytest.raises(ValueError, match="`y_true`.*`y_pred`"):
            fresh(loss)(labels[:-1], emb)
        with pytest.raises(ValueError, match="`y_pred`"):
            fresh(loss)(labels, emb[:, :, None])
    margin = MarginLoss(miner=DistanceWeightedMiner(embedding_dim=4, seed=0))
    with pytest.raises(ValueError, match="dimension 4"):
        margin(labels, emb / np.linalg.norm(emb, axis=1, keepdims=True))  # dimension 3
    margin = MarginLoss(miner=DistanceWeightedMiner(embedding_dim=3, seed=0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="unit-norm"):
        margin(labels, emb)
    with pytest.raises(tf.errors.InvalidArgumentError, match="at most 2"):
        DistanceWeightedMiner(3)(euclidean(3 * emb), labels)


@pytest.mark.parametrize("index", range(len(PAIR_LOSSES)), ids=PAIR_IDS)
def test_serialize_deserialize_round_trip(index):
    loss = PAIR_LOSSES[index]
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is type(loss) and restored.get_config() == loss.get_config()
    if isinstance(loss, keras.losses.Circle):  # Keras leaves dtype out of its config
        assert restored.dtype == "float32"
        restored = fresh(restored, dtype=F64)
    assert restored.dtype == F64
    emb, labels = batch_for(index)
    assert float(fresh(restored)(labels, emb)) == float(fresh(loss)(labels, emb))


# --- distance-weighted sampling ------------------------------------------------------------------


def dw_probabilities(d, labels, a, n_dim, cutoff=0.5, nonzero_loss_cutoff=1.4):
    """Wu et al.: Pr(n | a) proportional to 1 / q(max(d_an, cutoff)) over the negatives closer
    than nonzero_loss_cutoff (uniform over the negatives if there is none)."""
    neg = negatives(labels, a)
    weights = np.zeros(len(labels))
    for n in neg:
        if d[a, n] < nonzero_loss_cutoff:
            x = max(d[a, n], cutoff)
            weights[n] = 1.0 / (x ** (n_dim - 2) * (1 - x * x / 4) ** ((n_dim - 3) / 2))
    if weights.sum() == 0:
        weights[neg] = 1.0
    return weights / weights.sum()


def test_distance_weighted_miner_pairs_and_law():
    emb, labels = clustered_batch(seed=8, dim=4, unit=True)
    d = euclidean(emb)
    miner = DistanceWeightedMiner(embedding_dim=4, seed=0)
    counts = np.zeros((12, 12))
    for _ in range(300):
        a1, p, a2, n = (t.numpy() for t in miner(d, labels))
        assert np.array_equal(a1, a2) and all(labels[n] != labels[a1])
        want = [(a, q) for a, q in itertools.permutations(range(12), 2)
                if labels[a] == labels[q] and contrastable(labels, a)]  # fmt: skip
        assert list(zip(a1, p, strict=True)) == want  # every positive pair once, row-major
        np.add.at(counts, (a1, n), 1)
    for a in range(12):
        if not contrastable(labels, a):
            continue
        want = dw_probabilities(d, labels, a, 4)
        got = counts[a] / counts[a].sum()
        assert np.all(got[want == 0] == 0), a
        draws = counts[a].sum()
        assert np.all(np.abs(got - want) < 4 * np.sqrt(want * (1 - want) / draws) + 1e-9), a


def test_distance_weighted_miner_is_seeded_and_advances_inside_tf_function():
    emb, labels = clustered_batch(seed=9, dim=4, unit=True)
    d = tf.constant(euclidean(emb))
    first = [DistanceWeightedMiner(4, seed=5)(d, labels)[3].numpy() for _ in range(2)]
    np.testing.assert_array_equal(*first)  # same seed, same draws
    miner = DistanceWeightedMiner(4, seed=5)
    traced = tf.function(lambda x, y: miner(x, y)[3])
    draws = [traced(d, labels).numpy() for _ in range(4)]
    np.testing.assert_array_equal(draws[0], first[0])  # graph = eager for the same state
    assert len({tuple(x) for x in draws}) > 1  # the seed advances from call to call
    assert traced.experimental_get_tracing_count() == 1


def test_distance_weighted_miner_falls_back_to_uniform_when_all_negatives_are_far():
    """Two antipodal classes: every negative at distance 2 > 1.4, so uniform draws."""
    emb = np.array([[1.0, 0.0]] * 3 + [[-1.0, 0.0]] * 3)
    labels = np.array([0, 0, 0, 1, 1, 1])
    miner = DistanceWeightedMiner(embedding_dim=2, seed=1)
    drawn = np.concatenate([miner(euclidean(emb), labels)[3].numpy() for _ in range(100)])
    a = np.tile(np.repeat(np.arange(6), 2), 100)
    assert np.all(labels[drawn] != labels[a])
    assert set(drawn[a < 3]) == {3, 4, 5} and set(drawn[a >= 3]) == {0, 1, 2}


# --- one training step on real data --------------------------------------------------------------

FIT_LOSSES = {
    "lifted": LiftedStructureLoss(),
    "generalized_lifted": GeneralizedLiftedStructureLoss(),
    "multi_similarity": MultiSimilarityLoss(miner=MultiSimilarityMiner(0.1)),
    "margin": MarginLoss(miner=DistanceWeightedMiner(embedding_dim=16, seed=0)),
    "npairs": NPairsLoss(),
    "ntxent": NTXentLoss(),
    "supcon": SupConLoss(),
    "circle": CircleLoss(),
    "keras_circle": KerasCircleLoss(),
}


@pytest.mark.parametrize("name", FIT_LOSSES)
def test_one_fit_step_on_mnist_pk_batches(name, data_dir, mnist_train):
    loss = FIT_LOSSES[name]
    model = build_online(conv4((28, 28, 1), 16, width=8), loss, keras.optimizers.Adam(1e-2))
    before = [w.numpy().copy() for w in model.trainable_weights]
    data = pk_dataset(mnist_train.images, mnist_train.labels, p=4, k=4, seed=0)
    history = model.fit(data, steps_per_epoch=2, epochs=1, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and history.history["loss"][0] > 0
    after = model.trainable_weights
    assert any(not np.allclose(b, w.numpy()) for b, w in zip(before, after, strict=True))


@pytest.fixture(scope="module")
def mnist_train(data_dir):
    return load_mnist("train", data_dir)


@pytest.mark.parametrize("index", range(len(LOSSES)), ids=IDS)
def test_memory_is_quadratic_no_rank_3_tensor_in_the_graph(index):
    """Every intermediate of the traced loss (its miner included) is at most (B, B)."""
    loss = fresh(LOSSES[index], dtype=None)
    fn = tf.function(lambda y, x: loss(y, x))
    graph = fn.get_concrete_function(
        tf.TensorSpec((None,), tf.int32), tf.TensorSpec((None, 3), tf.float32)
    ).graph
    ranks = {(op.type, out.shape.rank) for op in graph.get_operations() for out in op.outputs}
    assert all(rank is not None and rank <= 2 for _, rank in ranks), sorted(ranks, key=str)
