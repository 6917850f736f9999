"""Miners against brute-force loops over explicit tuples; hand-worked cases; graph mode;
serialization; offline hard-batch mining (``HardBatchMiner``) on real MNIST images."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from oneshot import miners
from oneshot.distances import CosineSimilarity, LpDistance

SEEDS = [0, 1, 2, 3]
DISTANCES = {"euclidean": LpDistance(), "cosine": CosineSimilarity()}


# ----------------------------------------------------------------------------- helpers
def random_batch(seed: int, distance, size: int = 16, classes: int = 5, dim: int = 4):
    """float64 embeddings with repeated labels (some classes may have one image: no positive)
    and their dissimilarity matrix (smaller = closer), checked to be free of ties per row."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size).astype(np.int32)
    emb = rng.normal(size=(size, dim))
    dist = np.asarray(distance.dissimilarity(distance.pairwise(tf.constant(emb))))
    assert dist.dtype == np.float64
    for row in dist:
        assert len(np.unique(row)) == size  # no ties within an anchor's row
    return labels, dist


def run(miner, dist, labels):
    return miner(tf.constant(dist), tf.constant(labels))


def as_set(*arrays):
    for x in arrays:
        assert x.dtype == tf.int64
    return set(zip(*(np.asarray(x).tolist() for x in arrays), strict=True))


def positives(labels, a):
    return [j for j in range(len(labels)) if j != a and labels[j] == labels[a]]


def negatives(labels, a):
    return [j for j in range(len(labels)) if labels[j] != labels[a]]


def all_triplets(labels):
    for a in range(len(labels)):
        for p in positives(labels, a):
            for n in negatives(labels, a):
                yield a, p, n


def all_pairs(labels, same: bool):
    for i, j in itertools.permutations(range(len(labels)), 2):
        if (labels[i] == labels[j]) == same:
            yield i, j


both_distances = pytest.mark.parametrize("distance", DISTANCES.values(), ids=DISTANCES.keys())
seeds = pytest.mark.parametrize("seed", SEEDS)


# ----------------------------------------------------------------------------- brute force
@seeds
@both_distances
def test_batch_hard_matches_brute_force(seed, distance):
    labels, dist = random_batch(seed, distance)
    expected = set()
    for a in range(len(labels)):
        pos, neg = positives(labels, a), negatives(labels, a)
        if pos and neg:
            p = max(pos, key=lambda j: dist[a, j])
            n = min(neg, key=lambda j: dist[a, j])
            expected.add((a, p, n))
    got = run(miners.BatchHardMiner(), dist, labels)
    assert as_set(*got) == expected
    assert len(got[0]) == len(expected)


@seeds
@both_distances
@pytest.mark.parametrize("margin", [None, 0.05, 0.2, 1.0])
def test_batch_all_lists_exactly_the_valid_or_active_triplets(seed, distance, margin):
    labels, dist = random_batch(seed, distance, size=14)
    expected = {
        (a, p, n)
        for a, p, n in all_triplets(labels)
        if margin is None or dist[a, n] < dist[a, p] + margin
    }
    got = run(miners.BatchAllMiner(margin), dist, labels)
    assert as_set(*got) == expected
    assert len(got[0]) == len(expected)  # no duplicates


@seeds
@both_distances
@pytest.mark.parametrize("fallback", ["farthest", "hardest"])
def test_semi_hard_matches_brute_force(seed, distance, fallback):
    margin = 0.3
    labels, dist = random_batch(seed, distance, size=18)
    expected = set()
    for a, p in all_pairs(labels, same=True):
        neg = negatives(labels, a)
        if not neg:
            continue
        if fallback == "farthest":  # TF Addons: closest negative beyond d_ap, else farthest
            beyond = [n for n in neg if dist[a, n] > dist[a, p]]
            n = (
                min(beyond, key=lambda k: dist[a, k])
                if beyond
                else max(neg, key=lambda k: dist[a, k])
            )
        else:  # previous oneshot rule: closest in (d_ap, d_ap + margin), else closest
            window = [n for n in neg if dist[a, p] < dist[a, n] < dist[a, p] + margin]
            n = min(window or neg, key=lambda k: dist[a, k])
        expected.add((a, p, n))
    miner = miners.SemiHardMiner(margin if fallback == "hardest" else None, fallback)
    got = run(miner, dist, labels)
    assert as_set(*got) == expected
    assert len(got[0]) == len(expected)


@seeds
@both_distances
@pytest.mark.parametrize(
    "margins", [(0.0, 1.0), (0.5, 0.8), (None, 0.6), (0.4, None), (None, None)]
)
def test_hard_pairs_match_brute_force(seed, distance, margins):
    pos_margin, neg_margin = margins
    labels, dist = random_batch(seed, distance)
    a1, p, a2, n = run(miners.HardPairMiner(pos_margin, neg_margin), dist, labels)
    assert as_set(a1, p) == {
        (i, j) for i, j in all_pairs(labels, True) if pos_margin is None or dist[i, j] > pos_margin
    }
    assert as_set(a2, n) == {
        (i, j) for i, j in all_pairs(labels, False) if neg_margin is None or dist[i, j] < neg_margin
    }


@seeds
@both_distances
@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.5])
def test_multi_similarity_matches_brute_force(seed, distance, epsilon):
    labels, dist = random_batch(seed, distance, size=18)
    exp_pos, exp_neg = set(), set()
    for a in range(len(labels)):
        pos, neg = positives(labels, a), negatives(labels, a)
        if not pos or not neg:
            continue
        hardest_pos = max(dist[a, j] for j in pos)
        hardest_neg = min(dist[a, j] for j in neg)
        exp_pos |= {(a, j) for j in pos if dist[a, j] > hardest_neg - epsilon}
        exp_neg |= {(a, j) for j in neg if dist[a, j] < hardest_pos + epsilon}
    a1, p, a2, n = run(miners.MultiSimilarityMiner(epsilon), dist, labels)
    assert as_set(a1, p) == exp_pos
    assert as_set(a2, n) == exp_neg
    assert len(a1) == len(exp_pos) and len(a2) == len(exp_neg)


def brute_force_margins(dist, labels, w1, w2):
    pos = [dist[i, j] for i, j in all_pairs(labels, True)]
    neg = [dist[i, j] for i, j in all_pairs(labels, False)]
    gap = max(np.mean(neg) - np.mean(pos), 0.0) if pos and neg else 0.0
    return w1 * gap, w2 * gap


@seeds
@both_distances
@pytest.mark.parametrize("adaptive", [False, True])
def test_quadruplet_margin_matches_brute_force(seed, distance, adaptive):
    labels, dist = random_batch(seed, distance, size=16, classes=5)
    miner = miners.QuadrupletMarginMiner(0.3, 0.15, adaptive_margin=adaptive, w1=1.0, w2=0.5)
    alpha1, alpha2 = brute_force_margins(dist, labels, 1.0, 0.5) if adaptive else (0.3, 0.15)
    exp1, exp2 = set(), set()
    b = len(labels)
    for a, p in all_pairs(labels, same=True):
        neg = negatives(labels, a)
        if neg:
            n = min(neg, key=lambda k: dist[a, k])
            if dist[a, p] - dist[a, n] + alpha1 > 0:
                exp1.add((a, p, n))
        # (n, n2): the closest pair of different classes, both different from a's.
        pairs = [
            (k, m)
            for k, m in itertools.permutations(range(b), 2)
            if labels[k] != labels[m] and labels[a] not in (labels[k], labels[m])
        ]
        if pairs:
            k, m = min(pairs, key=lambda km: dist[km])
            if dist[a, p] - dist[k, m] + alpha2 > 0:
                exp2.add((a, p, frozenset((k, m))))  # d is symmetric: (k, m) ~ (m, k)
    (a, p, n), (qa, qp, qn, qn2) = run(miner, dist, labels)
    assert as_set(a, p, n) == exp1
    got2 = as_set(qa, qp, qn, qn2)
    for i, _, k, m in got2:
        assert labels[k] != labels[m] and labels[i] not in (labels[k], labels[m])
    assert {(i, j, frozenset((k, m))) for i, j, k, m in got2} == exp2
    assert len(qa) == len(exp2)


@seeds
def test_adaptive_margins_are_mean_gaps(seed):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(4), 4)
    emb = np.eye(4)[labels] + 0.3 * rng.normal(size=(16, 4))  # clustered: mu_n > mu_p
    dist = np.asarray(LpDistance().pairwise(tf.constant(emb)))
    a1, a2 = miners.adaptive_margins(tf.constant(dist), tf.constant(labels), 1.0, 0.5)
    expected = brute_force_margins(dist, labels, 1.0, 0.5)
    assert expected[0] > 0.3
    np.testing.assert_allclose([float(a1), float(a2)], expected, rtol=1e-12)
    # Reversed (positives farther than negatives): clipped to 0.
    a1, a2 = miners.adaptive_margins(tf.constant(dist), tf.constant(np.arange(16) % 4))
    assert float(a1) == 0.0 and float(a2) == 0.0
    # No positives at all: 0.
    a1, _ = miners.adaptive_margins(tf.constant(dist), tf.constant(np.arange(16)))
    assert float(a1) == 0.0


# ----------------------------------------------------------------------------- hand-worked
def line_distances(xs):
    """Exact |x_i - x_j| of 1-D embeddings (float64)."""
    xs = np.asarray(xs, np.float64)
    return np.abs(xs[:, None] - xs[None, :])


def test_semi_hard_rules_differ_hand_worked():
    """Embeddings 0, 1, 0.5, -2 (Euclidean), labels 0, 0, 1, 2, margin 0.2.

    Positive pairs: (0, 1) and (1, 0), d_ap = 1; samples 2 and 3 have no positive.
    Anchor 0's negatives: 2 at 0.5, 3 at 2. Anchor 1's negatives: 2 at 0.5, 3 at 3.

    TF Addons rule ("farthest"): the closest negative with d_an > d_ap = 1 is 3 for both
    anchors (d_an = 2 and 3); hinges max(1 - 2 + 0.2, 0) = 0 and max(1 - 3 + 0.2, 0) = 0,
    mean 0.0.
    Previous rule ("hardest"): no negative in the window (1, 1.2) for either anchor, so the
    closest negative 2 (d_an = 0.5): hinges 1 - 0.5 + 0.2 = 0.7 each, mean 0.7.
    """
    emb = tf.constant([[0.0], [1.0], [0.5], [-2.0]], tf.float64)
    dist = LpDistance().pairwise(emb)
    labels = tf.constant([0, 0, 1, 2])

    def mean_hinge(a, p, n):
        d = dist.numpy()
        return float(np.mean(np.maximum(d[a, p] - d[a, n] + 0.2, 0.0)))

    tfa = miners.SemiHardMiner()(dist, labels)
    assert as_set(*tfa) == {(0, 1, 3), (1, 0, 3)}
    assert mean_hinge(*tfa) == 0.0
    old = miners.SemiHardMiner(0.2, fallback="hardest")(dist, labels)
    assert as_set(*old) == {(0, 1, 2), (1, 0, 2)}
    np.testing.assert_allclose(mean_hinge(*old), 0.7, rtol=1e-12)


def test_batch_hard_and_semi_hard_hand_worked():
    """1-D embeddings 0, 1, 1.5, 3 with labels 0, 0, 1, 1.

    batch-hard: anchor 0 -> (p=1, n=2); 1 -> (0, 2); 2 -> (3, 1); 3 -> (2, 1).
    semi-hard, margin 1, "hardest": pair (0,1) d=1: negatives at 1.5 (in (1, 2)) -> n=2;
    pair (1,0) d=1: negatives at 0.5, 2 -> none in (1, 2) -> closest n=2;
    pair (2,3) d=1.5: negatives at 1.5, 0.5 -> none in (1.5, 2.5) -> closest n=1;
    pair (3,2) d=1.5: negatives at 3, 2 -> n=1 (2 is in (1.5, 2.5)).
    semi-hard "farthest": (0,1) -> 2 (1.5 > 1); (1,0) -> 3 (2 > 1); (2,3): nothing beyond
    1.5 -> farthest negative 0; (3,2) -> 1 (2 > 1.5).
    """
    dist = LpDistance().pairwise(tf.constant([[0.0], [1.0], [1.5], [3.0]]))
    labels = tf.constant([0, 0, 1, 1])
    got = as_set(*miners.BatchHardMiner()(dist, labels))
    assert got == {(0, 1, 2), (1, 0, 2), (2, 3, 1), (3, 2, 1)}
    got = as_set(*miners.SemiHardMiner(1.0, "hardest")(dist, labels))
    assert got == {(0, 1, 2), (1, 0, 2), (2, 3, 1), (3, 2, 1)}
    got = as_set(*miners.SemiHardMiner()(dist, labels))
    assert got == {(0, 1, 2), (1, 0, 3), (2, 3, 0), (3, 2, 1)}


def test_multi_similarity_hand_worked():
    """1-D embeddings 0, 1, 1.5, 3 with labels 0, 0, 1, 1, epsilon 0.1.

    anchor 0: hardest positive 1, hardest negative 1.5: positive (0,1) needs 1 > 1.4 (no);
    negatives need d < 1.1: 1.5, 3 (no).
    anchor 1: hardest positive 1, hardest negative 0.5: (1,0) since 1 > 0.4; negative 2
    (0.5 < 1.1), not 3 (2).
    anchor 2: hardest positive 1.5, hardest negative 0.5: (2,3); negatives 0 (1.5) and 1 (0.5).
    anchor 3: hardest positive 1.5, hardest negative 2: (3,2) needs 1.5 > 1.9 (no); negatives
    need d < 1.6: 3, 2 (no).
    """
    dist = line_distances([0.0, 1.0, 1.5, 3.0])
    a1, p, a2, n = run(miners.MultiSimilarityMiner(0.1), dist, [0, 0, 1, 1])
    assert as_set(a1, p) == {(1, 0), (2, 3)}
    assert as_set(a2, n) == {(1, 2), (2, 0), (2, 1)}


def test_quadruplet_second_negative_avoids_both_classes_hand_worked():
    """Points 0, 1 (class 0), 1.05, 20 (class 1), 5, 4.8 (class 2), 5.6 (class 3).

    The globally closest negative pair is (1, 2) at 0.05, of classes 0 and 1, so it serves
    only the anchors of other classes; anchors of class 0 and 1 get the closest pair avoiding
    their class: (4, 6) at 0.6 (classes 2 and 3).
    alpha1 = 0.3: triplets (0,1,2): 1 - 1.05 + 0.3 > 0; (1,0,2): 1 - 0.05 + 0.3 > 0;
    (2,3,1): 18.95 - 0.05 + 0.3 > 0; (3,2,6): 18.95 - 14.4 + 0.3 > 0; but
    (4,5,6): 0.2 - 0.6 + 0.3 < 0 and (5,4,6): 0.2 - 0.8 + 0.3 < 0 are dropped.
    alpha2 = 0.5: (0,1) and (1,0) with (4,6): 1 - 0.6 + 0.5 > 0; (2,3), (3,2) with (4,6);
    (4,5), (5,4) with (1,2): 0.2 - 0.05 + 0.5 > 0. Sample 6 has no positive.
    """
    dist = line_distances([0.0, 1.0, 1.05, 20.0, 5.0, 4.8, 5.6])
    labels = np.array([0, 0, 1, 1, 2, 2, 3])
    (a, p, n), quads = run(miners.QuadrupletMarginMiner(0.3, 0.5), dist, labels)
    assert as_set(a, p, n) == {(0, 1, 2), (1, 0, 2), (2, 3, 1), (3, 2, 6)}
    got = {(i, j, frozenset((k, m))) for i, j, k, m in as_set(*quads)}
    far, near = frozenset((4, 6)), frozenset((1, 2))
    assert got == {(0, 1, far), (1, 0, far), (2, 3, far), (3, 2, far), (4, 5, near), (5, 4, near)}


@pytest.mark.parametrize("name", list(miners.MINERS))
def test_one_class_or_all_distinct_labels(name):
    """One class: no negatives, so no triplet and no pair with an anchor needing a negative.
    All labels distinct: no positives. Hard pairs still list the pairs of the side that exists.
    """
    dist = line_distances([0.0, 0.5, 2.5, 4.0])
    miner = miners.get_miner(name)
    for labels in ([3, 3, 3, 3], [0, 1, 2, 3]):
        flat = tf.nest.flatten(run(miner, dist, np.array(labels)))
        sizes = [int(tf.size(x)) for x in flat]
        if name == "hard_pairs":  # pos d > 0, neg d < 1: all 12 positives, or the 2 close pairs
            assert sizes == ([12, 12, 0, 0] if labels[0] == labels[1] else [0, 0, 2, 2])
        else:
            assert sizes == [0] * len(flat)
        assert all(x.dtype == tf.int64 for x in flat)


# ----------------------------------------------------------------------------- API
EXAMPLES = [
    miners.BatchHardMiner(),
    miners.BatchAllMiner(),
    miners.BatchAllMiner(0.2),
    miners.SemiHardMiner(),
    miners.SemiHardMiner(0.5, "hardest"),
    miners.HardPairMiner(0.1, 0.9),
    miners.HardPairMiner(None, None),
    miners.MultiSimilarityMiner(0.2),
    miners.QuadrupletMarginMiner(0.4, 0.2),
    miners.QuadrupletMarginMiner(adaptive_margin=True, w1=2.0, w2=1.0),
]


@pytest.mark.parametrize("miner", EXAMPLES, ids=repr)
def test_graph_mode_with_unknown_batch_size(miner):
    labels, dist = random_batch(7, LpDistance(), size=20)
    dist = dist.astype(np.float32)
    fn = tf.function(
        lambda d, y: miner(d, y),
        input_signature=[
            tf.TensorSpec((None, None), tf.float32),
            tf.TensorSpec((None,), tf.int32),
        ],
    )
    for b in (20, 11):  # one trace serves every batch size
        eager = tf.nest.flatten(miner(dist[:b, :b], labels[:b]))
        graph = tf.nest.flatten(fn(tf.constant(dist[:b, :b]), tf.constant(labels[:b])))
        for e, g in zip(eager, graph, strict=True):
            assert g.dtype == tf.int64
            np.testing.assert_array_equal(e.numpy(), g.numpy())
    assert fn.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("miner", EXAMPLES, ids=repr)
def test_memory_is_quadratic_no_rank_3_tensor_in_the_graph(miner):
    """Every intermediate of the traced miner is at most (B, B): no (B, B, B) tensor."""
    fn = tf.function(lambda d, y: miner(d, y))
    graph = fn.get_concrete_function(
        tf.TensorSpec((None, None), tf.float32), tf.TensorSpec((None,), tf.int32)
    ).graph
    ranks = {(op.type, out.shape.rank) for op in graph.get_operations() for out in op.outputs}
    assert all(rank is not None and rank <= 2 for _, rank in ranks), sorted(ranks, key=str)


def test_the_package_does_not_import_the_losses():
    """Losses import miners, never the reverse (``import oneshot`` itself loads both)."""
    package = Path(miners.__file__).parent
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                assert not name.startswith(("oneshot.losses", "oneshot.models")), (path, name)


@pytest.mark.parametrize("miner", EXAMPLES, ids=repr)
def test_labels_of_any_dtype_and_shape_b_1(miner):
    labels, dist = random_batch(3, CosineSimilarity())
    want = tf.nest.flatten(run(miner, dist, labels))
    for other in (labels.astype(np.int64)[:, None], labels.astype(np.float32), labels[:, None]):
        got = tf.nest.flatten(run(miner, dist, other))
        for w, g in zip(want, got, strict=True):
            np.testing.assert_array_equal(w.numpy(), g.numpy())


@pytest.mark.parametrize("miner", EXAMPLES, ids=repr)
def test_serialization_round_trip(miner):
    config = keras.saving.serialize_keras_object(miner)
    assert config["registered_name"] == f"oneshot>{type(miner).__name__}"
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is type(miner) and restored == miner
    assert hash(restored) == hash(miner)
    assert repr(restored) == repr(miner)
    assert miners.get_miner(config) == miner
    labels, dist = random_batch(1, LpDistance())
    for w, g in zip(
        tf.nest.flatten(run(miner, dist, labels)),
        tf.nest.flatten(run(restored, dist, labels)),
        strict=True,
    ):
        np.testing.assert_array_equal(w.numpy(), g.numpy())


def test_get_miner_names_objects_and_errors():
    for name, cls in miners.MINERS.items():
        assert type(miners.get_miner(name)) is cls
    miner = miners.SemiHardMiner(0.1, "hardest")
    assert miners.get_miner(miner) is miner
    assert miners.BatchAllMiner(0.2) != miners.BatchAllMiner(0.3)
    assert repr(miners.SemiHardMiner()) == "SemiHardMiner(margin=None, fallback='farthest')"
    assert miners.SemiHardMiner(fallback="hardest").margin == 0.2
    with pytest.raises(
        ValueError, match=r"argument `miner`.*'batch_hard'.*Received: miner='hardest'"
    ):
        miners.get_miner("hardest")
    with pytest.raises(ValueError, match="Received: miner=3"):
        miners.get_miner(3)
    with pytest.raises(ValueError, match=r"argument `fallback`.*Received: fallback='closest'"):
        miners.SemiHardMiner(fallback="closest")
    with pytest.raises(ValueError, match=r"argument `margin`.*Received: margin=-0.1"):
        miners.SemiHardMiner(margin=-0.1, fallback="hardest")


def test_semi_hard_refuses_a_margin_its_rule_would_ignore():
    """TensorFlow Addons' rule (fallback="farthest") picks its negative without a margin: a
    margin given with it would be silently ignored, so it is refused, naming what to pass."""
    with pytest.raises(ValueError, match=r"argument `margin`.*no margin.*SemiHardMiner\(\)"):
        miners.SemiHardMiner(0.2)
    with pytest.raises(ValueError, match=r"Received: margin=0.5"):
        miners.SemiHardMiner.from_config({"margin": 0.5, "fallback": "farthest"})
    # the window rule uses it: a wider window keeps farther negatives
    dist = LpDistance().pairwise(tf.constant([[0.0], [1.0], [1.5], [2.5]], tf.float64))
    labels = tf.constant([0, 0, 1, 2])
    narrow = as_set(*miners.SemiHardMiner(0.2, fallback="hardest")(dist, labels))
    wide = as_set(*miners.SemiHardMiner(1.0, fallback="hardest")(dist, labels))
    assert narrow != wide
    with pytest.raises(ValueError, match=r"argument `epsilon`.*Received: epsilon='0.1'"):
        miners.MultiSimilarityMiner("0.1")
    with pytest.raises(ValueError, match=r"argument `dist`"):
        miners.BatchHardMiner()(tf.zeros((2, 2, 2)), tf.constant([0, 1]))


def test_losses_differentiate_through_the_mined_indices():
    emb = tf.Variable(np.random.default_rng(0).normal(size=(12, 3)))
    labels = tf.constant(np.arange(12) % 3)
    with tf.GradientTape() as tape:
        dist = LpDistance().pairwise(emb)
        a, p, n = miners.BatchHardMiner()(dist, labels)
        loss = tf.reduce_sum(tf.gather_nd(dist, tf.stack([a, p], 1)))
    assert tape.gradient(loss, emb) is not None  # the loss is differentiable through gathers
    assert all(isinstance(x, tf.Tensor) and x.dtype == tf.int64 for x in (a, p, n))


# ------------------------------------------------------------------------- offline mining
def test_select_hard_keeps_the_top_scores_and_distinct_randoms():
    scores = np.array([0.1, 5.0, -1.0, 3.0, 2.0, 0.0, 4.0])
    keep = miners.select_hard(scores, 3, 2, np.random.default_rng(0))
    assert keep[:3].tolist() == [1, 6, 3]
    assert len(set(keep.tolist())) == 5 and not set(keep[3:]) & {1, 6, 3}
    with pytest.raises(ValueError, match="hardest"):
        miners.select_hard(scores, 5, 5, np.random.default_rng(0))


def test_quadruplet_hardness_hand_worked():
    """g(a,p) = 0.5, g(a,n) = 0.2, g(n,n2) = 0.1: squared 2*0.25 - 0.04 - 0.01 = 0.45;
    plain 2*0.5 - 0.2 - 0.1 = 0.7."""
    args = (tf.constant([[0.5]]), tf.constant([0.2]), tf.constant([0.1]))
    np.testing.assert_allclose(miners.quadruplet_hardness(*args).numpy(), [0.45], rtol=1e-6)
    np.testing.assert_allclose(miners.quadruplet_hardness(*args, squared=False), [0.7], rtol=1e-6)


class CountingEmbedding(keras.Model):
    """A tiny embedding network that counts its forward passes and their sizes."""

    def __init__(self):
        super().__init__()
        self.flat = keras.layers.Flatten()
        self.dense = keras.layers.Dense(4)
        self.calls = []

    def call(self, x, training=False):
        self.calls.append(int(x.shape[0]))
        return self.dense(self.flat(x))


@pytest.fixture(scope="module")
def mnist_small(data_dir):
    with np.load(data_dir / "mnist" / "mnist.npz") as npz:
        return npz["x_test"][:2000], npz["y_test"][:2000].astype(np.int32)


@pytest.mark.parametrize("kind", ["triplet", "quadruplet"])
def test_hard_batch_scores_match_per_tuple_brute_force(mnist_small, kind):
    images, labels = mnist_small
    model = CountingEmbedding()
    metric = None
    if kind == "quadruplet":
        metric = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation="softmax")])
    miner = miners.HardBatchMiner(
        model, images, labels, kind, candidates=40, hardest=6, random=4, metric_model=metric, seed=0
    )
    tuples = miner.draw()
    miner.score(tuples)  # the first call builds the model and traces the compiled embedding
    # traced once (Keras may call `call` again while tracing): one batch of all the tuples' images
    assert set(model.calls) == {len(np.concatenate(tuples))}
    model.calls.clear()
    scores = miner.score(miner.draw())
    scores = miner.score(tuples)
    assert model.calls == []  # later steps reuse the compiled pass: no retracing

    def emb(i):
        return np.asarray(model(images[i : i + 1, :, :, None] / 255.0))[0]

    def g(x, y):
        if metric is None:
            return float(np.sum((emb(x) - emb(y)) ** 2))
        return float(np.asarray(metric(np.concatenate([emb(x), emb(y)])[None]))[0, 0])

    for c in range(0, 40, 7):
        t = [int(x[c]) for x in tuples]
        if kind == "triplet":
            want = g(t[0], t[1]) - g(t[0], t[2])
        else:
            want = 2 * g(t[0], t[1]) ** 2 - g(t[0], t[2]) ** 2 - g(t[2], t[3]) ** 2
        np.testing.assert_allclose(scores[c], want, rtol=1e-4, atol=1e-5)


def test_hard_batch_distance_accepts_objects_and_names(mnist_small):
    images, labels = mnist_small
    by_name = miners.HardBatchMiner(CountingEmbedding(), images, labels, distance="l1", seed=0)
    assert by_name.distance == LpDistance(p=1)
    cosine = miners.HardBatchMiner(
        CountingEmbedding(), images, labels, distance=CosineSimilarity(), seed=0
    )
    assert cosine.distance == CosineSimilarity()
    tuples = cosine.draw()
    emb = cosine.embedding_model(images[np.concatenate(tuples)][..., None] / 255.0)
    a, p, n = np.split(np.asarray(emb, np.float64), 3)
    cos = [
        np.sum(x * y, 1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
        for x, y in ((a, p), (a, n))
    ]
    np.testing.assert_allclose(cosine.score(tuples), (1 - cos[0]) - (1 - cos[1]), atol=1e-5)
    with pytest.raises(ValueError, match="distance"):
        miners.HardBatchMiner(CountingEmbedding(), images, labels, distance="l3")


def test_hard_batch_dataset_feeds_fit_with_current_weights(mnist_small):
    images, labels = mnist_small
    embedding = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(4)], name="embedding"
    )
    dense = embedding.layers[-1]
    inputs = [keras.Input((28, 28, 1)) for _ in range(3)]
    ea, ep, en = (embedding(x) for x in inputs)
    d = keras.layers.Lambda(lambda t: tf.reduce_sum(tf.square(t[0] - t[1]), -1))
    out = keras.layers.Concatenate()(
        [keras.layers.Reshape((1,))(d([ea, ep])), keras.layers.Reshape((1,))(d([ea, en]))]
    )
    model = keras.Model(inputs, out)

    class HingeModel(keras.Model):
        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            return tf.reduce_mean(tf.nn.relu(y_pred[:, 0] - y_pred[:, 1] + 0.2))

    trainer = HingeModel(model.inputs, model.outputs)
    trainer.compile(keras.optimizers.Adam(1e-3))
    miner = miners.HardBatchMiner(
        embedding, images, labels, candidates=30, hardest=4, random=4, seed=1
    )
    ((a, p, n),) = next(iter(miner.dataset(steps=1)))
    assert a.shape == (8, 28, 28, 1)
    before = [w.numpy().copy() for w in embedding.weights]
    history = trainer.fit(miner.dataset(), steps_per_epoch=3, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(
        not np.allclose(b, w.numpy()) for b, w in zip(before, embedding.weights, strict=True)
    )
    # Mining after training uses the new weights: same candidates, different scores.
    tuples = miner.draw()
    s1 = miner.score(tuples)
    dense.kernel.assign(dense.kernel * 2.0)
    dense.bias.assign(dense.bias * 0.0)
    s2 = miner.score(tuples)
    dense.kernel.assign(dense.kernel * 0.5)
    # Squared distances scale by 4 when the (bias-free) linear map doubles.
    np.testing.assert_allclose(s2, 4.0 * miner.score(tuples), rtol=1e-3, atol=1e-4)
    assert not np.allclose(s2, s1)


def test_hard_batch_miner_rejects_bad_arguments(mnist_small):
    images, labels = mnist_small
    with pytest.raises(ValueError, match="kind"):
        miners.HardBatchMiner(CountingEmbedding(), images, labels, kind="pairs")
    with pytest.raises(ValueError, match="hardest"):
        miners.HardBatchMiner(CountingEmbedding(), images, labels, candidates=10)


# ----------------------------------------------------------------- HardBatchMiner.from_model
def small_embedding():
    return keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(4)], name="embedding"
    )


def model_values(model, images, tuples):
    """The training model's own output for the candidate tuples: its pair values (C, k)."""
    from oneshot.data.preprocess import to_model_input

    return np.asarray(model([to_model_input(images[t]) for t in tuples], training=False))


def test_from_model_scores_a_fixed_distance_quadruplet_model_with_its_training_quantity(
    mnist_small,
):
    """metric="euclidean", squared=True: the loss uses g^2 with g = |e1 - e2|. The miner must
    score with the same g^2 (the model's own output values, squared), not with the squared
    Euclidean distance squared again (d^4, what the miner did before ``from_model``)."""
    from oneshot.models import build_quadruplet

    images, labels = mnist_small
    model = build_quadruplet(small_embedding(), metric="euclidean", optimizer=None)
    miner = miners.HardBatchMiner.from_model(
        model, images, labels, candidates=40, hardest=6, random=4, seed=0
    )
    assert miner.kind == "quadruplet" and miner.metric_model is None and miner.squared
    assert miner.distance == LpDistance()
    assert miner.embedding_model is model.get_layer("embedding")
    tuples = miner.draw()
    values = model_values(model, images, tuples)
    want = miners.quadruplet_hardness(values[:, 0], values[:, 1], values[:, 2], squared=True)
    np.testing.assert_allclose(miner.score(tuples), want.numpy(), rtol=1e-5, atol=1e-6)
    # The previous setup (squared Euclidean distance AND squared=True) scored d^4 instead.
    old = miners.HardBatchMiner(
        model.get_layer("embedding"), images, labels, "quadruplet", distance="squared_euclidean"
    )
    assert not np.allclose(old.score(tuples), want.numpy(), rtol=1e-3)
    np.testing.assert_allclose(
        old.score(tuples),
        2 * values[:, 0] ** 4 - values[:, 1] ** 4 - values[:, 2] ** 4,
        rtol=1e-4,
        atol=1e-6,
    )


def test_from_model_learned_metric_quadruplet_is_bit_identical_to_before(mnist_small):
    from oneshot.models import build_quadruplet

    images, labels = mnist_small
    model = build_quadruplet(
        small_embedding(), metric="learned", alpha1=0.5, alpha2=0.25, optimizer=None
    )
    miner = miners.HardBatchMiner.from_model(model, images, labels, candidates=40, seed=3)
    assert miner.metric_model is model.get_layer("metric") and miner.squared
    before = miners.HardBatchMiner(  # what training/setup.py built for these runs
        model.get_layer("embedding"),
        images,
        labels,
        kind="quadruplet",
        candidates=40,
        metric_model=model.get_layer("metric"),
        distance="squared_euclidean",
        seed=3,
    )
    tuples = miner.draw()
    np.testing.assert_array_equal(tuples, before.draw())
    np.testing.assert_array_equal(miner.score(tuples), before.score(tuples))
    values = model_values(model, images, tuples)
    want = miners.quadruplet_hardness(values[:, 0], values[:, 1], values[:, 2], squared=True)
    np.testing.assert_allclose(miner.score(tuples), want.numpy(), rtol=1e-5, atol=1e-6)


def test_from_model_triplet_uses_the_loss_distance(mnist_small):
    from oneshot.models import build_triplet

    images, labels = mnist_small
    model = build_triplet(small_embedding(), distance="squared_euclidean", optimizer=None)
    miner = miners.HardBatchMiner.from_model(model, images, labels, candidates=40, seed=2)
    assert miner.kind == "triplet" and miner.distance == LpDistance(power=2)
    before = miners.HardBatchMiner(
        model.get_layer("embedding"), images, labels, candidates=40, seed=2
    )
    tuples = miner.draw()
    np.testing.assert_array_equal(miner.score(tuples), before.score(tuples))
    values = model_values(model, images, tuples)
    np.testing.assert_allclose(
        miner.score(tuples), values[:, 0] - values[:, 1], rtol=1e-5, atol=1e-6
    )


def test_from_model_rejects_other_models(mnist_small):
    images, labels = mnist_small
    embedding = small_embedding()
    other = keras.Model(embedding.inputs, embedding.outputs, name="siamese")
    with pytest.raises(ValueError, match=r"argument `model`.*'siamese'"):
        miners.HardBatchMiner.from_model(other, images, labels)
