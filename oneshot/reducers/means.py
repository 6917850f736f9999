"""The reducers: mean over all tuples, mean over the non-zero ones, per anchor, sum."""

from __future__ import annotations

import tensorflow as tf

from oneshot.reducers.base import Reducer, _count, register


@register
class MeanReducer(Reducer):
    """Mean over every mined tuple, zeros included (batch-hard's usual reduction).

    Example: three tuples anchored at samples 0, 1, 1 of a batch of 4. Per-sample sums
    [1, 0 + 2, 0, 0] times B / T = 4 / 3; their batch mean is 1.0, the mean of the losses.

    >>> per_sample = MeanReducer()(tf.constant([1.0, 0.0, 2.0]), tf.constant([0, 1, 1]), 4)
    >>> [round(v, 4) for v in per_sample.numpy().tolist()]
    [1.3333, 2.6667, 0.0, 0.0]
    """

    def scale(self, losses: tf.Tensor, batch_size: tf.Tensor) -> tf.Tensor:
        return batch_size / _count(losses)


@register
class MeanNonZeroReducer(Reducer):
    """Mean over the tuples with a positive loss (batch-all's reduction, Hermans et al. 2017):
    easy tuples do not dilute the hard ones."""

    def scale(self, losses: tf.Tensor, batch_size: tf.Tensor) -> tf.Tensor:
        active = tf.reduce_sum(tf.cast(losses > 0, losses.dtype))
        return batch_size / tf.maximum(active, 1.0)


@register
class SumReducer(Reducer):
    """Sum over every mined tuple (the original experiments' layers summed over the batch)."""

    def scale(self, losses: tf.Tensor, batch_size: tf.Tensor) -> tf.Tensor:
        return batch_size


@register
class PerAnchorReducer(Reducer):
    """Each sample's mean over the tuples it anchors, then the mean over the batch (samples
    without a tuple count as 0): every anchor weighs the same whatever its number of tuples."""

    def __call__(self, losses: tf.Tensor, anchors: tf.Tensor, batch_size: tf.Tensor) -> tf.Tensor:
        losses = tf.reshape(losses, (-1,))
        anchors = tf.cast(anchors, tf.int32)
        sums = tf.math.unsorted_segment_sum(losses, anchors, batch_size)
        counts = tf.math.unsorted_segment_sum(tf.ones_like(losses), anchors, batch_size)
        return sums / tf.maximum(counts, 1.0)


#: the reducers of one list of tuples, by name
MEAN_REDUCERS = {
    "mean": MeanReducer,
    "mean_nonzero": MeanNonZeroReducer,
    "per_anchor": PerAnchorReducer,
    "sum": SumReducer,
}
