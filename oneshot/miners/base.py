"""The miner interface, and the label masks and sorted negatives every online miner builds on.

A :class:`Miner` is a small serializable object whose ``__call__(dist, labels)`` returns index
tuples and nothing else:

- ``dist`` (B, B) is a **dissimilarity** matrix, smaller = closer. Losses get it from their
  distance as ``distance.dissimilarity(distance.pairwise(embeddings))``, so one miner serves Lp
  distances and similarities alike, and margins are in the units of ``dist``.
- ``labels`` (B,) or (B, 1), any integer or float dtype.
- The result is a tuple of int64 (T,) index tensors: ``(a, p, n)`` for triplet miners,
  ``(a1, p, a2, n)`` for pair miners. Anchors without a valid partner are left out.

Every miner is vectorised TensorFlow that runs inside ``tf.function`` with an unknown batch
size, selects on ``tf.stop_gradient(dist)`` and holds O(B^2) memory: negatives are sorted once
per anchor row (:func:`sorted_negatives`) and "which negatives lie below a threshold" is a
``searchsorted`` on those rows, so no (B, B, B) tensor is built.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from oneshot.pieces import Piece, register  # noqa: F401 (register: used by the pieces)


def label_masks(labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Boolean (B, B) masks: positives (same label, i != j) and negatives (different label)."""
    labels = tf.reshape(labels, (-1,))
    same = tf.equal(labels[:, None], labels[None, :])
    eye = tf.eye(tf.shape(labels)[0], dtype=tf.bool)
    return tf.logical_and(same, tf.logical_not(eye)), tf.logical_not(same)


def sorted_negatives(dist: tf.Tensor, negative: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Each row's negative distances in increasing order.

    Returns:
        ``(values, order)``, both (B, B): ``values[a, k]`` is the k-th smallest distance from
        anchor ``a`` to a negative (``+inf`` past the last negative, and no gradient), and
        ``order[a, k]`` (int32) the column it came from.
    """
    masked = tf.where(negative, tf.stop_gradient(dist), tf.constant(np.inf, dist.dtype))
    order = tf.argsort(masked, axis=1, stable=True)
    return tf.gather(masked, order, batch_dims=1), order


def positive_pairs(positive: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Row and column (int64) of every True entry of a (B, B) mask, in row-major order."""
    pairs = tf.where(positive)
    return pairs[:, 0], pairs[:, 1]


class Miner(Piece):
    """Base class of the online miners: ``miner(dist, labels)`` -> tuple of int64 indices.

    Subclasses implement :meth:`mine` on a dissimilarity tensor and flat labels, and list their
    constructor arguments in :meth:`get_config`; equality, hashing and ``repr`` follow the
    config, and ``keras.saving.serialize_keras_object`` saves them. ``tuples`` names what
    they return ("triplets", "pairs" or "quadruplets"), so a loss can refuse a miner whose
    tuples it cannot use.
    """

    tuples: str = ""

    def __call__(self, dist: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, ...]:
        """Index tuples mined from ``dist`` (B, B), smaller = closer, and ``labels`` (B,)."""
        dist = tf.convert_to_tensor(dist)
        if not dist.dtype.is_floating:
            dist = tf.cast(dist, tf.float32)
        if dist.shape.rank is not None and dist.shape.rank != 2:
            raise ValueError(
                "Invalid value for argument `dist`. Expected a (B, B) dissimilarity matrix. "
                f"Received: dist with shape {dist.shape}"
            )
        return self.mine(dist, tf.reshape(tf.convert_to_tensor(labels), (-1,)))

    def mine(self, dist: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, ...]:  # pragma: no cover
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {}
