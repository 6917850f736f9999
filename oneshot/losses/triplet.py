"""Triplet margin loss: the positive closer to the anchor than the negative, by a margin.

    L(a, p, n) = max(d(a, p) - d(a, n) + margin, 0)            (hinge)
    L(a, p, n) = log(1 + exp(d(a, p) - d(a, n)))               (soft margin, Hermans et al. 2017)

``d`` is the dissimilarity of the loss's distance (for a similarity s: ``d_ap - d_an = s_an -
s_ap``). One hinge, :func:`triplet_loss_from_distances`, serves the in-batch
:class:`TripletMarginLoss` and the offline :class:`TripletLossLayer` of triplet models (Eric's
experiment A, FaceNet; Schroff et al. 2015, arXiv 1503.03832).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from oneshot.distances import Distance, get_distance
from oneshot.losses.base import MetricLoss, check_loss_inputs, check_margin, pair_values
from oneshot.miners import BatchAllMiner, label_masks
from oneshot.pieces import register
from oneshot.reducers import MeanNonZeroReducer, MeanReducer, get_reducer


def triplet_loss_from_distances(
    d_ap: tf.Tensor, d_an: tf.Tensor, margin: float = 0.2, soft_margin: bool = False
) -> tf.Tensor:
    """Per-triplet loss from anchor-positive and anchor-negative dissimilarities, both (T,).

    ``margin`` is not used when ``soft_margin`` is True (softplus has no margin).

    Example:
    >>> triplet_loss_from_distances([1.0, 0.2], [0.5, 2.0], margin=0.2).numpy().tolist()
    [0.699999988079071, 0.0]
    """
    diff = tf.convert_to_tensor(d_ap) - tf.convert_to_tensor(d_an)
    if soft_margin:
        return tf.math.softplus(diff)
    return tf.nn.relu(diff + margin)


def triplet_loss(
    anchor: tf.Tensor,
    positive: tf.Tensor,
    negative: tf.Tensor,
    margin: float = 0.2,
    distance: Distance | str = "euclidean",
    soft_margin: bool = False,
) -> tf.Tensor:
    """Per-triplet loss (B,) from three (B, D) embedding batches (offline triplets); the
    distance defaults to Euclidean, as for every triplet entry point (Eric's experiments pass
    ``"squared_euclidean"``)."""
    d = get_distance(distance)
    d_ap = d.dissimilarity(d.paired(anchor, positive))
    d_an = d.dissimilarity(d.paired(anchor, negative))
    return triplet_loss_from_distances(d_ap, d_an, margin, soft_margin)


@register
class TripletMarginLoss(MetricLoss):
    """Triplet margin loss over the triplets of a batch (in-batch / online).

    ``y_true``: integer class labels (B,); ``y_pred``: embeddings (B, D). For the mined
    triplets (a, p, n): ``l = max(d_ap - d_an + margin, 0)`` (or softplus with ``soft_margin``),
    reduced per anchor by the reducer.

    Args:
        margin: alpha. Defaults to 0.2.
        soft_margin: ``log(1 + exp(d_ap - d_an))`` instead of the hinge. Defaults to False.
        distance: Defaults to ``LpDistance()`` (Euclidean).
        miner: a triplet miner (``BatchHardMiner()``, ``SemiHardMiner()``, ``BatchAllMiner()``);
            None uses every valid triplet of the batch. Defaults to None.
        reducer: Defaults to ``MeanNonZeroReducer()`` (mean over the triplets with a loss).

    Example:
    >>> loss = TripletMarginLoss(margin=0.2, miner=BatchHardMiner(), reducer=MeanReducer())
    >>> model.compile("adam", loss=loss)  # doctest: +SKIP

    Reference: Hermans, Beyer, Leibe, "In Defense of the Triplet Loss", arXiv 1703.07737.
    """

    default_reducer = MeanNonZeroReducer
    tuples = "triplets"

    def __init__(
        self,
        margin: float = 0.2,
        soft_margin: bool = False,
        distance: Distance | str | dict | None = None,
        miner: Any = None,
        reducer: Any = None,
        name: str = "triplet_margin_loss",
        reduction: str = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        super().__init__(distance, miner, reducer, name, reduction, dtype)
        self.margin = check_margin(margin)
        self.soft_margin = bool(soft_margin)

    def default_tuples(self, dist, labels):
        return BatchAllMiner()(dist, labels)

    def per_sample(self, dist, labels, indices, batch_size):
        a, p, n = indices
        losses = triplet_loss_from_distances(
            pair_values(dist, a, p), pair_values(dist, a, n), self.margin, self.soft_margin
        )
        return self.reducer(losses, a, batch_size)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "margin": self.margin, "soft_margin": self.soft_margin}


def active_triplet_fraction(
    labels, embeddings, margin: float = 0.2, distance: Distance | str = "euclidean"
) -> tf.Tensor:
    """Share of the valid triplets of a batch that still violate the margin (a scalar to log:
    it falls as training progresses).

    Example:
        >>> active = keras.metrics.MeanMetricWrapper(active_triplet_fraction, name="active")
        >>> model.compile("adam", loss=TripletMarginLoss(), metrics=[active])  # doctest: +SKIP
    """
    labels, embeddings = check_loss_inputs(labels, embeddings)
    d = get_distance(distance)
    dist = d.dissimilarity(d.pairwise(embeddings))
    active = tf.size(BatchAllMiner(margin)(dist, labels)[0])
    positive, negative = label_masks(labels)
    per_anchor = tf.reduce_sum(tf.cast(positive, tf.int32), 1) * tf.reduce_sum(
        tf.cast(negative, tf.int32), 1
    )
    valid = tf.reduce_sum(per_anchor)
    return tf.cast(active, dist.dtype) / tf.maximum(tf.cast(valid, dist.dtype), 1.0)


@register
class TripletLossLayer(keras.layers.Layer):
    """Custom loss layer of a triplet model: adds the reduced triplet loss of its three inputs.

    Call it on ``[anchor, positive, negative]`` embeddings (B, D). It returns the
    dissimilarities (B, 2) = ``[d(a, p), d(a, n)]`` (offline hard-batch mining reads the same
    distance from this layer) and adds the loss with ``add_loss``, so the model is compiled
    with an optimizer only.

    Args:
        margin, soft_margin: see :func:`triplet_loss_from_distances`. Defaults to 0.2, False.
        distance: Defaults to "euclidean" (as every triplet entry point; Eric's code used
            "squared_euclidean", which experiments A to C pass).
        reducer: over the B triplets. Defaults to ``MeanReducer()`` (Eric's layer summed, so
            its loss values are B times ours: ``SumReducer()`` reproduces them).
    """

    def __init__(
        self,
        margin: float = 0.2,
        distance: Distance | str | dict = "euclidean",
        soft_margin: bool = False,
        reducer: Any = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.margin = check_margin(margin)
        self.distance = get_distance(distance)
        self.soft_margin = bool(soft_margin)
        self.reducer = get_reducer(reducer, MeanReducer)

    def call(self, inputs):
        anchor, positive, negative = inputs
        d = self.distance
        d_ap = d.dissimilarity(d.paired(anchor, positive))
        d_an = d.dissimilarity(d.paired(anchor, negative))
        loss = triplet_loss_from_distances(d_ap, d_an, self.margin, self.soft_margin)
        self.add_loss(self.reducer.reduce(loss))
        return tf.stack([d_ap, d_an], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 2)

    def get_config(self) -> dict[str, Any]:
        ser = keras.saving.serialize_keras_object
        return {
            **super().get_config(),
            "margin": self.margin,
            "distance": ser(self.distance),
            "soft_margin": self.soft_margin,
            "reducer": ser(self.reducer),
        }
