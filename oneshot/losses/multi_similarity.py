"""Multi-similarity loss (Wang et al., CVPR 2019): soft weights from self- and relative similarity.

For each anchor i, on its mined positive pairs P_i and negative pairs N_i:

    L_i = 1/alpha * log(1 + sum_{k in P_i} exp(-alpha (S_ik - lambda)))
        + 1/beta  * log(1 + sum_{k in N_i} exp( beta  (S_ik - lambda)))

The paper mines the pairs first (``MultiSimilarityMiner(epsilon=0.1)``, whose rules are the paper's) and
uses the cosine similarity S. With any other distance, ``S_ik - lambda`` is read on the
dissimilarity scale as ``dissimilarity(lambda) - D_ik`` (slope -1: for the cosine,
``(1 - lambda) - (1 - S) = S - lambda`` exactly; for a distance, ``lambda - D``), so the loss
is one body for similarities and distances.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from oneshot.checks import check_number, check_positive
from oneshot.distances import CosineSimilarity, Distance
from oneshot.losses.base import MetricLoss
from oneshot.losses.pair_sets import (
    all_pairs,
    contrastable_anchors,
    masked_logsumexp,
    pair_masks,
    row_values,
)
from oneshot.pieces import register


@register
class MultiSimilarityLoss(MetricLoss):
    """Multi-similarity loss (Wang et al. 2019), in-batch: one term per anchor.

    ``y_true``: integer class labels (B,); ``y_pred``: embeddings (B, D). Per anchor i,
    ``l_i = log(1 + sum_{P_i} exp(-alpha (S_ik - base))) / alpha
    + log(1 + sum_{N_i} exp(beta (S_ik - base))) / beta`` over the pairs the miner keeps.
    Every anchor with a positive and a negative in the batch has a term (0 when the miner kept
    none of its pairs, as in the paper's mean over the batch); the others have none, so a
    batch of distinct labels gives 0 (a batch of one class is an error naming `y_true`).

    Args:
        alpha: scale of the positive pairs (> 0). Defaults to 2.0 (the paper).
        beta: scale of the negative pairs (> 0). Defaults to 50.0 (the paper).
        base: lambda, the similarity margin, in the units of the distance's values (a
            similarity for similarities). Defaults to 0.5 (the paper; ``lambda`` is a Python
            keyword, pytorch-metric-learning calls it ``base`` too).
        distance: Defaults to ``CosineSimilarity()`` (the paper).
        miner: a pair miner; the paper's is ``MultiSimilarityMiner(epsilon=0.1)``. None uses
            every pair of the batch (no mining). Defaults to None.
        reducer: over the anchors with a term. Defaults to ``MeanReducer()``.

    Returns:
        Per-sample losses (B,) whose batch mean is the loss.

    Example:
    >>> loss = MultiSimilarityLoss(miner=MultiSimilarityMiner(epsilon=0.1))
    >>> model.compile("adam", loss=loss)  # doctest: +SKIP

    Reference: Wang, Han, Huang, Dong, Scott, "Multi-Similarity Loss with General Pair
    Weighting for Deep Metric Learning", CVPR 2019, https://arxiv.org/abs/1904.06627.
    """

    tuples = "pairs"

    requires_two_classes = True

    def __init__(
        self,
        alpha: float = 2.0,
        beta: float = 50.0,
        base: float = 0.5,
        distance: Distance | str | dict | None = None,
        miner: Any = None,
        reducer: Any = None,
        name: str = "multi_similarity_loss",
        reduction: str = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        distance = CosineSimilarity() if distance is None else distance
        super().__init__(distance, miner, reducer, name, reduction, dtype)
        self.alpha = check_positive("alpha", alpha)
        self.beta = check_positive("beta", beta)
        self.base = check_number("base", base, minimum=None)

    def default_tuples(self, dist, labels):
        return all_pairs(dist, labels)

    def per_sample(self, dist, labels, indices, batch_size):
        positive, negative = pair_masks(indices, batch_size)
        # S_ik - base on the dissimilarity scale: dissimilarity(base) - D_ik.
        gap = self.distance.dissimilarity(tf.constant(self.base, dist.dtype)) - dist
        pos, _ = masked_logsumexp(-self.alpha * gap, positive, add_one=True)
        neg, _ = masked_logsumexp(self.beta * gap, negative, add_one=True)
        anchors = tf.where(contrastable_anchors(labels))[:, 0]
        losses = row_values(pos / self.alpha + neg / self.beta, anchors)
        return self.reducer(losses, anchors, batch_size)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "alpha": self.alpha, "beta": self.beta, "base": self.base}
