"""NT-Xent (SimCLR, Chen et al. 2020): a softmax of each positive against the anchor's negatives.

For a positive pair (i, j) with similarity ``s`` and temperature tau:

    l(i, j) = -log( exp(s_ij / tau) / (exp(s_ij / tau) + sum_{k in N_i} exp(s_ik / tau)) )

SimCLR's positives are two augmented views of one image; here the positives are the samples
with the same label, so a batch of two views per label IS SimCLR (its denominator, every
k != i, is then the positive plus the negatives). With more positives per anchor each
positive pair has its own term, and the anchor's other positives are left out of the
denominator (pytorch-metric-learning's choice); :class:`oneshot.losses.SupConLoss` keeps them.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from oneshot.checks import check_positive
from oneshot.distances import CosineSimilarity, Distance
from oneshot.losses.base import MetricLoss, pair_values
from oneshot.losses.pair_sets import (
    all_pairs,
    contrastable_anchors,
    masked_logsumexp,
    pair_masks,
    row_values,
)
from oneshot.pieces import register


@register
class NTXentLoss(MetricLoss):
    """Normalised temperature-scaled cross-entropy (NT-Xent, SimCLR), in-batch and supervised.

    ``y_true``: integer class labels (B,); ``y_pred``: embeddings (B, D). One term per positive
    pair (a, p), anchored at a: ``softplus(log sum_{n in N_a} exp(z_an) - z_ap)`` with logits
    ``z = s / temperature`` (``-D / temperature`` for a distance; for the cosine,
    ``-(1 - s) / tau`` differs from ``s / tau`` by a constant, which the softmax ignores).
    Pairs of anchors without a negative in the batch give no term.

    Args:
        temperature: tau (> 0). Defaults to 0.5, SimCLR's value for CIFAR-10 (small images,
            batches of hundreds, like our P x K batches); its ImageNet value, 0.1, goes with
            batches of thousands. (pytorch-metric-learning defaults to 0.07, MoCo's.)
        distance: Defaults to ``CosineSimilarity()`` (the paper).
        miner: a pair miner: its positive pairs are the terms, its negative pairs (a2, n) the
            denominators. None uses every pair of the batch. Defaults to None.
        reducer: over the positive pairs. Defaults to ``MeanReducer()`` (the paper's mean).

    Returns:
        Per-sample losses (B,) whose batch mean is the loss.

    Reference: Chen, Kornblith, Norouzi, Hinton, "A Simple Framework for Contrastive Learning
    of Visual Representations", ICML 2020, https://arxiv.org/abs/2002.05709 (eq. 1).
    """

    tuples = "pairs"

    requires_two_classes = True

    def __init__(
        self,
        temperature: float = 0.5,
        distance: Distance | str | dict | None = None,
        miner: Any = None,
        reducer: Any = None,
        name: str = "ntxent_loss",
        reduction: str = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        distance = CosineSimilarity() if distance is None else distance
        super().__init__(distance, miner, reducer, name, reduction, dtype)
        self.temperature = check_positive("temperature", temperature)

    def default_tuples(self, dist, labels):
        return all_pairs(dist, labels)

    def per_sample(self, dist, labels, indices, batch_size):
        _, negative = pair_masks(indices, batch_size)
        logits = -dist / self.temperature
        lse, _ = masked_logsumexp(logits, negative)  # 0 for an anchor without negatives: l = 0
        keep = row_values(contrastable_anchors(labels), indices[0])
        a, p = (tf.boolean_mask(i, keep) for i in indices[:2])
        losses = tf.math.softplus(row_values(lse, a) - pair_values(logits, a, p))
        has_negative = row_values(tf.reduce_any(negative, axis=1), a)
        losses = tf.where(has_negative, losses, tf.zeros_like(losses))
        return self.reducer(losses, a, batch_size)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "temperature": self.temperature}
