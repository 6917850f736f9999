"""Online losses against brute-force numpy loops; edge cases; gradients; save/load; one fit step."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from oneshot.distances import pairwise_distances
from oneshot.losses.online import (
    OnlineContrastiveLoss,
    OnlineQuadrupletLoss,
    OnlineTripletLoss,
    active_triplet_fraction,
    batch_all_triplet_loss,
    online_contrastive_loss,
    online_quadruplet_loss,
    online_triplet_loss,
)

SEEDS = [0, 1, 2]


def random_batch(seed: int, size: int = 16, classes: int = 4, dim: int = 4):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size).astype(np.int32)
    emb = rng.normal(size=(size, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return emb, labels


def np_dist(emb, distance):
    return np.asarray(pairwise_distances(tf.constant(emb), distance=distance), np.float64)


def softplus(x):
    return np.log1p(np.exp(x))


def reference_triplet(emb, labels, miner, margin, distance, soft=False):
    """Loop over explicit (a, p, n) triplets."""
    d, b = np_dist(emb, distance), len(labels)
    losses = []
    for a in range(b):
        pos = [p for p in range(b) if p != a and labels[p] == labels[a]]
        neg = [n for n in range(b) if labels[n] != labels[a]]
        if not pos or not neg:
            continue
        if miner == "batch_hard":
            diff = max(d[a, pos]) - min(d[a, neg])
            losses.append(softplus(diff) if soft else max(diff + margin, 0))
        for p in pos:
            if miner == "batch_all":
                losses += [v for n in neg if (v := d[a, p] - d[a, n] + margin) > 0]
            elif miner == "semi_hard":
                semi = [n for n in neg if d[a, p] < d[a, n] < d[a, p] + margin]
                n = min(semi or neg, key=lambda k: d[a, k])
                diff = d[a, p] - d[a, n]
                losses.append(softplus(diff) if soft else max(diff + margin, 0))
    return float(np.mean(losses)) if losses else 0.0


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("miner", ["batch_hard", "batch_all", "semi_hard"])
@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean", "cosine"])
def test_triplet_losses_match_brute_force(seed, miner, distance):
    emb, labels = random_batch(seed, size=12 + 4 * seed)
    got = float(online_triplet_loss(labels, emb, miner, 0.3, distance))
    assert got == pytest.approx(
        reference_triplet(emb, labels, miner, 0.3, distance), rel=1e-4, abs=1e-6
    )


@pytest.mark.parametrize("miner", ["batch_hard", "semi_hard"])
def test_soft_margin_matches_brute_force(miner):
    emb, labels = random_batch(4, size=20)
    got = float(online_triplet_loss(labels, emb, miner, 0.3, "euclidean", soft_margin=True))
    assert got == pytest.approx(
        reference_triplet(emb, labels, miner, 0.3, "euclidean", True), rel=1e-4
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_batch_all_gradient_equals_explicit_triplet_sum(seed):
    """The sorted/cumsum batch-all gives the same value and gradient as the B^3 formula."""
    emb, labels = random_batch(seed, size=14)
    x = tf.Variable(emb)
    lab = tf.constant(labels)
    same = labels[:, None] == labels[None, :]
    valid = (same & ~np.eye(len(labels), dtype=bool))[:, :, None] & ~same[:, None, :]
    with tf.GradientTape(persistent=True) as tape:
        d = pairwise_distances(x)
        ours, active, n_valid = batch_all_triplet_loss(d, lab, 0.5)
        cube = tf.nn.relu(d[:, :, None] - d[:, None, :] + 0.5) * valid
        count = tf.reduce_sum(tf.cast(cube > 0, tf.float32))
        explicit = tf.reduce_sum(cube) / tf.maximum(count, 1.0)
    np.testing.assert_allclose(float(ours), float(explicit), rtol=1e-5)
    assert float(active) == float(count) and float(n_valid) == valid.sum()
    np.testing.assert_allclose(
        tape.gradient(ours, x), tape.gradient(explicit, x), rtol=1e-4, atol=1e-6
    )


def reference_quadruplet(emb, labels, fixed=None, distance="euclidean"):
    """Adaptive margins (w = 1, 0.5) unless ``fixed`` margins are given."""
    d, b = np_dist(emb, distance), len(labels)
    same = labels[:, None] == labels[None, :]
    gap = max(d[~same].mean() - d[same & ~np.eye(b, dtype=bool)].mean(), 0.0)
    a1, a2 = fixed if fixed else (gap, 0.5 * gap)
    t1, t2 = [], []
    for a, p in itertools.permutations(range(b), 2):
        if labels[a] != labels[p]:
            continue
        negs = [d[a, n] for n in range(b) if labels[n] != labels[a]]
        if (v := d[a, p] - min(negs) + a1) > 0:
            t1.append(v)
        pairs = [
            d[n, m]
            for n, m in itertools.permutations(range(b), 2)
            if labels[n] != labels[m] and labels[a] not in (labels[n], labels[m])
        ]
        if (v := d[a, p] - min(pairs) + a2) > 0:
            t2.append(v)
    return (np.mean(t1) if t1 else 0.0) + (np.mean(t2) if t2 else 0.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_quadruplet_loss_matches_brute_force(seed):
    emb, labels = random_batch(seed, size=14, classes=4)
    got = float(online_quadruplet_loss(labels, emb))
    assert got == pytest.approx(reference_quadruplet(emb, labels), rel=1e-4)
    fixed = float(online_quadruplet_loss(labels, emb, 0.4, 0.1, adaptive=False))
    assert fixed == pytest.approx(reference_quadruplet(emb, labels, (0.4, 0.1)), rel=1e-4)
    squared = float(online_quadruplet_loss(labels, emb, distance="squared_euclidean"))
    want = reference_quadruplet(emb, labels, distance="squared_euclidean")
    assert squared == pytest.approx(want, rel=1e-4)


@pytest.mark.parametrize("miner", ["hard_pairs", "all"])
def test_contrastive_matches_brute_force(miner):
    emb, labels = random_batch(7, size=16)
    d, b, m = np_dist(emb, "euclidean"), len(labels), 1.2
    terms = []
    for i, j in itertools.permutations(range(b), 2):
        if labels[i] == labels[j] and (miner == "all" or d[i, j] > 0):
            terms.append(d[i, j] ** 2)
        elif labels[i] != labels[j] and (miner == "all" or d[i, j] < m):
            terms.append(max(m - d[i, j], 0) ** 2)
    got = float(online_contrastive_loss(labels, emb, miner, m))
    assert got == pytest.approx(np.mean(terms), rel=1e-4)


def test_hand_worked_batch_hard():
    """1-D points 0, 1, 1.5, 3, labels 0, 0, 1, 1, margin 0.2: anchors give
    max(1 - 1.5 + .2, 0) = 0, max(1 - .5 + .2, 0) = .7, max(1.5 - .5 + .2, 0) = 1.2, and
    max(1.5 - 2 + .2, 0) = 0; mean 0.475."""
    emb = np.array([[0.0], [1.0], [1.5], [3.0]], np.float32)
    assert float(online_triplet_loss([0, 0, 1, 1], emb, "batch_hard", 0.2)) == pytest.approx(0.475)


def all_losses():
    return [
        OnlineTripletLoss("batch_hard"),
        OnlineTripletLoss("batch_all"),
        OnlineTripletLoss("semi_hard"),
        OnlineTripletLoss("batch_hard", soft_margin=True),
        OnlineQuadrupletLoss(),
        OnlineQuadrupletLoss(adaptive=False),
        OnlineContrastiveLoss(),
    ]


@pytest.mark.parametrize("loss", all_losses(), ids=lambda x: x.get_config()["name"])
def test_degenerate_batches_give_zero_or_finite_loss_and_gradient(loss):
    cases = {
        "all equal (zero distances)": (np.zeros((8, 3), np.float32), np.repeat([0, 1], 4)),
        "one class (no negative)": (np.random.default_rng(0).normal(size=(6, 3)), np.zeros(6)),
        "all different (no positive)": (np.random.default_rng(1).normal(size=(6, 3)), np.arange(6)),
    }
    for name, (emb, labels) in cases.items():
        x = tf.Variable(np.asarray(emb, np.float32))
        with tf.GradientTape() as tape:
            value = loss(tf.constant(labels, tf.int32), x)
        grad = tape.gradient(value, x)
        assert np.isfinite(float(value)), name
        assert grad is None or np.all(np.isfinite(grad.numpy())), name
        if "no" in name and not isinstance(loss, OnlineContrastiveLoss):
            assert float(value) == 0.0, name  # no valid triplet (pairs still count for contrastive)


@pytest.mark.parametrize("miner", ["batch_hard", "batch_all", "semi_hard"])
def test_all_easy_batch_gives_zero(miner):
    """Two tight clusters far apart: every triplet satisfies the margin."""
    emb = np.array([[0, 0], [0, 0.01], [0.01, 0], [5, 5], [5, 5.01], [5.01, 5]], np.float32)
    labels = [0, 0, 0, 1, 1, 1]
    assert float(online_triplet_loss(labels, emb, miner, 1.0)) == 0.0
    assert float(active_triplet_fraction(labels, emb, 1.0)) == 0.0
    assert float(OnlineQuadrupletLoss(adaptive=False, margin1=1.0, margin2=0.5)(labels, emb)) == 0.0
    # Contrastive: only the 12 positive pairs remain; per cluster d^2 = 1e-4, 1e-4, 2e-4 (x2).
    # (rel 5e-2: float32 |a|^2 - 2ab + |b|^2 loses digits for tiny distances far from 0).
    want = 2 * 2 * 4e-4 / 12
    assert float(OnlineContrastiveLoss(margin=1.0)(labels, emb)) == pytest.approx(want, rel=5e-2)


def test_bad_arguments_raise_value_errors():
    with pytest.raises(ValueError, match="miner"):
        OnlineTripletLoss("hardest")
    with pytest.raises(ValueError, match="soft_margin"):
        OnlineTripletLoss("batch_all", soft_margin=True)
    with pytest.raises(ValueError, match="distance"):
        OnlineTripletLoss(distance="l3")
    with pytest.raises(ValueError, match="miner"):
        OnlineContrastiveLoss("semi_hard")


def small_embedding():
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(4, 3, strides=2, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(8),
            keras.layers.UnitNormalization(),
        ],
        name="embedding",
    )


@pytest.fixture(scope="module")
def mnist(data_dir):
    with np.load(data_dir / "mnist" / "mnist.npz") as npz:
        return npz["x_test"][:3000], npz["y_test"][:3000].astype(np.int32)


@pytest.mark.parametrize("loss", all_losses()[::2], ids=lambda x: x.get_config()["name"])
def test_save_load_round_trip(tmp_path, loss, mnist):
    model = small_embedding()
    model.compile(keras.optimizers.Adam(1e-3), loss=loss)
    x = mnist[0][:16, :, :, None] / 255.0
    y = mnist[1][:16]
    before = float(model.compute_loss(x, y, model(x)))
    model.optimizer.build(model.trainable_variables)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded.loss) is type(loss)
    assert loaded.loss.get_config() == loss.get_config()
    assert float(loaded.compute_loss(x, y, loaded(x))) == pytest.approx(before, rel=1e-5)


@pytest.mark.parametrize(
    "loss",
    [OnlineTripletLoss("batch_all"), OnlineQuadrupletLoss()],
    ids=["batch_all", "quadruplet"],
)
def test_one_step_fit_on_pk_batches(loss, mnist):
    from oneshot.data.samplers import pk_dataset

    model = small_embedding()
    active = keras.metrics.MeanMetricWrapper(active_triplet_fraction, name="active_fraction")
    model.compile(keras.optimizers.Adam(1e-2), loss=loss, metrics=[active])
    before = [w.numpy().copy() for w in model.weights]
    history = model.fit(pk_dataset(*mnist, p=4, k=4, seed=0), steps_per_epoch=2, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and history.history["loss"][0] > 0
    assert 0.0 < history.history["active_fraction"][0] <= 1.0
    assert any(not np.allclose(b, w.numpy()) for b, w in zip(before, model.weights, strict=True))
