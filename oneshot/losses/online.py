"""Online (in-batch) metric-learning losses: integer labels in, embeddings in, scalar out.

Each loss mines its tuples inside the batch with ``oneshot.miners`` and averages the loss over
them; the distance is an argument. Use with P x K batches (``oneshot.data.samplers.pk_dataset``)
on a bare embedding network::

    embedding.compile(keras.optimizers.Adam(1e-4), loss=OnlineTripletLoss("batch_hard"))
    embedding.fit(pk_dataset(x, y, p=32, k=4, seed=0), steps_per_epoch=500)

A batch with nothing to learn from (no valid or no active tuple) gives loss 0 and a zero, finite
gradient. Memory is O(B^2) for every miner (see ``oneshot.miners``).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from oneshot import miners
from oneshot.distances import check_distance, pairwise_distances
from oneshot.validation import check_choice

__all__ = [
    "TRIPLET_MINERS",
    "triplet_loss_from_tuples",
    "batch_all_triplet_loss",
    "online_triplet_loss",
    "online_quadruplet_loss",
    "online_contrastive_loss",
    "active_triplet_fraction",
    "OnlineTripletLoss",
    "OnlineQuadrupletLoss",
    "OnlineContrastiveLoss",
]

TRIPLET_MINERS = ("batch_hard", "batch_all", "semi_hard")
PAIR_MINERS = ("hard_pairs", "all")


def _prepare(labels: tf.Tensor, embeddings: tf.Tensor, distance: str):
    embeddings = tf.convert_to_tensor(embeddings)
    if embeddings.shape.rank != 2:
        raise ValueError(
            f"Invalid value for `y_pred`. Expected embeddings of shape (B, D). "
            f"Received shape {embeddings.shape}."
        )
    labels = tf.reshape(tf.convert_to_tensor(labels), (-1,))
    return labels, pairwise_distances(embeddings, distance=distance)


def _mean(values: tf.Tensor) -> tf.Tensor:
    """Mean that is 0 (with zero gradient) for an empty tensor."""
    count = tf.cast(tf.size(values), values.dtype)
    return tf.reduce_sum(values) / tf.maximum(count, 1.0)


def _pair_d(dist: tf.Tensor, i: tf.Tensor, j: tf.Tensor) -> tf.Tensor:
    return tf.gather_nd(dist, tf.stack([tf.cast(i, tf.int64), tf.cast(j, tf.int64)], 1))


def triplet_loss_from_tuples(dist, a, p, n, margin: float = 0.2, soft_margin: bool = False):
    """Per-triplet loss (T,): ``max(d_ap - d_an + margin, 0)``, or ``log(1 + exp(d_ap - d_an))``
    with ``soft_margin`` (Hermans 2017)."""
    diff = _pair_d(dist, a, p) - _pair_d(dist, a, n)
    return tf.math.softplus(diff) if soft_margin else tf.nn.relu(diff + margin)


def batch_all_triplet_loss(dist, labels, margin: float = 0.2):
    """Batch-all triplet loss in O(B^2) memory, without listing the triplets.

    For each positive pair (a, p), the active negatives are those with ``d_an < d_ap + margin``;
    with the anchor's negatives sorted, their count c and the sum S of their distances come from
    a ``searchsorted`` and a cumulative sum, and the pair contributes ``c (d_ap + margin) - S``.

    Returns:
        ``(loss, active, valid)``: mean loss over the active triplets (0 if none), and the
        numbers of active and of valid triplets.
    """
    positive, counts, sums = miners._active_counts(dist, labels, margin)
    counts_f = tf.cast(counts, dist.dtype)
    per_pair = tf.where(positive, counts_f * (dist + margin) - sums, tf.zeros_like(dist))
    active = tf.reduce_sum(tf.where(positive, counts_f, tf.zeros_like(dist)))
    _, negative = miners.label_masks(labels)
    n_neg = tf.reduce_sum(tf.cast(negative, dist.dtype), axis=1, keepdims=True)
    valid = tf.reduce_sum(tf.where(positive, tf.broadcast_to(n_neg, tf.shape(dist)), 0.0))
    return tf.reduce_sum(per_pair) / tf.maximum(active, 1.0), active, valid


def online_triplet_loss(
    labels,
    embeddings,
    miner: str = "batch_hard",
    margin: float = 0.2,
    distance: str = "euclidean",
    soft_margin: bool = False,
) -> tf.Tensor:
    """Triplet loss over the triplets a miner finds in the batch; see ``OnlineTripletLoss``."""
    labels, dist = _prepare(labels, embeddings, distance)
    if miner == "batch_all":
        return batch_all_triplet_loss(dist, labels, margin)[0]
    if miner == "batch_hard":
        a, p, n = miners.batch_hard(dist, labels)
    else:
        a, p, n = miners.semi_hard(dist, labels, margin)
    return _mean(triplet_loss_from_tuples(dist, a, p, n, margin, soft_margin))


def active_triplet_fraction(
    labels, embeddings, margin: float = 0.2, distance: str = "euclidean"
) -> tf.Tensor:
    """Share of the valid triplets of a batch that still violate the margin (a scalar to log:
    it falls as training progresses).

    Example:
        >>> active = keras.metrics.MeanMetricWrapper(active_triplet_fraction, name="active")
        >>> embedding.compile("adam", loss=OnlineTripletLoss(), metrics=[active])
    """
    labels, dist = _prepare(labels, embeddings, distance)
    _, active, valid = batch_all_triplet_loss(dist, labels, margin)
    return active / tf.maximum(valid, 1.0)


def online_quadruplet_loss(
    labels,
    embeddings,
    margin1: float = 1.0,
    margin2: float = 0.5,
    adaptive: bool = True,
    w1: float = 1.0,
    w2: float = 0.5,
    distance: str = "euclidean",
) -> tf.Tensor:
    """Quadruplet loss with margin-based mining; see ``OnlineQuadrupletLoss``."""
    labels, dist = _prepare(labels, embeddings, distance)
    if adaptive:
        alpha1, alpha2 = miners.adaptive_margins(dist, labels, w1, w2)
    else:
        alpha1, alpha2 = tf.constant(margin1, dist.dtype), tf.constant(margin2, dist.dtype)
    (a, p, n), (qa, qp, qn, qn2) = miners.quadruplet_margin(dist, labels, alpha1, alpha2)
    term1 = tf.nn.relu(_pair_d(dist, a, p) - _pair_d(dist, a, n) + alpha1)
    term2 = tf.nn.relu(_pair_d(dist, qa, qp) - _pair_d(dist, qn, qn2) + alpha2)
    return _mean(term1) + _mean(term2)


def online_contrastive_loss(
    labels, embeddings, miner: str = "hard_pairs", margin: float = 1.0, distance: str = "euclidean"
) -> tf.Tensor:
    """Contrastive loss ``y d^2 + (1 - y) max(margin - d, 0)^2`` averaged over the mined pairs."""
    labels, dist = _prepare(labels, embeddings, distance)
    if miner == "hard_pairs":
        a1, p, a2, n = miners.hard_pairs(dist, labels, 0.0, margin)
    else:
        positive, negative = miners.label_masks(labels)
        pos, neg = tf.where(positive), tf.where(negative)
        a1, p, a2, n = pos[:, 0], pos[:, 1], neg[:, 0], neg[:, 1]
    pos_loss = tf.square(_pair_d(dist, a1, p))
    neg_loss = tf.square(tf.nn.relu(margin - _pair_d(dist, a2, n)))
    count = tf.cast(tf.size(pos_loss) + tf.size(neg_loss), dist.dtype)
    return (tf.reduce_sum(pos_loss) + tf.reduce_sum(neg_loss)) / tf.maximum(count, 1.0)


class _OnlineLoss(keras.losses.Loss):
    """Shared plumbing: labels (B,) or (B, 1) as ``y_true``, embeddings (B, D) as ``y_pred``."""

    def __init__(self, distance: str, name: str, reduction: str, **kwargs) -> None:
        super().__init__(name=name, reduction=reduction, **kwargs)
        self.distance = check_distance(distance)

    def get_config(self) -> dict:
        return {**super().get_config(), "distance": self.distance}


@keras.saving.register_keras_serializable(package="oneshot")
class OnlineTripletLoss(_OnlineLoss):
    """Triplet loss on triplets mined inside the batch.

    ``loss = mean over mined (a, p, n) of max(d(a, p) - d(a, n) + margin, 0)``; for
    "batch_all" the mean runs over the triplets with a positive loss only (Hermans 2017).

    Args:
        miner: "batch_hard" (hardest positive and negative per anchor), "batch_all" (every
            valid triplet) or "semi_hard" (FaceNet). Defaults to "batch_hard".
        margin: alpha. Defaults to 0.2.
        distance: one of ``oneshot.distances.DISTANCES``. Defaults to "euclidean".
        soft_margin: use ``log(1 + exp(d_ap - d_an))`` instead of the hinge (not with
            "batch_all"). Defaults to False.

    Example:
        >>> embedding.compile("adam", loss=OnlineTripletLoss("batch_hard", margin=0.2))

    Reference: Hermans, Beyer, Leibe, "In Defense of the Triplet Loss", arXiv 1703.07737.
    """

    def __init__(
        self,
        miner: str = "batch_hard",
        margin: float = 0.2,
        distance: str = "euclidean",
        soft_margin: bool = False,
        name: str = "online_triplet_loss",
        reduction: str = "sum_over_batch_size",
        **kwargs,
    ) -> None:
        super().__init__(distance, name, reduction, **kwargs)
        check_choice("miner", miner, TRIPLET_MINERS)
        if soft_margin and miner == "batch_all":
            raise ValueError(
                "Invalid arguments: `soft_margin=True` has no active set for miner='batch_all'. "
                "Use miner='batch_hard' or 'semi_hard' with soft_margin, or soft_margin=False."
            )
        self.miner, self.margin, self.soft_margin = miner, float(margin), bool(soft_margin)

    def call(self, y_true, y_pred):
        return online_triplet_loss(
            y_true, y_pred, self.miner, self.margin, self.distance, self.soft_margin
        )

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "miner": self.miner,
            "margin": self.margin,
            "soft_margin": self.soft_margin,
        }


@keras.saving.register_keras_serializable(package="oneshot")
class OnlineQuadrupletLoss(_OnlineLoss):
    """Quadruplet loss (Chen et al. 2017) with margin-based online mining.

    ``loss = mean[d_ap - d_an + alpha1]_+ + mean[d_ap - d_{n n2} + alpha2]_+`` over the
    violating tuples found by ``oneshot.miners.quadruplet_margin`` (n2's class differs from
    a's and n's). With ``adaptive``, ``alpha_i = w_i (mu_n - mu_p)`` from the batch.

    Args:
        margin1, margin2: fixed margins when ``adaptive=False``. Defaults to 1.0 and 0.5.
        adaptive: use the adaptive margins. Defaults to True.
        w1, w2: adaptive-margin weights. Defaults to 1.0 and 0.5.
        distance: Defaults to "euclidean" (the paper's g^2 is "squared_euclidean").

    Reference: Chen, Chen, Zhang, Huang, "Beyond triplet loss: a deep quadruplet network for
    person re-identification", CVPR 2017, arXiv 1704.01719.
    """

    def __init__(
        self,
        margin1: float = 1.0,
        margin2: float = 0.5,
        adaptive: bool = True,
        w1: float = 1.0,
        w2: float = 0.5,
        distance: str = "euclidean",
        name: str = "online_quadruplet_loss",
        reduction: str = "sum_over_batch_size",
        **kwargs,
    ) -> None:
        super().__init__(distance, name, reduction, **kwargs)
        self.margin1, self.margin2 = float(margin1), float(margin2)
        self.adaptive, self.w1, self.w2 = bool(adaptive), float(w1), float(w2)

    def call(self, y_true, y_pred):
        return online_quadruplet_loss(
            y_true,
            y_pred,
            self.margin1,
            self.margin2,
            self.adaptive,
            self.w1,
            self.w2,
            self.distance,
        )

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "margin1": self.margin1,
            "margin2": self.margin2,
            "adaptive": self.adaptive,
            "w1": self.w1,
            "w2": self.w2,
        }


@keras.saving.register_keras_serializable(package="oneshot")
class OnlineContrastiveLoss(_OnlineLoss):
    """Contrastive loss over the pairs of the batch.

    ``loss = mean over mined pairs of y d^2 + (1 - y) max(margin - d, 0)^2``.

    Args:
        miner: "hard_pairs" (positives with d > 0 and negatives inside the margin) or "all"
            (every pair). Defaults to "hard_pairs".
        margin: m. Defaults to 1.0.
        distance: Defaults to "euclidean".

    Reference: Hadsell, Chopra, LeCun, "Dimensionality Reduction by Learning an Invariant
    Mapping", CVPR 2006.
    """

    def __init__(
        self,
        miner: str = "hard_pairs",
        margin: float = 1.0,
        distance: str = "euclidean",
        name: str = "online_contrastive_loss",
        reduction: str = "sum_over_batch_size",
        **kwargs,
    ) -> None:
        super().__init__(distance, name, reduction, **kwargs)
        check_choice("miner", miner, PAIR_MINERS)
        self.miner, self.margin = miner, float(margin)

    def call(self, y_true, y_pred):
        return online_contrastive_loss(y_true, y_pred, self.miner, self.margin, self.distance)

    def get_config(self) -> dict:
        return {**super().get_config(), "miner": self.miner, "margin": self.margin}
