"""Circle loss (Sun et al. 2020): each similarity weighted by its distance from its optimum.

Sun, Cheng, Zhang, Zhang, Zheng, Wang, Wei, "Circle Loss: A Unified Perspective of Pair
Similarity Optimization", CVPR 2020, https://arxiv.org/abs/2002.10857. Per anchor, with the
cosine similarities s_p of its positives and s_n of its negatives:

    L = log(1 + sum_n exp(gamma a_n (s_n - m)) * sum_p exp(-gamma a_p (s_p - 1 + m)))
    a_p = [1 + m - s_p]_+,    a_n = [s_n + m]_+

The paper treats the weights a_p and a_n as constants ("non-negative weighting factors"; its
gradient analysis, eq. 7, holds them fixed), as pytorch-metric-learning does:
:class:`CircleLoss` stops their gradient. ``keras.losses.Circle``, which differentiates through
them (the same values, other gradients), stays available as :data:`KerasCircleLoss`.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from oneshot.checks import check_positive
from oneshot.distances import CosineSimilarity, Distance
from oneshot.losses.base import MetricLoss, check_margin
from oneshot.losses.pair_sets import all_pairs, masked_logsumexp, pair_masks, row_values
from oneshot.pieces import register
from oneshot.reducers import MeanNonZeroReducer

#: Keras's own Circle loss (``keras.losses.Circle``): its weights a_p, a_n carry gradient.
KerasCircleLoss = keras.losses.Circle


@register
class CircleLoss(MetricLoss):
    """Circle loss (Sun et al. 2020), in-batch, with constant weights a_p and a_n.

    ``y_true``: integer class labels (B,); ``y_pred``: embeddings (B, D). Per anchor i with a
    positive and a negative pair, ``l_i = softplus(LSE_p + LSE_n)`` with
    ``LSE_p = log sum_p exp(-gamma a_p (s_ip - 1 + m))``,
    ``LSE_n = log sum_n exp(gamma a_n (s_in - m))``, ``a_p = [1 + m - s_ip]_+`` and
    ``a_n = [s_in + m]_+`` held constant for the gradient (the paper).

    Args:
        gamma: the scale (> 0). Defaults to 80.0 (the paper's).
        margin: m, the relaxation (>= 0). Defaults to 0.4 (the paper's 0.25 for face
            recognition, 0.4 for fine-grained retrieval; Keras's and
            pytorch-metric-learning's default).
        distance: a similarity. Defaults to ``CosineSimilarity()`` (the paper).
        miner: a pair miner; None uses every pair of the batch. Defaults to None.
        reducer: over the anchors. Defaults to ``MeanNonZeroReducer()``.

    Returns:
        Per-sample losses (B,) whose batch mean is the loss.

    Example:
    >>> model = build_online(conv4(), loss=CircleLoss(gamma=80.0, margin=0.4))  # doctest: +SKIP
    """

    default_reducer = MeanNonZeroReducer
    requires_two_classes = True
    tuples = "pairs"

    def __init__(
        self,
        gamma: float = 80.0,
        margin: float = 0.4,
        distance: Distance | str | dict | None = None,
        miner: Any = None,
        reducer: Any = None,
        name: str = "circle_loss",
        reduction: str = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        distance = CosineSimilarity() if distance is None else distance
        super().__init__(distance, miner, reducer, name, reduction, dtype)
        if not self.distance.is_similarity:
            raise ValueError(
                "Invalid value for argument `distance`. Circle loss's margins are on the "
                "similarity scale: expected a similarity such as CosineSimilarity(). "
                f"Received: distance={distance!r}"
            )
        self.gamma = check_positive("gamma", gamma)
        self.margin = check_margin(margin)

    def default_tuples(self, dist, labels):
        return all_pairs(dist, labels)

    def per_sample(self, dist, labels, indices, batch_size):
        positive, negative = pair_masks(indices, batch_size)
        sim = self.distance.dissimilarity(tf.zeros((), dist.dtype)) - dist  # slope -1
        m = self.margin
        a_p = tf.stop_gradient(tf.nn.relu(1.0 + m - sim))
        a_n = tf.stop_gradient(tf.nn.relu(sim + m))
        pos, has_pos = masked_logsumexp(-self.gamma * a_p * (sim - (1.0 - m)), positive)
        neg, has_neg = masked_logsumexp(self.gamma * a_n * (sim - m), negative)
        anchors = tf.where(tf.logical_and(has_pos, has_neg))[:, 0]
        losses = tf.math.softplus(row_values(pos + neg, anchors))
        return self.reducer(losses, anchors, batch_size)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "gamma": self.gamma, "margin": self.margin}
