"""N-pair loss (Sohn 2016): one positive against the other classes' positives, as a softmax.

For N pairs (x_i, x_i+) of N different classes:

    L = 1/N sum_i log(1 + sum_{j != i} exp(f_i . f_j+ - f_i . f_i+))

i.e. a softmax cross-entropy of anchor i over the N positives, the right one being its own.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from oneshot.distances import Distance, DotProductSimilarity
from oneshot.losses.base import MetricLoss, pair_values
from oneshot.losses.pair_sets import masked_logsumexp, row_values
from oneshot.miners import label_masks


def next_positive(labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Each sample's positive: the next sample of its class in batch order, cyclically.

    Returns:
        ``(partner, has_positive)``, both (B,): ``partner[i]`` is the first j > i with the same
        label, else the first j < i (meaningless where ``has_positive`` is False). Within a
        class it is a bijection, so every sample is exactly one anchor's positive.
    """
    positive, _ = label_masks(labels)
    size = tf.shape(positive)[0]
    index = tf.range(size)
    offset = tf.math.floormod(index[None, :] - index[:, None], size)
    key = tf.where(positive, offset, tf.fill(tf.shape(offset), size))
    return tf.argmin(key, axis=1), tf.reduce_any(positive, axis=1)


@keras.saving.register_keras_serializable(package="oneshot")
class NPairsLoss(MetricLoss):
    """Multi-class N-pair loss (Sohn 2016) on P x K batches, in-batch.

    ``y_true``: integer class labels (B,); ``y_pred``: embeddings (B, D). Every sample i of a
    class with at least two samples is an anchor; its positive ``p(i)`` is the next sample of
    its class in batch order, cyclically (for K = 2, the other sample). Its "other classes'
    positives" are all the samples of the other classes that are someone's positive (all
    those of classes with two samples or more). With ``s`` the similarity (``-D`` for a
    distance),
    ``l_i = log(1 + sum_{k: y_k != y_i} exp(s_ik - s_i,p(i)))``. For K = 2 this is the paper's
    loss with each pair used in both directions. The paper's L2 regulariser of the embeddings
    (lambda = 0.002) is not part of the loss: add it to the network if wanted.

    Args:
        distance: Defaults to ``DotProductSimilarity()`` (the paper's inner product).
        miner: not used (the loss picks its pairs); must be None.
        reducer: over the anchors. Defaults to ``MeanReducer()`` (the paper's 1/N).

    Returns:
        Per-sample losses (B,) whose batch mean is the loss.

    Reference: Sohn, "Improved Deep Metric Learning with Multi-class N-pair Loss Objective",
    NIPS 2016 (no arXiv version).
    """

    requires_two_classes = True

    def __init__(
        self,
        distance: Distance | str | dict | None = None,
        miner: Any = None,
        reducer: Any = None,
        name: str = "npairs_loss",
        reduction: str = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        if miner is not None:
            raise ValueError(
                "Invalid value for argument `miner`. NPairsLoss picks one positive per anchor "
                f"itself and takes no miner. Received: miner={miner!r}"
            )
        distance = DotProductSimilarity() if distance is None else distance
        super().__init__(distance, None, reducer, name, reduction, dtype)

    def default_tuples(self, dist, labels):
        return ()

    def per_sample(self, dist, labels, indices, batch_size):
        partner, has_positive = next_positive(labels)
        _, negative = label_masks(labels)
        candidates = tf.logical_and(negative, has_positive[None, :])
        lse, has_negative = masked_logsumexp(-dist, candidates)
        anchors = tf.where(tf.logical_and(has_positive, has_negative))[:, 0]
        own = -pair_values(dist, anchors, row_values(partner, anchors))
        losses = tf.math.softplus(row_values(lse, anchors) - own)
        return self.reducer(losses, anchors, batch_size)
