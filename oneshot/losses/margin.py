"""Margin loss (Wu et al. 2017): a contrastive loss around a boundary beta, with slack alpha.

    l(i, j) = max(alpha + y_ij (D_ij - beta), 0),    y_ij = +1 (same class) or -1

Positive pairs closer than ``beta - alpha`` and negative pairs farther than ``beta + alpha``
cost nothing. The paper learns beta (per class, with a regulariser ``nu * beta``); here beta is
a fixed hyperparameter (the paper's initial value 1.2), so there is no ``nu``. It is meant for
unit-norm embeddings and their Euclidean distance, with negatives from
:class:`oneshot.miners.DistanceWeightedMiner`.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from oneshot.distances import Distance, LpDistance
from oneshot.losses.base import MetricLoss, check_loss_inputs, check_margin, pair_values
from oneshot.losses.pair_sets import all_pairs, contrastable_anchors, row_values
from oneshot.miners import DistanceWeightedMiner
from oneshot.pieces import register
from oneshot.reducers import MeanNonZeroReducer

UNIT_NORM_TOLERANCE = 1e-3


@register
class MarginLoss(MetricLoss):
    """Margin loss of "Sampling Matters" (Wu et al. 2017) over the pairs of a batch.

    ``y_true``: integer class labels (B,); ``y_pred``: embeddings (B, D). Positive pairs cost
    ``max(alpha + D - beta, 0)``, negative pairs ``max(alpha - D + beta, 0)``, each anchored at
    its first element; only anchors with a positive and a negative in the batch count (a batch
    of distinct labels gives 0; a batch of one class is an error naming `y_true`).

    With ``miner=DistanceWeightedMiner(embedding_dim)`` (the paper's setting) the distance must
    be the Euclidean one (``LpDistance()``), and each call checks that the embeddings have
    dimension ``embedding_dim`` (``ValueError`` when the shape is known) and unit norm, to
    within 1e-3 (``InvalidArgumentError``): the sampling density assumes both.

    Args:
        alpha: the margin (slack) around the boundary. Defaults to 0.2 (the paper).
        beta: the boundary between positive and negative distances, fixed (not learned).
            Defaults to 1.2 (the paper's initial beta).
        distance: Defaults to ``LpDistance()`` (Euclidean, the paper's D).
        miner: a pair miner; the paper's is ``DistanceWeightedMiner``. None uses every pair
            of the batch. Defaults to None.
        reducer: Defaults to ``MeanNonZeroReducer()`` (the paper's code divides by the number
            of pairs with a nonzero loss).

    Returns:
        Per-sample losses (B,) whose batch mean is the loss.

    Example:
    >>> loss = MarginLoss(miner=DistanceWeightedMiner(embedding_dim=64, seed=0))
    >>> model = build_online(conv4(embedding_dim=64), loss=loss)  # doctest: +SKIP

    Reference: Wu, Manmatha, Smola, Krähenbühl, "Sampling Matters in Deep Embedding Learning",
    ICCV 2017, https://arxiv.org/abs/1706.07567.
    """

    default_reducer = MeanNonZeroReducer
    tuples = "pairs"

    requires_two_classes = True

    def __init__(
        self,
        alpha: float = 0.2,
        beta: float = 1.2,
        distance: Distance | str | dict | None = None,
        miner: Any = None,
        reducer: Any = None,
        name: str = "margin_loss",
        reduction: str = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        super().__init__(distance, miner, reducer, name, reduction, dtype)
        self.alpha = check_margin(alpha, "alpha")
        self.beta = check_margin(beta, "beta")
        euclidean = LpDistance(normalize_embeddings=self.distance.normalize_embeddings)
        if isinstance(self.miner, DistanceWeightedMiner) and self.distance != euclidean:
            raise ValueError(
                "Invalid value for argument `distance`. DistanceWeightedMiner samples by "
                f"Euclidean distance: expected LpDistance(). Received: distance={distance!r}"
            )

    def compute(self, labels, embeddings, indices: tuple | None = None) -> tf.Tensor:
        labels, embeddings = check_loss_inputs(labels, embeddings)
        if isinstance(self.miner, DistanceWeightedMiner) and indices is None:
            embeddings = self._check_unit_norm(embeddings)
        return super().compute(labels, embeddings, indices)

    def _check_unit_norm(self, embeddings: tf.Tensor) -> tf.Tensor:
        dim = embeddings.shape[-1]
        if dim is not None and dim != self.miner.embedding_dim:
            raise ValueError(
                f"Invalid value for `y_pred`. The miner samples for embeddings of dimension "
                f"{self.miner.embedding_dim}. Received embeddings of shape {embeddings.shape}."
            )
        if self.distance.normalize_embeddings:
            return embeddings
        norms = tf.norm(embeddings, axis=1)
        check = tf.debugging.assert_less_equal(
            tf.abs(norms - 1.0),
            tf.constant(UNIT_NORM_TOLERANCE, norms.dtype),
            message="MarginLoss with DistanceWeightedMiner needs unit-norm embeddings "
            "(end the network with L2 normalisation, as conv4 does)",
        )
        with tf.control_dependencies([check]):
            return tf.identity(embeddings)

    def default_tuples(self, dist, labels):
        return all_pairs(dist, labels)

    def per_sample(self, dist, labels, indices, batch_size):
        keep = contrastable_anchors(labels)
        a1, p = (tf.boolean_mask(i, row_values(keep, indices[0])) for i in indices[:2])
        a2, n = (tf.boolean_mask(i, row_values(keep, indices[2])) for i in indices[2:])
        pos_losses = tf.nn.relu(self.alpha + pair_values(dist, a1, p) - self.beta)
        neg_losses = tf.nn.relu(self.alpha - pair_values(dist, a2, n) + self.beta)
        losses = tf.concat([pos_losses, neg_losses], 0)
        return self.reducer(losses, tf.concat([a1, a2], 0), batch_size)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "alpha": self.alpha, "beta": self.beta}
