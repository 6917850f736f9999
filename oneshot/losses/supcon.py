"""Supervised contrastive loss (Khosla et al. 2020), the L_out form.

For an anchor i with positives P(i) (same label) and A(i) every other sample:

    l_i = -1/|P(i)| sum_{p in P(i)} log( exp(z_i . z_p / tau) / sum_{a in A(i)} exp(z_i . z_a / tau) )

The mean over the positives is OUTSIDE the log (the paper's L_out, which it found better than
L_in), and the denominator holds the anchor's other positives too (unlike NT-Xent's).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from oneshot.checks import check_positive
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
class SupConLoss(MetricLoss):
    """Supervised contrastive loss (SupCon, L_out), in-batch: one term per anchor.

    ``y_true``: integer class labels (B,); ``y_pred``: embeddings (B, D). With logits
    ``z = s / temperature`` (``-D / temperature`` for a distance; constant shifts cancel),
    ``l_i = log sum_{a in A(i)} exp(z_ia) - mean_{p in P(i)} z_ip``, where P(i) are the
    anchor's positive pairs and A(i) its positive and negative pairs. Anchors without a
    positive pair, or without a negative in the batch, give no term; a batch of one class is
    refused with an error naming `y_true` (the paper's formula would still pull it together).

    Args:
        temperature: tau (> 0). Defaults to 0.1 (the paper).
        distance: Defaults to ``CosineSimilarity()`` (the paper normalises the projections).
        miner: a pair miner: its pairs form P(i) and A(i). None uses every pair of the batch
            (the paper). Defaults to None.
        reducer: over the anchors with a term. Defaults to ``MeanReducer()`` (the paper sums
            over the batch: ``SumReducer()`` gives its scale).

    Returns:
        Per-sample losses (B,) whose batch mean is the loss.

    Reference: Khosla, Teterwak, Wang, Sarna, Tian, Isola, Maschinot, Liu, Krishnan,
    "Supervised Contrastive Learning", NeurIPS 2020, https://arxiv.org/abs/2004.11362 (eq. 2).
    """

    tuples = "pairs"

    requires_two_classes = True

    def __init__(
        self,
        temperature: float = 0.1,
        distance: Distance | str | dict | None = None,
        miner: Any = None,
        reducer: Any = None,
        name: str = "supcon_loss",
        reduction: str = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        distance = CosineSimilarity() if distance is None else distance
        super().__init__(distance, miner, reducer, name, reduction, dtype)
        self.temperature = check_positive("temperature", temperature)

    def default_tuples(self, dist, labels):
        return all_pairs(dist, labels)

    def per_sample(self, dist, labels, indices, batch_size):
        positive, negative = pair_masks(indices, batch_size)
        logits = -dist / self.temperature
        lse, _ = masked_logsumexp(logits, tf.logical_or(positive, negative))
        count = tf.reduce_sum(tf.cast(positive, logits.dtype), axis=1)
        total = tf.reduce_sum(tf.where(positive, logits, tf.zeros_like(logits)), axis=1)
        mean_positive = total / tf.maximum(count, 1.0)
        has_term = tf.logical_and(contrastable_anchors(labels), count > 0)
        anchors = tf.where(has_term)[:, 0]
        losses = row_values(lse - mean_positive, anchors)
        return self.reducer(losses, anchors, batch_size)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "temperature": self.temperature}
