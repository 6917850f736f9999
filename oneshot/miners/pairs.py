"""Pair miners ``(a1, p, a2, n)``: positive pairs (a1, p) and negative pairs (a2, n).

Both take a (B, B) dissimilarity matrix (smaller = closer) and labels; thresholds are in the
units of the matrix. Every ordered pair i != j is considered, so (i, j) and (j, i) both appear.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from oneshot.checks import check_number
from oneshot.miners.base import Miner, label_masks, register


@register
class HardPairMiner(Miner):
    """Pairs that still carry a contrastive loss: positives farther than ``pos_margin`` and
    negatives closer than ``neg_margin``.

    Args:
        pos_margin: keep positive pairs with ``d > pos_margin``; None keeps every positive
            pair. Defaults to 0.0.
        neg_margin: keep negative pairs with ``d < neg_margin``; None keeps every negative
            pair. Defaults to 1.0.

    Returns:
        ``(a1, p, a2, n)`` int64: positive pairs (a1, p) and negative pairs (a2, n), each in
        row-major order.
    """

    tuples = "pairs"

    def __init__(self, pos_margin: float | None = 0.0, neg_margin: float | None = 1.0) -> None:
        self.pos_margin = check_number("pos_margin", pos_margin, allow_none=True, minimum=None)
        self.neg_margin = check_number("neg_margin", neg_margin, allow_none=True, minimum=None)

    def mine(self, dist: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, ...]:
        positive, negative = label_masks(labels)
        d = tf.stop_gradient(dist)
        if self.pos_margin is not None:
            positive = tf.logical_and(positive, d > self.pos_margin)
        if self.neg_margin is not None:
            negative = tf.logical_and(negative, d < self.neg_margin)
        pos, neg = tf.where(positive), tf.where(negative)
        return pos[:, 0], pos[:, 1], neg[:, 0], neg[:, 1]

    def get_config(self) -> dict[str, Any]:
        return {"pos_margin": self.pos_margin, "neg_margin": self.neg_margin}


@register
class MultiSimilarityMiner(Miner):
    """Informative pairs of Wang et al. 2019 ("Multi-Similarity Loss with General Pair
    Weighting", https://arxiv.org/abs/1904.06627), on dissimilarities.

    With ``d`` smaller = closer, for each anchor ``a``:

    - a negative pair (a, n) is kept if ``d_an < max_p d_ap + epsilon``: the negative is closer
      than a's hardest (farthest) positive, up to ``epsilon``;
    - a positive pair (a, p) is kept if ``d_ap > min_n d_an - epsilon``: the positive is
      farther than a's hardest (closest) negative, up to ``epsilon``.

    An anchor with no positive or no negative contributes no pair. For a similarity ``s`` with
    ``d = 1 - s`` this is the paper's ``s_an + epsilon > min_p s_ap`` and
    ``s_ap - epsilon < max_n s_an``.

    Args:
        epsilon: slack of both comparisons (>= 0). Defaults to 0.1 (the paper).

    Returns:
        ``(a1, p, a2, n)`` int64: kept positive pairs (a1, p) and negative pairs (a2, n), each
        in row-major order.
    """

    tuples = "pairs"

    def __init__(self, epsilon: float = 0.1) -> None:
        self.epsilon = check_number("epsilon", epsilon)

    def mine(self, dist: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, ...]:
        positive, negative = label_masks(labels)
        d = tf.stop_gradient(dist)
        inf = tf.constant(np.inf, d.dtype)
        # -inf / +inf for anchors without positives / negatives: then nothing compares True.
        hardest_pos = tf.reduce_max(tf.where(positive, d, -inf), axis=1, keepdims=True)
        hardest_neg = tf.reduce_min(tf.where(negative, d, inf), axis=1, keepdims=True)
        pos = tf.where(tf.logical_and(positive, d > hardest_neg - self.epsilon))
        neg = tf.where(tf.logical_and(negative, d < hardest_pos + self.epsilon))
        return pos[:, 0], pos[:, 1], neg[:, 0], neg[:, 1]

    def get_config(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon}
