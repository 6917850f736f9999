"""Contrastive (pair) loss: pull same-class pairs together, push others beyond a margin.

    L(y, d) = y * max(d - pos_margin, 0)^2 + (1 - y) * max(neg_margin - d, 0)^2

with ``y = 1`` for a pair of the SAME class (the convention everywhere in oneshot) and ``d`` the
pair's dissimilarity; ``pos_margin = 0`` gives Hadsell, Chopra and LeCun's loss (CVPR 2006,
http://yann.lecun.com/exdb/publis/pdf/hadsell-chopra-lecun-06.pdf). ``squared=False`` takes the
plain hinges ``max(d - pos_margin, 0)`` and ``max(neg_margin - d, 0)`` (pytorch-metric-learning's
form). One pure function,
:func:`contrastive_loss`, serves the siamese model's :class:`PairContrastiveLoss` (labelled
pairs in, the model's pair distance out) and the in-batch :class:`ContrastiveLoss`.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from oneshot.distances import Distance
from oneshot.losses.base import MetricLoss, check_margin, pair_values
from oneshot.miners import HardPairMiner
from oneshot.pieces import register


def contrastive_loss(
    y_true: tf.Tensor,
    distances: tf.Tensor,
    margin: float = 1.0,
    pos_margin: float = 0.0,
    squared: bool = True,
) -> tf.Tensor:
    """Per-pair contrastive loss.

    Args:
        y_true: (B,) or (B, 1) labels, 1 for a same-class pair, 0 otherwise.
        distances: (B,) or (B, 1) dissimilarities of the pairs.
        margin: distance beyond which a different-class pair costs nothing. Defaults to 1.0.
        pos_margin: distance below which a same-class pair costs nothing. Defaults to 0.0.
        squared: square the hinges (Hadsell et al.); False takes them as they are. Defaults
            to True.

    Returns:
        A float tensor of shape (B,).

    Example:
    >>> float(contrastive_loss([1.0, 0.0], [0.5, 0.25], margin=1.0)[1])
    0.5625
    >>> float(contrastive_loss([1.0, 0.0], [0.5, 0.25], margin=1.0, squared=False)[1])
    0.75
    """
    distances = tf.reshape(tf.convert_to_tensor(distances), [-1])
    y = tf.reshape(tf.cast(y_true, distances.dtype), [-1])
    pull = distances if pos_margin == 0 else tf.nn.relu(distances - pos_margin)
    push = tf.maximum(margin - distances, 0.0)
    if squared:
        pull, push = tf.square(pull), tf.square(push)
    return y * pull + (1.0 - y) * push


@register
class PairContrastiveLoss(keras.losses.Loss):
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
        self.margin = check_margin(margin)

    def call(self, y_true, y_pred):
        return contrastive_loss(y_true, y_pred, self.margin)

    def get_config(self) -> dict:
        # keras.losses.Loss leaves out dtype (a float64 loss would reload as float32)
        return {**super().get_config(), "dtype": self.dtype, "margin": self.margin}


@register
class ContrastiveLoss(MetricLoss):
    """Contrastive loss over the pairs of a batch (in-batch / online).

    ``y_true``: integer class labels (B,); ``y_pred``: embeddings (B, D). Positive pairs cost
    ``max(d - pos_margin, 0)^2``, negative pairs ``max(neg_margin - d, 0)^2`` (without the
    squares if ``squared=False``); each pair is anchored at its first element for the reducer,
    which gets the positive and the negative pairs as two parts
    (:meth:`oneshot.reducers.Reducer.reduce_parts`).

    Args:
        pos_margin: Defaults to 0.0. neg_margin: Defaults to 1.0.
        squared: square the hinges. Defaults to True (the paper).
        distance: Defaults to ``LpDistance()`` (Euclidean).
        miner: a pair miner (``HardPairMiner()``, ``MultiSimilarityMiner()``); None uses every
            pair of the batch. Defaults to None.
        reducer: Defaults to ``MeanReducer()`` (one mean over all the pairs);
            ``PerPartReducer()`` adds the mean of the non-zero positive terms to that of the
            non-zero negative terms.

    Example: pytorch-metric-learning's ``ContrastiveLoss()`` (its defaults):
    >>> ContrastiveLoss(0.0, 1.0, squared=False, distance=LpDistance(normalize_embeddings=True),
    ...                 reducer=PerPartReducer())  # doctest: +SKIP

    Reference: Hadsell, Chopra, LeCun, "Dimensionality Reduction by Learning an Invariant
    Mapping", CVPR 2006.
    """

    tuples = "pairs"

    def __init__(
        self,
        pos_margin: float = 0.0,
        neg_margin: float = 1.0,
        squared: bool = True,
        distance: Distance | str | dict | None = None,
        miner: Any = None,
        reducer: Any = None,
        name: str = "contrastive_loss",
        reduction: str = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        super().__init__(distance, miner, reducer, name, reduction, dtype)
        self.pos_margin = check_margin(pos_margin, "pos_margin")
        self.neg_margin = check_margin(neg_margin, "neg_margin")
        if not isinstance(squared, (bool, np.bool_)):
            raise ValueError(
                f"Invalid value for argument `squared`. Expected True or False. Received: "
                f"squared={squared!r}"
            )
        self.squared = bool(squared)

    def default_tuples(self, dist, labels):
        return HardPairMiner(pos_margin=None, neg_margin=None)(dist, labels)

    def per_sample(self, dist, labels, indices, batch_size):
        a1, p, a2, n = indices
        pos, neg = pair_values(dist, a1, p), pair_values(dist, a2, n)
        margins = (self.neg_margin, self.pos_margin, self.squared)
        pos_losses = contrastive_loss(tf.ones_like(pos), pos, *margins)
        neg_losses = contrastive_loss(tf.zeros_like(neg), neg, *margins)
        return self.reducer.reduce_parts([(pos_losses, a1), (neg_losses, a2)], batch_size)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "pos_margin": self.pos_margin,
            "neg_margin": self.neg_margin,
            "squared": self.squared,
        }
