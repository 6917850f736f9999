"""Margin-based quadruplet mining (Chen et al. 2017, "Beyond triplet loss: a deep quadruplet
network for person re-identification", https://arxiv.org/abs/1704.01719).

A quadruplet (a, p, n, n2) adds to the triplet (a, p, n) a second negative n2 whose class
differs from both a's and n's; the loss then also pushes the negative pair (n, n2) farther than
the positive pair (a, p), by a weaker margin. Both functions take a (B, B) dissimilarity matrix
(smaller = closer) and labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from oneshot.checks import check_number
from oneshot.miners.base import Miner, label_masks, positive_pairs, register


def adaptive_margins(
    dist: tf.Tensor, labels: tf.Tensor, w1: float = 1.0, w2: float = 0.5
) -> tuple[tf.Tensor, tf.Tensor]:
    """Chen et al.'s adaptive margins ``(w1 * gap, w2 * gap)``, ``gap = max(mu_n - mu_p, 0)``.

    ``mu_p`` and ``mu_n`` are the batch means of the positive and negative pair values of
    ``dist`` (no gradient); both margins are 0 when the batch lacks positives or negatives.
    :class:`QuadrupletMarginMiner` with ``adaptive_margin=True`` and the quadruplet loss call
    this same function, so they agree on the margins.

    Args:
        dist: (B, B) dissimilarities. labels: (B,).
        w1: weight of the first (anchor-negative) margin. Defaults to 1.0 (the paper).
        w2: weight of the second (negative-pair) margin. Defaults to 0.5 (the paper).

    Returns:
        ``(alpha1, alpha2)``: scalar tensors of ``dist``'s dtype.
    """
    positive, negative = label_masks(labels)
    d = tf.stop_gradient(dist)
    zero = tf.zeros_like(d)
    n_pos = tf.reduce_sum(tf.cast(positive, d.dtype))
    n_neg = tf.reduce_sum(tf.cast(negative, d.dtype))
    mu_p = tf.math.divide_no_nan(tf.reduce_sum(tf.where(positive, d, zero)), n_pos)
    mu_n = tf.math.divide_no_nan(tf.reduce_sum(tf.where(negative, d, zero)), n_neg)
    both = tf.logical_and(n_pos > 0, n_neg > 0)
    gap = tf.where(both, tf.maximum(mu_n - mu_p, 0.0), tf.zeros_like(mu_p))
    return w1 * gap, w2 * gap


@register
class QuadrupletMarginMiner(Miner):
    """Margin-based quadruplet mining (Chen et al. 2017) in O(B^2) memory.

    For every positive pair (a, p): the hardest (closest) negative ``n`` of ``a`` for the first
    term, and the hardest (closest) negative pair ``(n, n2)`` whose classes both differ from
    a's for the second. Only tuples violating their margin are kept:
    ``d_ap - d_an + alpha1 > 0`` and ``d_ap - d_{n n2} + alpha2 > 0``.

    The hardest pair avoiding class c comes from three masked minima: the global closest
    negative pair (classes c1, c2) serves every class but c1 and c2, which get the closest pair
    avoiding them.

    Args:
        alpha1: first margin. Defaults to 1.0 (the paper).
        alpha2: second margin. Defaults to 0.5 (the paper).
        adaptive_margin: use :func:`adaptive_margins` of the batch (weights ``w1``, ``w2``)
            instead of ``alpha1``, ``alpha2``. Defaults to False.
        w1, w2: weights of the adaptive margins. Default to 1.0 and 0.5 (the paper).

    Returns:
        ``((a, p, n), (a, p, n, n2))``: int64 index tensors of the kept triplets and
        quadruplets, each in row-major order of the positive pairs.
    """

    tuples = "quadruplets"

    def __init__(
        self,
        alpha1: float = 1.0,
        alpha2: float = 0.5,
        adaptive_margin: bool = False,
        w1: float = 1.0,
        w2: float = 0.5,
    ) -> None:
        self.alpha1 = check_number("alpha1", alpha1, minimum=None)
        self.alpha2 = check_number("alpha2", alpha2, minimum=None)
        self.adaptive_margin = bool(adaptive_margin)
        self.w1 = check_number("w1", w1)
        self.w2 = check_number("w2", w2)

    def margins(self, dist: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``(alpha1, alpha2)`` this miner applies to ``dist``: scalar tensors of its dtype."""
        if self.adaptive_margin:
            return adaptive_margins(dist, labels, self.w1, self.w2)
        return tf.constant(self.alpha1, dist.dtype), tf.constant(self.alpha2, dist.dtype)

    def mine(self, dist: tf.Tensor, labels: tf.Tensor):
        alpha1, alpha2 = self.margins(dist, labels)
        # This exact op sequence reproduces the committed quadruplet runs bit for bit.
        positive, negative = label_masks(labels)
        d = tf.stop_gradient(dist)
        inf = tf.constant(np.inf, d.dtype)
        b = tf.shape(d, out_type=tf.int64)[0]
        a, p = positive_pairs(positive)
        d_ap = tf.gather_nd(d, tf.stack([a, p], 1))
        hardest_n = tf.argmin(tf.where(negative, d, inf), axis=1)
        has_neg = tf.reduce_any(negative, 1)
        n = tf.gather(hardest_n, a)
        d_an = tf.gather_nd(d, tf.stack([a, n], 1))
        keep1 = tf.logical_and(tf.gather(has_neg, a), d_ap - d_an + alpha1 > 0)
        k1 = tf.where(keep1)[:, 0]
        triplets = (tf.gather(a, k1), tf.gather(p, k1), tf.gather(n, k1))

        def closest_pair(mask):
            flat = tf.argmin(tf.reshape(tf.where(mask, d, inf), (-1,)))
            return flat // b, flat % b, tf.reduce_any(mask)

        i0, j0, _ = closest_pair(negative)
        c1, c2 = tf.gather(labels, i0), tf.gather(labels, j0)

        def avoiding(c):
            off = tf.not_equal(labels, c)
            mask = tf.logical_and(negative, tf.logical_and(off[:, None], off[None, :]))
            return closest_pair(mask)

        i1, j1, ok1 = avoiding(c1)
        i2, j2, ok2 = avoiding(c2)
        la = tf.gather(labels, a)
        is1, is2 = tf.equal(la, c1), tf.equal(la, c2)
        ni = tf.where(is1, i1, tf.where(is2, i2, i0))
        nj = tf.where(is1, j1, tf.where(is2, j2, j0))
        exists = tf.where(is1, ok1, tf.where(is2, ok2, tf.reduce_any(negative)))
        d_nn = tf.gather_nd(d, tf.stack([ni, nj], 1))
        keep2 = tf.where(tf.logical_and(exists, d_ap - d_nn + alpha2 > 0))[:, 0]
        quads = tuple(tf.gather(x, keep2) for x in (a, p, ni, nj))
        return triplets, quads

    def get_config(self) -> dict[str, Any]:
        return {
            "alpha1": self.alpha1,
            "alpha2": self.alpha2,
            "adaptive_margin": self.adaptive_margin,
            "w1": self.w1,
            "w2": self.w2,
        }
