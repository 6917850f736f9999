"""Triplet miners ``(a, p, n)``: batch-hard, batch-all and semi-hard.

All take a (B, B) dissimilarity matrix (smaller = closer) and labels, and return int64 index
tensors; margins are in the units of the matrix. References: Hermans et al. 2017, "In Defense
of the Triplet Loss for Person Re-Identification" (batch-hard, batch-all,
https://arxiv.org/abs/1703.07737); Schroff et al. 2015, "FaceNet" (semi-hard,
https://arxiv.org/abs/1503.03832).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from oneshot.checks import check_choice, check_number
from oneshot.miners.base import Miner, label_masks, positive_pairs, register, sorted_negatives

SEMI_HARD_FALLBACKS = ("farthest", "hardest")


@register
class BatchHardMiner(Miner):
    """For each anchor, its farthest positive and its closest negative (Hermans et al. 2017).

    Returns:
        ``(a, p, n)`` int64 (A,): one triplet per anchor that has a positive and a negative.

    Example:
    >>> dist = LpDistance().pairwise([[0.0], [1.0], [1.5], [3.0]])
    >>> [t.numpy().tolist() for t in BatchHardMiner()(dist, [0, 0, 1, 1])]
    [[0, 1, 2, 3], [1, 0, 3, 2], [2, 2, 1, 1]]
    """

    tuples = "triplets"

    def mine(self, dist: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        # This exact op sequence reproduces the committed batch-hard runs bit for bit.
        positive, negative = label_masks(labels)
        d = tf.stop_gradient(dist)
        inf = tf.constant(np.inf, d.dtype)
        p = tf.argmax(tf.where(positive, d, -inf), axis=1)
        n = tf.argmin(tf.where(negative, d, inf), axis=1)
        valid = tf.logical_and(tf.reduce_any(positive, 1), tf.reduce_any(negative, 1))
        a = tf.where(valid)[:, 0]
        return a, tf.gather(p, a), tf.gather(n, a)


@register
class BatchAllMiner(Miner):
    """Every valid triplet, or only the active ones ``d_an < d_ap + margin`` (Hermans 2017).

    Per positive pair (a, p) the kept negatives are a prefix of a's negatives sorted by
    distance; its length is a ``searchsorted`` and a ragged range lists the prefix, so working
    memory is O(B^2) plus the output. The output itself holds every kept triplet (up to
    O(B^3) of them); a loss that only needs their sum need not list them.

    Args:
        margin: keep the triplets with ``d_ap - d_an + margin > 0``; None keeps every valid
            triplet. Defaults to None.

    Returns:
        ``(a, p, n)`` int64 (T,), grouped by positive pair in row-major order, negatives from
        closest to farthest.
    """

    tuples = "triplets"

    def __init__(self, margin: float | None = None) -> None:
        self.margin = check_number("margin", margin, allow_none=True, minimum=None)

    def mine(self, dist: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        positive, negative = label_masks(labels)
        values, order = sorted_negatives(dist, negative)
        a, p = positive_pairs(positive)
        if self.margin is None:
            per_anchor = tf.reduce_sum(tf.cast(negative, tf.int32), axis=1)
            per_pair = tf.gather(per_anchor, a)
        else:
            thresholds = tf.stop_gradient(dist) + self.margin
            counts = tf.searchsorted(values, thresholds, side="left")  # strictly below
            per_pair = tf.gather_nd(counts, tf.stack([a, p], 1))
        ranks = tf.ragged.range(per_pair)
        pair_of = ranks.value_rowids()
        aa = tf.gather(a, pair_of)
        n = tf.gather_nd(order, tf.stack([aa, tf.cast(ranks.flat_values, aa.dtype)], 1))
        return aa, tf.gather(p, pair_of), tf.cast(n, tf.int64)

    def get_config(self) -> dict[str, Any]:
        return {"margin": self.margin}


@register
class SemiHardMiner(Miner):
    """One negative per positive pair (a, p): the closest negative farther than the positive.

    ``fallback="farthest"`` (default) is TensorFlow Addons' ``TripletSemiHardLoss`` rule: the
    closest negative with ``d_an > d_ap``; if the pair has none, the anchor's *farthest*
    negative. It has no margin (the loss's margin plays no part in the choice), so a
    ``margin`` is refused with it. ``fallback="hardest"`` is FaceNet's window as oneshot 0.1
    used it: the closest negative with ``d_ap < d_an < d_ap + margin``; if there is none, the
    anchor's *closest* negative.

    Args:
        margin: width of the semi-hard window, ``fallback="hardest"`` only. Defaults to None
            (0.2 with ``fallback="hardest"``).
        fallback: "farthest" or "hardest", see above. Defaults to "farthest".

    Returns:
        ``(a, p, n)`` int64 (M,): one triplet per positive pair whose anchor has a negative,
        in row-major order of the pairs.
    """

    tuples = "triplets"

    def __init__(self, margin: float | None = None, fallback: str = "farthest") -> None:
        self.fallback = check_choice("fallback", fallback, SEMI_HARD_FALLBACKS)
        if self.fallback == "farthest" and margin is not None:
            raise ValueError(
                "Invalid value for argument `margin`. The semi-hard rule with "
                "fallback='farthest' (TensorFlow Addons') has no margin: it would be ignored. "
                "Pass SemiHardMiner() for that rule, or SemiHardMiner(margin, "
                f"fallback='hardest') for FaceNet's window. Received: margin={margin!r}"
            )
        if self.fallback == "hardest":
            margin = check_number("margin", 0.2 if margin is None else margin)
        self.margin = margin

    def mine(self, dist: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        positive, negative = label_masks(labels)
        values, order = sorted_negatives(dist, negative)
        d = tf.stop_gradient(dist)
        # For every pair (a, j) at once, all (B, B): the first negative of a farther than d_aj.
        first_above = tf.searchsorted(values, d, side="right")
        first_above = tf.minimum(first_above, tf.shape(values, out_type=tf.int32)[1] - 1)
        candidate = tf.gather(values, first_above, batch_dims=1)
        if self.fallback == "hardest":
            found = candidate < d + self.margin  # inf (no negative above d_aj) compares False
            otherwise = tf.zeros_like(first_above)  # rank 0: the closest negative
        else:
            found = candidate < np.inf
            n_neg = tf.reduce_sum(tf.cast(negative, tf.int32), axis=1, keepdims=True)
            otherwise = tf.broadcast_to(tf.maximum(n_neg - 1, 0), tf.shape(first_above))
        choice = tf.gather(order, tf.where(found, first_above, otherwise), batch_dims=1)
        has_negative = tf.reduce_any(negative, axis=1)
        pairs = tf.where(tf.logical_and(positive, has_negative[:, None]))
        n = tf.cast(tf.gather_nd(choice, pairs), tf.int64)
        return pairs[:, 0], pairs[:, 1], n

    def get_config(self) -> dict[str, Any]:
        return {"margin": self.margin, "fallback": self.fallback}
