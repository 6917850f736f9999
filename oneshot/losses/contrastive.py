"""Contrastive (pair) loss: pull same-class pairs together, push others beyond a margin.

    L(y, d) = y * d^2 + (1 - y) * max(margin - d, 0)^2

with ``y = 1`` for a pair of the SAME class (the convention everywhere in oneshot) and ``d`` the
Euclidean distance between the two embeddings (Hadsell, Chopra and LeCun 2006,
http://yann.lecun.com/exdb/publis/pdf/hadsell-chopra-lecun-06.pdf).
"""

from __future__ import annotations

import keras
import tensorflow as tf


def _check_margin(margin: float, name: str = "margin") -> float:
    if not margin >= 0:  # also rejects NaN
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a number >= 0. Received: {name}={margin!r}"
        )
    return float(margin)


def contrastive_loss(y_true: tf.Tensor, distances: tf.Tensor, margin: float = 1.0) -> tf.Tensor:
    """Per-pair contrastive loss.

    Args:
        y_true: (B,) or (B, 1) labels, 1 for a same-class pair, 0 otherwise.
        distances: (B,) or (B, 1) Euclidean distances between the two embeddings of each pair.
        margin: distance beyond which a different-class pair costs nothing. Defaults to 1.0.

    Returns:
        A float tensor of shape (B,).

    Example:
    >>> float(contrastive_loss([1.0, 0.0], [0.5, 0.25], margin=1.0)[1])
    0.5625
    """
    distances = tf.reshape(tf.convert_to_tensor(distances), [-1])
    y = tf.reshape(tf.cast(y_true, distances.dtype), [-1])
    hinge = tf.maximum(margin - distances, 0.0)
    return y * tf.square(distances) + (1.0 - y) * tf.square(hinge)


@keras.saving.register_keras_serializable(package="oneshot")
class ContrastiveLoss(keras.losses.Loss):
    """Keras loss for a siamese model whose output is the pair distance (``y_true``: 1 = same).

    Args:
        margin: see :func:`contrastive_loss`. Defaults to 1.0.
        reduction: Keras reduction. Defaults to "sum_over_batch_size" (the mean).
        name: Defaults to "contrastive_loss".
    """

    def __init__(
        self,
        margin: float = 1.0,
        reduction: str = "sum_over_batch_size",
        name: str = "contrastive_loss",
        **kwargs,
    ) -> None:
        super().__init__(reduction=reduction, name=name, **kwargs)
        self.margin = _check_margin(margin)

    def call(self, y_true, y_pred):
        return contrastive_loss(y_true, y_pred, self.margin)

    def get_config(self) -> dict:
        return {**super().get_config(), "margin": self.margin}
