"""Online miners against brute-force loops over explicit tuples; offline hard-batch mining."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from oneshot import miners
from oneshot.distances import pairwise_distances

SEEDS = [0, 1, 2, 3]


def random_batch(seed: int, size: int = 16, classes: int = 5, dim: int = 3):
    """Random embeddings and labels; some classes may have a single image (no positive)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size).astype(np.int32)
    emb = rng.normal(size=(size, dim)).astype(np.float32)
    dist = np.asarray(pairwise_distances(tf.constant(emb)), np.float64)
    return emb, labels, dist


def explicit_triplets(labels):
    b = len(labels)
    for a, p, n in itertools.product(range(b), repeat=3):
        if a != p and labels[a] == labels[p] and labels[a] != labels[n]:
            yield a, p, n


def as_set(*arrays):
    return set(zip(*(np.asarray(x).tolist() for x in arrays), strict=True))


@pytest.mark.parametrize("seed", SEEDS)
def test_batch_hard_matches_brute_force(seed):
    _, labels, dist = random_batch(seed)
    a, p, n = miners.batch_hard(tf.constant(dist, tf.float32), tf.constant(labels))
    expected = {}
    for i, j, k in explicit_triplets(labels):
        best = expected.get(i, (-1.0, np.inf))
        expected[i] = (max(best[0], dist[i, j]), min(best[1], dist[i, k]))
    assert sorted(a.numpy().tolist()) == sorted(expected)
    for i, j, k in zip(a.numpy(), p.numpy(), n.numpy(), strict=True):
        assert labels[j] == labels[i] != labels[k]
        np.testing.assert_allclose((dist[i, j], dist[i, k]), expected[i], rtol=1e-5)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("margin", [0.2, 1.0])
def test_batch_all_lists_exactly_the_active_triplets(seed, margin):
    _, labels, dist = random_batch(seed, size=14)
    got = miners.batch_all(tf.constant(dist, tf.float32), tf.constant(labels), margin)
    expected = {
        t for t in explicit_triplets(labels) if dist[t[0], t[1]] - dist[t[0], t[2]] + margin > 0
    }
    assert as_set(*got) == expected
    assert len(got[0]) == len(expected)


@pytest.mark.parametrize("seed", SEEDS)
def test_semi_hard_matches_brute_force(seed):
    margin = 0.5
    _, labels, dist = random_batch(seed, size=18)
    got = miners.semi_hard(tf.constant(dist, tf.float32), tf.constant(labels), margin)
    expected = set()
    for i, j in itertools.permutations(range(len(labels)), 2):
        negs = [k for k in range(len(labels)) if labels[k] != labels[i]]
        if labels[i] != labels[j] or not negs:
            continue
        semi = [k for k in negs if dist[i, j] < dist[i, k] < dist[i, j] + margin]
        pool = semi if semi else negs
        expected.add((i, j, min(pool, key=lambda k: dist[i, k])))
    assert as_set(*got) == expected


def test_adaptive_margins_are_mean_gaps():
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(4), 4)
    emb = np.eye(4)[labels] + 0.3 * rng.normal(size=(16, 4))  # clustered: mu_n > mu_p
    dist = np.asarray(pairwise_distances(tf.constant(emb, tf.float32)), np.float64)
    a1, a2 = miners.adaptive_margins(tf.constant(dist, tf.float32), tf.constant(labels), 1.0, 0.5)
    same = labels[:, None] == labels[None, :]
    off = ~np.eye(len(labels), dtype=bool)
    gap = dist[~same].mean() - dist[same & off].mean()
    assert gap > 0.3
    np.testing.assert_allclose([float(a1), float(a2)], [gap, 0.5 * gap], rtol=1e-5)
    # Reversed (positives farther than negatives): clipped to 0.
    a1, a2 = miners.adaptive_margins(tf.constant(dist, tf.float32), tf.constant(np.arange(16) % 4))
    assert float(a1) == 0.0 and float(a2) == 0.0


@pytest.mark.parametrize("seed", SEEDS)
def test_quadruplet_margin_matches_brute_force(seed):
    _, labels, dist = random_batch(seed, size=16, classes=5)
    alpha1, alpha2 = 0.3, 0.15
    (a, p, n), (qa, qp, qn, qn2) = miners.quadruplet_margin(
        tf.constant(dist, tf.float32), tf.constant(labels), alpha1, alpha2
    )
    b = len(labels)
    exp1, exp2 = {}, {}
    for i, j in itertools.permutations(range(b), 2):
        if labels[i] != labels[j]:
            continue
        negs = [dist[i, k] for k in range(b) if labels[k] != labels[i]]
        if negs and dist[i, j] - min(negs) + alpha1 > 0:
            exp1[(i, j)] = min(negs)
        pairs = [
            dist[k, m]
            for k, m in itertools.permutations(range(b), 2)
            if labels[k] != labels[m] and labels[i] not in (labels[k], labels[m])
        ]
        if pairs and dist[i, j] - min(pairs) + alpha2 > 0:
            exp2[(i, j)] = min(pairs)
    got1 = {(i, j): dist[i, k] for i, j, k in zip(*(x.numpy() for x in (a, p, n)), strict=True)}
    assert got1.keys() == exp1.keys()
    np.testing.assert_allclose([got1[k] for k in exp1], list(exp1.values()), rtol=1e-5)
    got2 = {}
    for i, j, k, m in zip(*(x.numpy() for x in (qa, qp, qn, qn2)), strict=True):
        # n2's class differs from both the anchor's and n's.
        assert labels[k] != labels[m] and labels[i] not in (labels[k], labels[m])
        got2[(i, j)] = dist[k, m]
    assert got2.keys() == exp2.keys()
    np.testing.assert_allclose([got2[k] for k in exp2], list(exp2.values()), rtol=1e-5)


def test_hard_pairs_keep_only_pairs_with_a_loss():
    _, labels, dist = random_batch(3)
    a1, p, a2, n = miners.hard_pairs(tf.constant(dist, tf.float32), tf.constant(labels), 0.5, 1.5)
    b = range(len(labels))
    assert as_set(a1, p) == {
        (i, j) for i in b for j in b if i != j and labels[i] == labels[j] and dist[i, j] > 0.5
    }
    assert as_set(a2, n) == {
        (i, j) for i in b for j in b if labels[i] != labels[j] and dist[i, j] < 1.5
    }


def test_hand_worked_batch_hard_and_semi_hard():
    """1-D embeddings 0, 1, 1.5, 3 with labels 0, 0, 1, 1.

    batch-hard: anchor 0 -> (p=1, n=2); 1 -> (0, 2); 2 -> (3, 1); 3 -> (2, 1).
    semi-hard, margin 1: pair (0,1) d=1: negatives at 1.5 (in (1, 2)) -> n=2;
    pair (1,0) d=1: negatives at 0.5, 2 -> none in (1, 2) -> hardest n=2;
    pair (2,3) d=1.5: negatives at 1.5, 0.5 -> none in (1.5, 2.5) -> hardest n=1;
    pair (3,2) d=1.5: negatives at 3, 2 -> n=1 (2 is in (1.5, 2.5)).
    """
    dist = pairwise_distances(tf.constant([[0.0], [1.0], [1.5], [3.0]]))
    labels = tf.constant([0, 0, 1, 1])
    assert as_set(*miners.batch_hard(dist, labels)) == {(0, 1, 2), (1, 0, 2), (2, 3, 1), (3, 2, 1)}
    got = as_set(*miners.semi_hard(dist, labels, 1.0))
    assert got == {(0, 1, 2), (1, 0, 2), (2, 3, 1), (3, 2, 1)}


def test_anchors_without_positive_or_negative_are_left_out():
    dist = pairwise_distances(tf.constant([[0.0], [1.0], [2.0]]))
    a, _, _ = miners.batch_hard(dist, tf.constant([0, 1, 2]))  # no positives
    assert a.shape == (0,)
    a, _, _ = miners.batch_hard(dist, tf.constant([0, 0, 0]))  # no negatives
    assert a.shape == (0,)
    assert miners.semi_hard(dist, tf.constant([0, 0, 0]))[0].shape == (0,)
    assert miners.batch_all(dist, tf.constant([0, 0, 0]))[0].shape == (0,)


# ------------------------------------------------------------------------- offline mining
def test_select_hard_keeps_the_top_scores_and_distinct_randoms():
    scores = np.array([0.1, 5.0, -1.0, 3.0, 2.0, 0.0, 4.0])
    keep = miners.select_hard(scores, 3, 2, np.random.default_rng(0))
    assert keep[:3].tolist() == [1, 6, 3]
    assert len(set(keep.tolist())) == 5 and not set(keep[3:]) & {1, 6, 3}
    with pytest.raises(ValueError, match="hardest"):
        miners.select_hard(scores, 5, 5, np.random.default_rng(0))


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
