"""SphereFace (A-Softmax): a multiplicative angular margin, annealed in from plain softmax.

With W_c L2-normalised (no bias), x the raw embedding and theta_c its angle to W_c, the target
logit ``|x| cos(theta_y)`` becomes ``|x| psi(theta_y)`` where

    psi(theta) = (-1)^k cos(m theta) - 2k,   theta in [k pi / m, (k + 1) pi / m], k = 0..m-1,

monotonically decreasing on [0, pi]. Training starts from (almost) plain softmax and anneals:

    f_y = |x| (lambda cos(theta_y) + psi(theta_y)) / (1 + lambda),
    lambda(t) = max(base (1 + gamma t)^(-power), lambda_min)              (:func:`sphereface_lambda`)

with t the number of training steps so far (the paper's code: base 1000, gamma 0.12, power 1,
lambda_min 5). t is a variable of the loss's head (``loss.head.step``), advanced by one in each
training step (and each direct call of the loss), so it is saved in the run checkpoint with the
class weights and a resumed run continues the schedule. ``model.evaluate`` computes the loss at
the current t without advancing it (:class:`oneshot.losses.heads.LossHeadModel`).
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import numpy as np
import tensorflow as tf

from oneshot.checks import check_count, check_number
from oneshot.losses.heads import updates_state
from oneshot.losses.margin_softmax import softmax_cross_entropy, target_cosines, with_target
from oneshot.losses.proxies import ClassProxies, ProxyLoss, normalize
from oneshot.pieces import register


def sphereface_lambda(
    step: Any, base: float = 1000.0, gamma: float = 0.12, power: float = 1.0,
    lambda_min: float = 5.0,
) -> Any:  # fmt: skip
    """``max(base (1 + gamma step)^(-power), lambda_min)``: the annealing weight after ``step``
    training steps (a number, a numpy array or a tensor)."""
    if isinstance(step, (Real, np.ndarray, list, tuple)):
        return np.maximum(base * (1.0 + gamma * np.asarray(step, float)) ** (-power), lambda_min)
    value = base * tf.pow(1.0 + gamma * tf.cast(step, tf.float64), -power)  # a tensor/variable
    return tf.maximum(value, lambda_min)


def chebyshev(cos: tf.Tensor, m: int) -> tf.Tensor:
    """``cos(m theta)`` as the Chebyshev polynomial T_m(cos theta) (smooth, no arccos)."""
    previous, current = tf.ones_like(cos), cos
    if m == 0:
        return previous
    for _ in range(m - 1):
        previous, current = current, 2.0 * cos * current - previous
    return current


def sphereface_psi(cos: tf.Tensor, m: int) -> tf.Tensor:
    """``psi(theta) = (-1)^k cos(m theta) - 2k`` from ``cos(theta)``; k = floor(m theta / pi)
    (capped at m - 1) is counted from the thresholds cos(j pi / m), without gradient."""
    k = tf.zeros_like(cos)
    for j in range(1, m):
        k += tf.cast(cos <= math.cos(j * math.pi / m), cos.dtype)
    sign = 1.0 - 2.0 * tf.math.floormod(k, 2.0)
    return sign * chebyshev(cos, m) - 2.0 * k


@register
class StepCountingProxies(ClassProxies):
    """:class:`ClassProxies` with a training-step counter ``step`` (int64, not trainable)."""

    def build(self, input_shape) -> None:
        super().build(input_shape)
        self.step = self.add_weight(
            shape=(), dtype="int64", initializer="zeros", trainable=False, name="step"
        )


@register
class SphereFaceLoss(ProxyLoss):
    """SphereFace / A-Softmax loss with the multiplicative angular margin m.

    ``L = -log( exp(f_y) / (exp(f_y) + sum_{c != y} exp(|x| cos(theta_c))) )`` with
    ``f_y = |x| (lambda cos(theta_y) + psi(theta_y)) / (1 + lambda)``, ``psi(theta) = (-1)^k
    cos(m theta) - 2k`` for theta in [k pi/m, (k+1) pi/m], W_c L2-normalised, the embedding x
    not normalised, and ``lambda = max(base (1 + gamma t)^(-power), lambda_min)`` after t
    training steps (see :mod:`oneshot.losses.sphereface`).

    Args:
        num_classes: C, the number of training classes.
        margin: m, an integer >= 1 (1: no margin). Defaults to 4 (the paper's).
        base, gamma, power, lambda_min: the annealing of lambda. Defaults to 1000, 0.12, 1, 5
            (the paper's code).
        embedding_dim, lr_multiplier, initializer: the class weights, see
            :class:`oneshot.losses.proxies.ClassProxies`. Defaults to None, 1.0, normal(0, 1).
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference: Liu, Wen, Yu, Li, Raj, Song, "SphereFace: Deep Hypersphere Embedding for Face
    Recognition", CVPR 2017, arXiv 1704.08063.
    """

    head_class = StepCountingProxies

    def __init__(
        self,
        num_classes: int,
        margin: int = 4,
        base: float = 1000.0,
        gamma: float = 0.12,
        power: float = 1.0,
        lambda_min: float = 5.0,
        embedding_dim: int | None = None,
        lr_multiplier: float = 1.0,
        initializer: Any = None,
        name: str = "sphereface_loss",
        reduction: str = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        self.margin = check_count("margin", margin, 1)
        self.base = check_number("base", base, minimum=0.0)
        self.gamma = check_number("gamma", gamma, minimum=0.0)
        self.power = check_number("power", power, minimum=0.0)
        self.lambda_min = check_number("lambda_min", lambda_min, minimum=0.0)
        super().__init__(
            num_classes, embedding_dim, lr_multiplier, initializer, name, reduction, dtype
        )

    def current_lambda(self) -> float:
        """lambda at the head's current step (0 before it is built)."""
        step = int(self.head.step.numpy()) if self.head is not None and self.head.built else 0
        return float(sphereface_lambda(step, self.base, self.gamma, self.power, self.lambda_min))

    def proxy_loss(self, labels, embeddings, proxies):
        step = self.head.step
        lam = sphereface_lambda(step, self.base, self.gamma, self.power, self.lambda_min)
        lam = tf.cast(lam, embeddings.dtype)
        if not updates_state(self):  # evaluate: lambda at the current step, none counted
            return self.with_lambda(labels, embeddings, proxies, lam)
        with tf.control_dependencies([lam]):
            advance = step.assign_add(1)
        with tf.control_dependencies([advance]):
            return self.with_lambda(labels, embeddings, proxies, lam)

    def with_lambda(self, labels, embeddings, proxies, lam) -> tf.Tensor:
        """Per-sample losses (B,) for a given lambda (no step is counted)."""
        norm = tf.sqrt(tf.maximum(tf.reduce_sum(tf.square(embeddings), -1), 1e-12))  # |x|
        projections = tf.matmul(embeddings, normalize(proxies), transpose_b=True)  # |x| cos
        cos = projections / norm[:, None]
        target = target_cosines(labels, cos)
        mixed = (lam * target + sphereface_psi(target, self.margin)) / (1.0 + lam)
        logits = with_target(labels, cos, mixed) * norm[:, None]
        return softmax_cross_entropy(labels, logits)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "margin": self.margin,
            "base": self.base,
            "gamma": self.gamma,
            "power": self.power,
            "lambda_min": self.lambda_min,
        }
