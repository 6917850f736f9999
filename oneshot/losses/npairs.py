"""N-pair loss (Sohn 2016): one positive against the other pairs' positives, as a softmax.

For N pairs (x_i, x_i+) of N different classes:

    L = 1/N sum_i log(1 + sum_{j != i} exp(f_i . f_j+ - f_i . f_i+))

i.e. a softmax cross-entropy of anchor i over the N positives, the right one being its own.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from oneshot.distances import Distance, DotProductSimilarity
from oneshot.losses.base import MetricLoss
from oneshot.miners import label_masks
from oneshot.pieces import register


def first_pairs(labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """One (anchor, positive) pair per class: its first two samples in batch order.

    Returns:
        ``(anchors, positives)``, int64 (N,), for the N classes with at least two samples,
        in the order of their first samples.

    Example:
    >>> [t.numpy().tolist() for t in first_pairs(tf.constant([3, 1, 3, 1, 3, 7]))]
    [[0, 1], [2, 3]]
    """
    positive, _ = label_masks(labels)
    index = tf.range(tf.shape(positive)[0])
    after = index[None, :] > index[:, None]  # after[i, j]: j comes later than i
    first = tf.logical_not(tf.reduce_any(tf.logical_and(positive, tf.transpose(after)), 1))
    later = tf.logical_and(positive, after)
    anchors = tf.where(tf.logical_and(first, tf.reduce_any(later, 1)))[:, 0]
    # the earliest later sample of the class: argmax finds the first True of each row
    positives = tf.argmax(tf.cast(tf.gather(later, anchors), tf.int32), axis=1)
    return anchors, positives


@register
class NPairsLoss(MetricLoss):
    """Multi-class N-pair loss (Sohn 2016), in-batch.

    ``y_true``: integer class labels (B,); ``y_pred``: embeddings (B, D). Each class with two
    samples or more gives one pair: its first sample in batch order is the anchor ``a_i``, its
    second the positive ``p_i`` (:func:`first_pairs`; the other samples of the class are not
    used, as in pytorch-metric-learning). With ``s`` the similarity (``-D`` for a distance),
    each anchor's loss is the softmax cross-entropy over the N positives,
    ``l_i = log(sum_j exp(s(a_i, p_j))) - s(a_i, p_i)
    = log(1 + sum_{j != i} exp(s(a_i, p_j) - s(a_i, p_i)))``: its negatives are the N - 1
    other pairs' positives, the paper's loss. The paper's L2 regulariser of the embeddings
    (lambda = 0.002) is not part of the loss: add it to the network if wanted.

    Args:
        distance: Defaults to ``DotProductSimilarity()`` (the paper's inner product).
        miner: not used (the loss picks its pairs); must be None.
        reducer: over the N anchors. Defaults to ``MeanReducer()`` (the paper's 1/N).

    Returns:
        Per-sample losses (B,) whose batch mean is the loss (non-zero at the anchors only).

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
                "Invalid value for argument `miner`. NPairsLoss picks one pair per class "
                f"itself and takes no miner. Received: miner={miner!r}"
            )
        distance = DotProductSimilarity() if distance is None else distance
        super().__init__(distance, None, reducer, name, reduction, dtype)

    def default_tuples(self, dist, labels):
        return ()

    def per_sample(self, dist, labels, indices, batch_size):
        anchors, positives = first_pairs(labels)
        size = tf.cast(tf.shape(dist)[1], tf.int64)
        flat = anchors[:, None] * size + positives[None, :]  # (N, N) indices of (a_i, p_j)
        logits = -tf.gather(tf.reshape(dist, [-1]), flat)  # s(a_i, p_j)
        losses = tf.reduce_logsumexp(logits, axis=1) - tf.linalg.diag_part(logits)
        return self.reducer(losses, anchors, batch_size)
