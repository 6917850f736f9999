"""Similarities (larger means closer): cosine, dot product and the Gaussian (RBF) kernel."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from oneshot.distances.base import Distance, register


@register
class DotProductSimilarity(Distance):
    """``x . y``; larger means closer. Its dissimilarity is ``-x . y``.

    Args:
        normalize_embeddings: L2-normalise first (then it is the cosine). Defaults to False.
    """

    is_similarity = True

    def _pairwise(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        return tf.matmul(x, y, transpose_b=True)

    def _paired(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        return tf.reduce_sum(x * y, axis=-1)

    def dissimilarity(self, values: tf.Tensor) -> tf.Tensor:
        return -values

    def _self_value(self, dtype: tf.DType) -> tf.Tensor | None:
        return None  # x . x depends on x


@register
class CosineSimilarity(DotProductSimilarity):
    """``x . y / (|x| |y|)`` in [-1, 1]; larger means closer. Its dissimilarity is ``1 - cos``.

    Example:
    >>> round(float(CosineSimilarity().paired([[1.0, 0.0]], [[1.0, 1.0]])[0]), 4)
    0.7071
    """

    def __init__(self) -> None:
        super().__init__(normalize_embeddings=True)

    def dissimilarity(self, values: tf.Tensor) -> tf.Tensor:
        return 1.0 - values

    def _self_value(self, dtype: tf.DType) -> tf.Tensor:
        return tf.constant(1.0, dtype)

    def get_config(self) -> dict[str, Any]:
        return {}


@register
class RBFSimilarity(Distance):
    """Gaussian kernel ``exp(-|x - y|^2 / (2 sigma^2))`` in (0, 1]; larger means closer. Its
    dissimilarity is ``1 - k``.

    Args:
        sigma: kernel width (> 0). Defaults to 1.0.
        normalize_embeddings: L2-normalise first. Defaults to False.
    """

    is_similarity = True

    def __init__(self, sigma: float = 1.0, normalize_embeddings: bool = False) -> None:
        super().__init__(normalize_embeddings)
        if not sigma > 0:
            raise ValueError(
                f"Invalid value for argument `sigma`. Expected a number > 0. Received: sigma={sigma!r}"
            )
        self.sigma = float(sigma)

    def _kernel(self, squared: tf.Tensor) -> tf.Tensor:
        return tf.exp(-tf.maximum(squared, 0.0) / (2.0 * self.sigma**2))

    def _pairwise(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        x2 = tf.reduce_sum(tf.square(x), axis=1, keepdims=True)
        y2 = tf.reduce_sum(tf.square(y), axis=1, keepdims=True)
        return self._kernel(x2 - 2.0 * tf.matmul(x, y, transpose_b=True) + tf.transpose(y2))

    def _paired(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        return self._kernel(tf.reduce_sum(tf.square(x - y), axis=-1))

    def dissimilarity(self, values: tf.Tensor) -> tf.Tensor:
        return 1.0 - values

    def _self_value(self, dtype: tf.DType) -> tf.Tensor:
        return tf.constant(1.0, dtype)

    def get_config(self) -> dict[str, Any]:
        return {"sigma": self.sigma, **super().get_config()}
