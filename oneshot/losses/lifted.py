"""Lifted structure losses: every negative of a positive pair's two ends, in one smooth term.

Song et al. (smooth form), for each positive pair (i, j):

    J_ij = log( sum_{k in N_i} exp(margin - D_ik) + sum_{l in N_j} exp(margin - D_jl) ) + D_ij
    L = 1 / (2 |P|) * sum_{(i, j) in P} max(J_ij, 0)^2

Hermans et al.'s generalisation, per anchor a:

    L_a = max( log sum_{p in P_a} exp(D_ap) + log sum_{n in N_a} exp(margin - D_an), 0 )

``D`` is the loss's dissimilarity (Euclidean by default; ``1 - cos`` for the cosine). Both are
computed on the (B, B) matrix: a log-sum-exp per row over the negatives (or positives), then
gathered for the pairs, so memory stays O(B^2).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from oneshot.distances import Distance
from oneshot.losses.base import MetricLoss, check_margin, pair_values
from oneshot.losses.pair_sets import all_pairs, masked_logsumexp, pair_masks, row_values
from oneshot.pieces import register


@register
class LiftedStructureLoss(MetricLoss):
    """Lifted structured embedding loss, the smooth form (Song et al. 2016), in-batch.

    ``y_true``: integer class labels (B,); ``y_pred``: embeddings (B, D). For every ordered
    positive pair (i, j) (both orders: the paper's unordered sum over ``|P|`` pairs equals the
    mean over ordered pairs), ``l_ij = max(J_ij, 0)^2 / 2`` with
    ``J_ij = log(sum_{k in N_i} exp(margin - D_ik) + sum_{l in N_j} exp(margin - D_jl)) + D_ij``,
    anchored at i for the reducer; with the default mean this is the paper's
    ``1 / (2|P|) sum_P max(J, 0)^2``. A pair whose two ends have no negative gives 0.

    Args:
        margin: alpha. Defaults to 1.0 (the paper).
        distance: Defaults to ``LpDistance()`` (Euclidean, the paper's D).
        miner: a pair miner: its positive pairs are the terms, its negative pairs (a2, n) the
            sets N_i. None uses every pair of the batch. Defaults to None.
        reducer: over the positive pairs. Defaults to ``MeanReducer()``.

    Returns:
        Per-sample losses (B,) whose batch mean is the loss.

    Example:
    >>> loss = LiftedStructureLoss(margin=1.0)
    >>> model.compile("adam", loss=loss)  # doctest: +SKIP

    Reference: Song, Xiang, Jegelka, Savarese, "Deep Metric Learning via Lifted Structured
    Feature Embedding", CVPR 2016, https://arxiv.org/abs/1511.06452.
    """

    tuples = "pairs"

    requires_two_classes = True

    def __init__(
        self,
        margin: float = 1.0,
        distance: Distance | str | dict | None = None,
        miner: Any = None,
        reducer: Any = None,
        name: str = "lifted_structure_loss",
        reduction: str = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        super().__init__(distance, miner, reducer, name, reduction, dtype)
        self.margin = check_margin(margin)

    def default_tuples(self, dist, labels):
        return all_pairs(dist, labels)

    def per_sample(self, dist, labels, indices, batch_size):
        a1, p = indices[0], indices[1]
        _, negative = pair_masks(indices, batch_size)
        lse, has_negative = masked_logsumexp(self.margin - dist, negative)
        # log(exp(lse_i) + exp(lse_j)) for each positive pair, 0 terms for empty sets.
        lse_i, lse_j = row_values(lse, a1), row_values(lse, p)
        has_i, has_j = row_values(has_negative, a1), row_values(has_negative, p)
        top = tf.stop_gradient(
            tf.maximum(tf.where(has_i, lse_i, lse_j), tf.where(has_j, lse_j, lse_i))
        )
        zero = tf.zeros_like(lse_i)
        total_i = tf.where(has_i, tf.exp(lse_i - top), zero)
        total = total_i + tf.where(has_j, tf.exp(lse_j - top), zero)
        either = tf.logical_or(has_i, has_j)
        log_total = tf.math.log(tf.where(either, total, tf.ones_like(total))) + top
        j = log_total + pair_values(dist, a1, p)
        losses = tf.where(either, 0.5 * tf.square(tf.nn.relu(j)), tf.zeros_like(j))
        return self.reducer(losses, a1, batch_size)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "margin": self.margin}


@register
class GeneralizedLiftedStructureLoss(MetricLoss):
    """Generalised lifted structure loss (Hermans et al. 2017), in-batch: one term per anchor.

    ``y_true``: integer class labels (B,); ``y_pred``: embeddings (B, D). For each anchor a with
    at least one positive and one negative pair,
    ``l_a = max(log sum_{p in P_a} exp(D_ap) + log sum_{n in N_a} exp(margin - D_an), 0)``:
    a smooth batch-hard (the log-sum-exps are soft maxima of the positive distances and of the
    negative margins). Anchors without both give no term.

    Args:
        margin: m. Defaults to 1.0 (as the lifted structure loss; Hermans et al. give none).
        distance: Defaults to ``LpDistance()`` (Euclidean).
        miner: a pair miner: its pairs (a1, p) and (a2, n) form the sets P_a and N_a. None uses
            every pair of the batch. Defaults to None.
        reducer: over the anchors with a term. Defaults to ``MeanReducer()``.

    Returns:
        Per-sample losses (B,) whose batch mean is the loss.

    Reference: Hermans, Beyer, Leibe, "In Defense of the Triplet Loss for Person
    Re-Identification", 2017, https://arxiv.org/abs/1703.07737.
    """

    tuples = "pairs"

    requires_two_classes = True

    def __init__(
        self,
        margin: float = 1.0,
        distance: Distance | str | dict | None = None,
        miner: Any = None,
        reducer: Any = None,
        name: str = "generalized_lifted_structure_loss",
        reduction: str = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        super().__init__(distance, miner, reducer, name, reduction, dtype)
        self.margin = check_margin(margin)

    def default_tuples(self, dist, labels):
        return all_pairs(dist, labels)

    def per_sample(self, dist, labels, indices, batch_size):
        positive, negative = pair_masks(indices, batch_size)
        lse_pos, has_pos = masked_logsumexp(dist, positive)
        lse_neg, has_neg = masked_logsumexp(self.margin - dist, negative)
        anchors = tf.where(tf.logical_and(has_pos, has_neg))[:, 0]
        losses = tf.nn.relu(row_values(lse_pos + lse_neg, anchors))
        return self.reducer(losses, anchors, batch_size)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "margin": self.margin}
