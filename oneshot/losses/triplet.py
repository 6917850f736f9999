"""Triplet loss (FaceNet; Eric's experiment A): the positive closer than the negative by a margin.

    L(a, p, n) = max(d(a, p) - d(a, n) + margin, 0)            (hinge)
    L(a, p, n) = log(1 + exp(d(a, p) - d(a, n)))               (soft margin, Hermans et al. 2017)

``d`` is squared Euclidean by default, as in Eric's code; any distance of ``oneshot.distances``
works. Reduction: the mean over the batch. Eric's original layer *summed* over the batch of 32,
so its reported loss values are 32 times ours for the same triplets (and its effective learning
rate 32 times larger).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from oneshot.distances import check_distance, paired_distances
from oneshot.losses.contrastive import _check_margin


def triplet_loss_from_distances(
    d_ap: tf.Tensor, d_an: tf.Tensor, margin: float = 0.2, soft_margin: bool = False
) -> tf.Tensor:
    """Per-triplet loss from anchor-positive and anchor-negative distances, both (B,).

    ``margin`` is not used when ``soft_margin`` is True (softplus has no margin).
    """
    diff = tf.convert_to_tensor(d_ap) - tf.convert_to_tensor(d_an)
    if soft_margin:
        return tf.nn.softplus(diff)
    return tf.maximum(diff + margin, 0.0)


def triplet_loss(
    anchor: tf.Tensor,
    positive: tf.Tensor,
    negative: tf.Tensor,
    margin: float = 0.2,
    distance: str = "squared_euclidean",
    soft_margin: bool = False,
) -> tf.Tensor:
    """Per-triplet loss from three (B, D) embedding batches.

    Args:
        anchor, positive, negative: (B, D) embeddings; positive shares the anchor's class.
        margin: required gap d(a, n) - d(a, p). Defaults to 0.2.
        distance: "squared_euclidean", "euclidean", "l1" or "cosine". Defaults to
            "squared_euclidean".
        soft_margin: use log(1 + exp(d_ap - d_an)) instead of the hinge. Defaults to False.

    Returns:
        A float tensor of shape (B,).
    """
    d_ap = paired_distances(anchor, positive, distance)
    d_an = paired_distances(anchor, negative, distance)
    return triplet_loss_from_distances(d_ap, d_an, margin, soft_margin)


@keras.saving.register_keras_serializable(package="oneshot")
class TripletLossLayer(keras.layers.Layer):
    """Custom loss layer: adds the mean triplet loss of its three inputs with ``add_loss``.

    Call it on ``[anchor, positive, negative]`` embeddings (B, D). It returns the distances
    (B, 2) = ``[d(a, p), d(a, n)]`` (handy for offline hard-batch mining) and adds the loss
    to the model, so the model is compiled with an optimizer only.

    Args:
        margin: see :func:`triplet_loss`. Defaults to 0.2.
        distance: see :func:`triplet_loss`. Defaults to "squared_euclidean".
        soft_margin: see :func:`triplet_loss`. Defaults to False.
    """

    def __init__(
        self,
        margin: float = 0.2,
        distance: str = "squared_euclidean",
        soft_margin: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.margin = _check_margin(margin)
        self.distance = check_distance(distance)
        self.soft_margin = bool(soft_margin)

    def call(self, inputs):
        anchor, positive, negative = inputs
        d_ap = paired_distances(anchor, positive, self.distance)
        d_an = paired_distances(anchor, negative, self.distance)
        loss = triplet_loss_from_distances(d_ap, d_an, self.margin, self.soft_margin)
        self.add_loss(tf.reduce_mean(loss))
        return tf.stack([d_ap, d_an], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 2)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "margin": self.margin,
            "distance": self.distance,
            "soft_margin": self.soft_margin,
        }
