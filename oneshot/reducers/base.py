"""Reducers: from the losses of the mined tuples to one value per sample of the batch.

A loss computes one value per tuple (triplet, pair, quadruplet) and hands them to a reducer
with each tuple's anchor. The reducer returns a (B,) tensor whose **mean over the batch is the
reduced loss**, so Keras's default ``reduction="sum_over_batch_size"`` gives exactly the
reducer's value, ``sample_weight`` weighs each anchor's share, and ``reduction="none"`` shows
who contributed what. A batch with no tuples gives zeros (finite, zero gradient).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from oneshot.pieces import Piece, register  # noqa: F401 (register: used by the pieces)


class Reducer(Piece):
    """Base class. Subclasses implement :meth:`scale` (and may override :meth:`__call__`)."""

    def __call__(self, losses: tf.Tensor, anchors: tf.Tensor, batch_size: tf.Tensor) -> tf.Tensor:
        """Per-sample values (B,) from per-tuple ``losses`` (T,) anchored at ``anchors`` (T,)."""
        losses = tf.reshape(losses, (-1,))
        per_sample = tf.math.unsorted_segment_sum(losses, tf.cast(anchors, tf.int32), batch_size)
        return per_sample * self.scale(losses, tf.cast(batch_size, losses.dtype))

    def scale(self, losses: tf.Tensor, batch_size: tf.Tensor) -> tf.Tensor:  # pragma: no cover
        raise NotImplementedError

    def reduce_parts(self, parts: list[tuple[tf.Tensor, tf.Tensor]], batch_size) -> tf.Tensor:
        """Per-sample values (B,) of a loss made of several parts, each ``(losses, anchors)``
        (a pair loss's positive and negative pairs): one reduction over all their tuples
        together (``PerPartReducer`` reduces each part on its own)."""
        losses = tf.concat([tf.reshape(losses, (-1,)) for losses, _ in parts], 0)
        anchors = tf.concat([tf.reshape(anchors, (-1,)) for _, anchors in parts], 0)
        return self(losses, anchors, batch_size)

    def reduce(self, losses: tf.Tensor) -> tf.Tensor:
        """The reduced scalar of per-tuple ``losses`` (for layers that add one loss value); 0 when
        there are no tuples."""
        losses = tf.reshape(losses, (-1,))
        anchors = tf.range(tf.size(losses))
        per_sample = self(losses, anchors, tf.size(losses))
        return tf.reduce_sum(per_sample) / _count(per_sample)  # reduce_mean([]) would be NaN

    def get_config(self) -> dict[str, Any]:
        return {}


def _count(values: tf.Tensor) -> tf.Tensor:
    return tf.maximum(tf.cast(tf.size(values), values.dtype), 1.0)
