"""Distance-weighted sampling (Wu et al. 2017): negatives drawn uniformly over distance.

On the unit hypersphere of dimension n, the distance d between two random points has density

    q(d) ∝ d^(n - 2) * (1 - d^2 / 4)^((n - 3) / 2)

so negatives drawn uniformly from a batch are nearly all at d ≈ sqrt(2). Weighting each
negative by 1 / q(d) spreads the draws over the whole range of distances. As in the paper,
d is clipped below at ``cutoff`` (the weights of very close pairs, whose gradients are noise,
stay bounded) and negatives at ``d >= nonzero_loss_cutoff`` (which carry no margin loss) get
weight 0; an anchor without any weighted negative draws uniformly among its negatives.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from oneshot.checks import check_number
from oneshot.miners.base import Miner, label_masks, register


@register
class DistanceWeightedMiner(Miner):
    """Distance-weighted sampling of Wu et al. 2017: one negative per positive pair.

    ``miner(dist, labels)`` takes the (B, B) Euclidean distances of UNIT-NORM embeddings of
    dimension ``embedding_dim``. For every anchor a and each of its positives p (every ordered
    positive pair), it draws one negative n of a with probability proportional to
    ``1 / q(max(d_an, cutoff))`` over the negatives with ``d_an < nonzero_loss_cutoff``
    (uniformly over all of a's negatives if none is that close). Anchors without a positive
    or without a negative give no pair.

    Unit norm is required (q is the density on the unit sphere). The miner sees only
    distances, so it checks what they can show: a distance above 2 (+1e-3), impossible between
    unit vectors, raises ``InvalidArgumentError`` (in eager and graph mode alike).
    ``MarginLoss`` also checks the embeddings' norms and dimension when given this miner.

    Sampling uses a stateless random op (``keras.random.categorical``) fed by a
    ``keras.random.SeedGenerator``: each call advances the seed, so it draws afresh at every
    training step inside ``fit`` (a traced function), and two miners with the same ``seed``
    draw the same sequence.

    Args:
        embedding_dim: n, the dimension of the embeddings (>= 2): q depends on it.
        cutoff: distances are clipped below at this value. Defaults to 0.5 (the paper).
        nonzero_loss_cutoff: negatives at this distance or farther are not drawn. Defaults to
            1.4 (the paper's code: beta + alpha of the margin loss).
        seed: seed of the draws; None picks one from Keras's global seed. Defaults to None.

    Returns:
        ``(a1, p, a2, n)`` int64 with ``a1 == a2``: the positive pairs (a, p) in row-major
        order and, at the same position, the negative pair (a, n) drawn for it, so that
        ``(a1[t], p[t], n[t])`` is a triplet.

    Reference: Wu, Manmatha, Smola, Krähenbühl, "Sampling Matters in Deep Embedding Learning",
    ICCV 2017, https://arxiv.org/abs/1706.07567 (section 4).
    """

    tuples = "pairs"

    def __init__(
        self,
        embedding_dim: int,
        cutoff: float = 0.5,
        nonzero_loss_cutoff: float = 1.4,
        seed: int | None = None,
    ) -> None:
        ok = isinstance(embedding_dim, (int, np.integer)) and not isinstance(embedding_dim, bool)
        if not ok or embedding_dim < 2:
            raise ValueError(
                "Invalid value for argument `embedding_dim`. Expected an integer >= 2 (the "
                f"dimension of the embeddings). Received: embedding_dim={embedding_dim!r}"
            )
        self.embedding_dim = int(embedding_dim)
        self.cutoff = check_number("cutoff", cutoff)
        self.nonzero_loss_cutoff = check_number("nonzero_loss_cutoff", nonzero_loss_cutoff)
        if seed is not None and (not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(
                "Invalid value for argument `seed`. Expected an integer >= 0 or None. "
                f"Received: seed={seed!r}"
            )
        self.seed = None if seed is None else int(seed)
        self._generator = keras.random.SeedGenerator(self.seed)

    def log_weights(self, dist: tf.Tensor) -> tf.Tensor:
        """``-log q(max(d, cutoff))`` (up to a constant), finite for d in [0, 2)."""
        n = float(self.embedding_dim)
        d = tf.clip_by_value(dist, self.cutoff, 2.0 - 1e-6) if self.cutoff < 2 else dist
        d = tf.maximum(d, 1e-12)
        return (2.0 - n) * tf.math.log(d) - 0.5 * (n - 3.0) * tf.math.log(1.0 - 0.25 * d * d)

    def mine(self, dist: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, ...]:
        d = tf.stop_gradient(dist)
        check = tf.debugging.assert_less_equal(
            d,
            tf.constant(2.0 + 1e-3, d.dtype),
            message="DistanceWeightedMiner needs Euclidean distances of unit-norm embeddings, "
            "which are at most 2; a larger distance arrived",
        )
        with tf.control_dependencies([check]):
            d = tf.identity(d)
        positive, negative = label_masks(labels)
        neg_inf = tf.constant(-np.inf, d.dtype)
        near = tf.logical_and(negative, d < self.nonzero_loss_cutoff)
        weighted = tf.where(near, self.log_weights(d), neg_inf)
        has_near = tf.reduce_any(near, axis=1, keepdims=True)
        uniform = tf.where(negative, tf.zeros_like(d), neg_inf)
        logits = tf.where(has_near, weighted, uniform)
        # Rows without any negative: any finite logits (their pairs are dropped below).
        has_negative = tf.reduce_any(negative, axis=1)
        logits = tf.where(has_negative[:, None], logits, tf.zeros_like(d))
        logits -= tf.reduce_max(logits, axis=1, keepdims=True)
        batch = tf.shape(d)[0]
        draws = keras.random.categorical(logits, batch, dtype="int64", seed=self._generator)
        pairs = tf.where(tf.logical_and(positive, has_negative[:, None]))
        a, p = pairs[:, 0], pairs[:, 1]
        # The t-th positive of anchor a (in column order) takes draw t of row a.
        rank = tf.cumsum(tf.cast(positive, tf.int64), axis=1) - 1
        n = tf.gather_nd(draws, tf.stack([a, tf.gather_nd(rank, pairs)], axis=1))
        return a, p, a, n

    def get_config(self) -> dict[str, Any]:
        return {
            "embedding_dim": self.embedding_dim,
            "cutoff": self.cutoff,
            "nonzero_loss_cutoff": self.nonzero_loss_cutoff,
            "seed": self.seed,
        }
