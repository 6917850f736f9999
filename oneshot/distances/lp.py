"""Lp distances: Euclidean (p = 2, optionally squared) and Manhattan (p = 1)."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from oneshot.distances.base import Distance, register, safe_sqrt


@register
class LpDistance(Distance):
    """``||x - y||_p ** power`` for p in {1, 2}; smaller means closer.

    p = 2 uses ``|x|^2 - 2 x.y + |y|^2`` (a matmul: O(N x M) memory) with a NaN-safe square
    root; p = 1 needs the differences themselves and is computed in row blocks.

    Args:
        p: 1 (Manhattan) or 2 (Euclidean). Defaults to 2.
        power: 1, or 2 for the squared Euclidean distance (p = 2 only). Defaults to 1.
        normalize_embeddings: L2-normalise the embeddings first. Defaults to False.

    Example:
    >>> LpDistance().pairwise([[0.0, 0.0], [3.0, 4.0]]).numpy().tolist()
    [[0.0, 5.0], [5.0, 0.0]]
    """

    def __init__(self, p: int = 2, power: int = 1, normalize_embeddings: bool = False) -> None:
        super().__init__(normalize_embeddings)
        if p not in (1, 2):
            raise ValueError(f"Invalid value for argument `p`. Expected 1 or 2. Received: p={p!r}")
        if power not in (1, 2) or (power == 2 and p != 2):
            raise ValueError(
                "Invalid value for argument `power`. Expected 1, or 2 with p=2 (squared "
                f"Euclidean). Received: power={power!r} with p={p!r}"
            )
        self.p, self.power = int(p), int(power)
        self._per_entry_cost_is_dim = self.p == 1

    def _pairwise(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        if self.p == 1:
            return tf.reduce_sum(tf.abs(x[:, None, :] - y[None, :, :]), axis=-1)
        x2 = tf.reduce_sum(tf.square(x), axis=1, keepdims=True)
        y2 = tf.reduce_sum(tf.square(y), axis=1, keepdims=True)
        squared = tf.maximum(x2 - 2.0 * tf.matmul(x, y, transpose_b=True) + tf.transpose(y2), 0.0)
        return squared if self.power == 2 else safe_sqrt(squared)

    def _paired(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        if self.p == 1:
            return tf.reduce_sum(tf.abs(x - y), axis=-1)
        squared = tf.reduce_sum(tf.square(x - y), axis=-1)
        return squared if self.power == 2 else safe_sqrt(squared)

    def get_config(self) -> dict[str, Any]:
        return {"p": self.p, "power": self.power, **super().get_config()}
