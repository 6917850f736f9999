"""What the losses on the whole (B, B) matrix share: pair sets as masks, and safe log-sum-exps.

A pair miner returns index pairs ``(a1, p, a2, n)``; the losses of this family (lifted
structure, multi-similarity, NT-Xent, SupCon) need, for every anchor ``i``, the SET of its
positives and of its negatives. :func:`pair_masks` turns the pairs back into two boolean (B, B)
masks (O(B^2) memory), and :func:`masked_logsumexp` takes a log-sum-exp over one row's set with
a finite, exact gradient even when the set is empty.

Degenerate batches (the rule of every loss here, as of the triplet losses): an anchor teaches
something only if the batch holds another sample of its class AND a sample of another class
(:func:`contrastable_anchors`); a batch with all labels distinct gives a loss of exactly 0 with
a zero gradient. A batch of a single class is refused with an error naming `y_true`
(``MetricLoss.requires_two_classes``): P x K batches always hold P >= 2 classes.
"""

from __future__ import annotations

import tensorflow as tf

from oneshot.miners import HardPairMiner, label_masks


def all_pairs(dist: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, ...]:
    """Every ordered pair i != j of the batch as ``(a1, p, a2, n)`` (the default tuples)."""
    return HardPairMiner(pos_margin=None, neg_margin=None)(dist, labels)


def pair_masks(indices: tuple, batch_size: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Boolean (B, B) masks of the positive pairs ``(a1, p)`` and negative pairs ``(a2, n)``."""
    a1, p, a2, n = (tf.cast(i, tf.int64) for i in indices)
    shape = tf.cast(tf.stack([batch_size, batch_size]), tf.int64)

    def mask(rows, cols):
        hits = tf.scatter_nd(tf.stack([rows, cols], 1), tf.ones_like(rows, tf.int32), shape)
        return hits > 0

    return mask(a1, p), mask(a2, n)


def contrastable_anchors(labels: tf.Tensor) -> tf.Tensor:
    """(B,) bool: the samples with another sample of their class and one of another class."""
    positive, negative = label_masks(labels)
    return tf.logical_and(tf.reduce_any(positive, 1), tf.reduce_any(negative, 1))


def masked_logsumexp(
    values: tf.Tensor, mask: tf.Tensor, add_one: bool = False
) -> tuple[tf.Tensor, tf.Tensor]:
    """Row-wise ``log(sum_{j: mask[i, j]} exp(values[i, j]))`` (plus ``exp(0)`` with ``add_one``).

    Returns:
        ``(lse, nonempty)``, both (B,): ``lse`` is 0 (and has no gradient) for the rows whose
        set is empty and ``add_one`` is False; ``nonempty`` says which rows had a term. The
        row maximum is held constant for the gradient (the value does not depend on it).
    """
    neg_inf = tf.constant(float("-inf"), values.dtype)
    masked = tf.where(mask, values, neg_inf)
    nonempty = tf.reduce_any(mask, axis=1)
    top = tf.reduce_max(masked, axis=1, keepdims=True)
    top = tf.where(tf.math.is_finite(top), top, tf.zeros_like(top))
    if add_one:
        top = tf.maximum(top, 0.0)
    top = tf.stop_gradient(top)
    total = tf.reduce_sum(tf.exp(tf.where(mask, values - top, neg_inf)), axis=1)
    if add_one:
        total += tf.exp(-top[:, 0])
        return tf.math.log(total) + top[:, 0], nonempty
    safe = tf.where(nonempty, total, tf.ones_like(total))
    return tf.where(nonempty, tf.math.log(safe) + top[:, 0], tf.zeros_like(total)), nonempty


def row_values(matrix: tf.Tensor, rows: tf.Tensor) -> tf.Tensor:
    """``matrix[rows]`` for a (B,) vector or the rows of a (B, B) matrix."""
    return tf.gather(matrix, tf.cast(rows, tf.int64))
