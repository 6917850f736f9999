"""Offline tuple losses against numpy references, hand-worked cases and edge cases."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tensorflow as tf

from oneshot.distances import DISTANCES, paired_distances
from oneshot.losses import (
    ContrastiveLoss,
    QuadrupletLossLayer,
    TripletLossLayer,
    adaptive_margins,
    contrastive_loss,
    quadruplet_hardness,
    quadruplet_loss,
    triplet_loss,
)

RNG = np.random.default_rng(0)


def np_distance(a: np.ndarray, b: np.ndarray, distance: str) -> np.ndarray:
    """Brute-force paired distance, one row at a time."""
    out = []
    for x, y in zip(a, b, strict=True):
        if distance == "euclidean":
            out.append(np.sqrt(np.sum((x - y) ** 2)))
        elif distance == "squared_euclidean":
            out.append(np.sum((x - y) ** 2))
        elif distance == "l1":
            out.append(np.sum(np.abs(x - y)))
        else:
            out.append(1.0 - x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))
    return np.array(out)


# --- contrastive -------------------------------------------------------------------------------


def test_contrastive_matches_numpy_and_hand_case():
    y = RNG.integers(0, 2, 50).astype(np.float32)
    d = RNG.uniform(0, 2, 50).astype(np.float32)
    d[:5] = 0.0
    expected = y * d**2 + (1 - y) * np.maximum(1.3 - d, 0) ** 2
    np.testing.assert_allclose(contrastive_loss(y, d, margin=1.3).numpy(), expected, rtol=1e-6)
    # Hand-worked: same pair at 0.5 -> 0.25; different pair at 0.25 -> 0.75^2; far -> 0.
    got = contrastive_loss([[1.0], [0.0], [0.0]], [[0.5], [0.25], [3.0]]).numpy()
    np.testing.assert_allclose(got, [0.25, 0.5625, 0.0])
    loss = ContrastiveLoss(margin=1.3)
    np.testing.assert_allclose(float(loss(y, d)), expected.mean(), rtol=1e-6)
    clone = ContrastiveLoss.from_config(loss.get_config())
    assert clone.margin == 1.3 and clone.name == "contrastive_loss"
    with pytest.raises(ValueError, match="margin"):
        ContrastiveLoss(margin=-1.0)


def test_contrastive_gradient_is_finite_at_zero_distance():
    e = tf.Variable(np.zeros((4, 3), np.float32))
    with tf.GradientTape() as tape:
        d = paired_distances(e, tf.zeros((4, 3)), "euclidean")
        loss = tf.reduce_mean(contrastive_loss([1.0, 0.0, 1.0, 0.0], d))
    grad = tape.gradient(loss, e).numpy()
    assert np.isfinite(float(loss)) and np.all(np.isfinite(grad))


# --- triplet ------------------------------------------------------------------------------------


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("soft_margin", [False, True])
def test_triplet_matches_numpy(distance, soft_margin):
    a, p, n = (RNG.normal(size=(40, 6)).astype(np.float32) for _ in range(3))
    d_ap, d_an = np_distance(a, p, distance), np_distance(a, n, distance)
    if soft_margin:
        expected = np.log1p(np.exp(d_ap - d_an))
    else:
        expected = np.maximum(d_ap - d_an + 0.3, 0)
    got = triplet_loss(a, p, n, margin=0.3, distance=distance, soft_margin=soft_margin).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_triplet_hand_case_and_easy_batch_is_exactly_zero():
    a = np.array([[0.0, 0.0]], np.float32)
    p = np.array([[1.0, 0.0]], np.float32)
    n = np.array([[0.0, 1.5]], np.float32)
    # squared: 1 - 2.25 + 0.2 < 0 -> 0 ; euclidean with margin 0.6: 1 - 1.5 + 0.6 = 0.1
    assert float(triplet_loss(a, p, n)[0]) == 0.0
    np.testing.assert_allclose(triplet_loss(a, p, n, 0.6, "euclidean").numpy(), [0.1], rtol=1e-6)
    far = RNG.normal(size=(16, 4)).astype(np.float32) + 10.0
    easy = triplet_loss(-far, -far + 0.01, far, margin=0.2, distance="euclidean")
    assert np.all(easy.numpy() == 0.0)


@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean", "l1"])
def test_triplet_gradients_finite_when_all_embeddings_coincide(distance):
    e = tf.Variable(np.ones((5, 4), np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(triplet_loss(e, e * 1.0, e * 1.0, distance=distance))
    grad = tape.gradient(loss, e)
    np.testing.assert_allclose(float(loss), 0.2, rtol=1e-6)  # d_ap = d_an = 0 -> the margin
    assert np.all(np.isfinite(grad.numpy()))


def test_triplet_layer_adds_the_mean_loss_and_returns_distances():
    a, p, n = (RNG.normal(size=(8, 5)).astype(np.float32) for _ in range(3))
    layer = TripletLossLayer(margin=0.5, distance="euclidean")
    out = layer([a, p, n]).numpy()
    np.testing.assert_allclose(out[:, 0], np_distance(a, p, "euclidean"), rtol=1e-5)
    np.testing.assert_allclose(out[:, 1], np_distance(a, n, "euclidean"), rtol=1e-5)
    expected = np.maximum(out[:, 0] - out[:, 1] + 0.5, 0).mean()
    assert len(layer.losses) == 1
    np.testing.assert_allclose(float(layer.losses[0]), expected, rtol=1e-5)
    clone = TripletLossLayer.from_config(layer.get_config())
    assert (clone.margin, clone.distance, clone.soft_margin) == (0.5, "euclidean", False)
    with pytest.raises(ValueError, match="distance"):
        TripletLossLayer(distance="dot")


# --- quadruplet ---------------------------------------------------------------------------------


def np_quadruplet(dap, dan, dnn, a1, a2, squared, adaptive):
    if squared:
        dap, dan, dnn = dap**2, dan**2, dnn**2
    if adaptive:
        gap = max(np.concatenate([dan, dnn]).mean() - dap.mean(), 0.0)
        a1, a2 = gap, 0.5 * gap
    return np.maximum(dap - dan + a1, 0) + np.maximum(dap - dnn + a2, 0)


@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("adaptive", [False, True])
def test_quadruplet_matches_numpy(squared, adaptive):
    dap, dan, dnn = (RNG.uniform(0, 1, 64).astype(np.float32) for _ in range(3))
    dap[:4] = 0.0
    got = quadruplet_loss(dap, dan, dnn, 0.4, 0.1, squared=squared, adaptive_margin=adaptive)
    expected = np_quadruplet(dap, dan, dnn, 0.4, 0.1, squared, adaptive)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_quadruplet_hand_case_easy_batch_and_hardness():
    # g^2: 0.01 - 0.64 + 0.5 < 0 -> 0 ; 0.01 - 0.25 + 0.3 = 0.06
    got = quadruplet_loss([0.1], [0.8], [0.5], alpha1=0.5, alpha2=0.3).numpy()
    np.testing.assert_allclose(got, [0.06], rtol=1e-5)
    easy = quadruplet_loss(np.zeros(8), np.ones(8), np.ones(8), alpha1=0.5, alpha2=0.25)
    assert np.all(easy.numpy() == 0.0)
    # Mining scores use the same (squared) quantity as the loss.
    np.testing.assert_allclose(
        quadruplet_hardness([0.5], [0.8], [0.6]).numpy(), [2 * 0.25 - 0.64 - 0.36], rtol=1e-5
    )
    np.testing.assert_allclose(
        quadruplet_hardness([0.5], [0.8], [0.6], squared=False).numpy(), [-0.4], atol=1e-6
    )


def test_adaptive_margin_is_constant_for_the_gradient():
    dap = tf.Variable([0.1, 0.3, 0.2])
    dan, dnn = tf.constant([0.5, 0.6, 0.7]), tf.constant([0.4, 0.9, 0.8])
    with tf.GradientTape() as tape:
        adaptive = tf.reduce_sum(
            quadruplet_loss(dap, dan, dnn, squared=False, adaptive_margin=True)
        )
    grad_adaptive = tape.gradient(adaptive, dap).numpy()
    a1, a2 = (float(x) for x in adaptive_margins(dap, dan, dnn))
    np.testing.assert_allclose([a1, a2], [0.45, 0.225], rtol=1e-5)  # mu_n 0.65, mu_p 0.2
    with tf.GradientTape() as tape:
        fixed = tf.reduce_sum(quadruplet_loss(dap, dan, dnn, a1, a2, squared=False))
    np.testing.assert_allclose(grad_adaptive, tape.gradient(fixed, dap).numpy())
    np.testing.assert_allclose(float(adaptive), float(fixed), rtol=1e-6)


def test_unreachable_margin_warns_and_reachable_does_not():
    with pytest.warns(UserWarning, match="alpha1=1.0 can never be met"):
        QuadrupletLossLayer(alpha1=1.0, alpha2=0.5, max_distance=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        QuadrupletLossLayer(alpha1=0.5, alpha2=0.25, max_distance=1.0)
        QuadrupletLossLayer(alpha1=1.0, alpha2=0.5, max_distance=2.0)  # L2 on the unit sphere
        QuadrupletLossLayer(alpha1=1.0, alpha2=0.5, max_distance=1.0, adaptive_margin=True)
    with pytest.raises(ValueError, match="alpha2"):
        QuadrupletLossLayer(alpha2=-0.1)


def test_quadruplet_layer_adds_mean_loss_and_round_trips_config():
    d = [RNG.uniform(0, 1, (6, 1)).astype(np.float32) for _ in range(3)]
    layer = QuadrupletLossLayer(alpha1=0.6, alpha2=0.3, squared=False)
    out = layer(d).numpy()
    np.testing.assert_allclose(out, np.concatenate(d, axis=1))
    expected = np_quadruplet(*(x[:, 0] for x in d), 0.6, 0.3, False, False).mean()
    np.testing.assert_allclose(float(layer.losses[0]), expected, rtol=1e-5)
    config = QuadrupletLossLayer.from_config(layer.get_config()).get_config()
    assert config == layer.get_config()
