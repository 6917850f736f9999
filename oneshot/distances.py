"""Pairwise and paired distances between embeddings, safe to differentiate at zero.

Every distance here is a *dissimilarity*: smaller means more alike. Cosine is returned as
``1 - cos`` so that losses and miners can treat all distances the same way.

The Euclidean distance uses ``sqrt(max(d2, eps))`` masked back to exactly 0 where ``d2 <= eps``:
the gradient of ``sqrt`` at 0 is infinite, and ``0 * inf`` would give NaN.
"""

from __future__ import annotations

import tensorflow as tf

from oneshot.validation import check_choice

DISTANCES = ("euclidean", "squared_euclidean", "l1", "cosine")
_EPS = 1e-12


def check_distance(distance: str) -> str:
    """Return ``distance`` if it is a known name, else raise a ValueError saying what is known."""
    return check_choice("distance", distance, DISTANCES)


def safe_sqrt(squared: tf.Tensor) -> tf.Tensor:
    """``sqrt`` with a finite (zero) gradient where ``squared`` is 0."""
    squared = tf.maximum(squared, 0.0)
    is_zero = squared <= _EPS
    root = tf.sqrt(tf.where(is_zero, tf.ones_like(squared), squared))
    return tf.where(is_zero, tf.zeros_like(squared), root)


def pairwise_distances(
    a: tf.Tensor, b: tf.Tensor | None = None, distance: str = "euclidean"
) -> tf.Tensor:
    """Distance matrix between the rows of ``a`` (N, D) and ``b`` (M, D); ``b`` defaults to ``a``.

    Returns:
        A float tensor of shape (N, M). Memory is O(N * M) except for ``l1`` which is O(N * M * D).
    """
    check_distance(distance)
    a = tf.convert_to_tensor(a)
    b = a if b is None else tf.convert_to_tensor(b, dtype=a.dtype)
    if distance in ("euclidean", "squared_euclidean"):
        a2 = tf.reduce_sum(tf.square(a), axis=1, keepdims=True)
        b2 = tf.reduce_sum(tf.square(b), axis=1, keepdims=True)
        squared = tf.maximum(a2 - 2.0 * tf.matmul(a, b, transpose_b=True) + tf.transpose(b2), 0.0)
        return squared if distance == "squared_euclidean" else safe_sqrt(squared)
    if distance == "cosine":
        a_n = tf.math.l2_normalize(a, axis=1)
        b_n = tf.math.l2_normalize(b, axis=1)
        return 1.0 - tf.matmul(a_n, b_n, transpose_b=True)
    return tf.reduce_sum(tf.abs(a[:, None, :] - b[None, :, :]), axis=-1)  # l1


def paired_distances(a: tf.Tensor, b: tf.Tensor, distance: str = "euclidean") -> tf.Tensor:
    """Distance between matching rows of ``a`` and ``b`` (both (N, D)); returns shape (N,)."""
    check_distance(distance)
    a = tf.convert_to_tensor(a)
    b = tf.convert_to_tensor(b, dtype=a.dtype)
    if distance in ("euclidean", "squared_euclidean"):
        squared = tf.reduce_sum(tf.square(a - b), axis=-1)
        return squared if distance == "squared_euclidean" else safe_sqrt(squared)
    if distance == "cosine":
        return 1.0 - tf.reduce_sum(tf.math.l2_normalize(a, -1) * tf.math.l2_normalize(b, -1), -1)
    return tf.reduce_sum(tf.abs(a - b), axis=-1)
