"""Quadruplet loss (Chen et al., CVPR 2017, https://arxiv.org/abs/1704.01719).

    L = max(g(a,p) - g(a,n) + alpha1, 0) + max(g(a,p) - g(n,n2) + alpha2, 0)

``g`` is a pair value: the learned metric network's output in [0, 1] (squared, ``g^2``, as in
the paper) or the dissimilarity of a fixed distance; ``n2`` is a second negative whose class
differs from both the anchor's and ``n``'s. The first term is the triplet hinge; the second
pushes the negative pair (n, n2) apart by a weaker margin (alpha1 > alpha2). One vocabulary
everywhere: ``alpha1``, ``alpha2``, ``adaptive_margin`` with weights ``w1``, ``w2``; one hinge
(:func:`oneshot.losses.triplet.triplet_loss_from_distances`). :class:`QuadrupletLoss` mines the
quadruplets of a batch; :class:`QuadrupletLossLayer` is the offline quadruplet model's layer.

Fixes of the original experiment (see ``docs/reference.md``):

- One quantity everywhere: ``squared`` says whether the loss uses ``g^2`` (the paper, default)
  or ``g``; :func:`quadruplet_hardness` scores quadruplets for mining with the SAME choice (the
  original mined with ``g`` but trained with ``g^2``).
- Unreachable margins are reported: with ``g`` in [0, 1], ``g(a,n)^2 - g(a,p)^2 <= 1``, so
  alpha1 = 1 (the paper's default, kept for reproduction) can never be met and the hinge never
  reaches zero. Given ``max_distance`` (1.0 for the learned metric, 2.0 for Euclidean or cosine
  on L2-normalised embeddings), :func:`check_quadruplet_margins` *warns* (not raises, so the
  published setting stays reproducible) when a margin is >= the largest reachable gap.
- Adaptive margin (the paper's margin-based mining): alpha1 = 1 * (mu_n - mu_p) and
  alpha2 = 0.5 * (mu_n - mu_p), with mu_p the batch mean of the positive-pair values and mu_n
  the batch mean of the negative-pair values (a-n and n-n2 together), in the same (squared or
  not) space as the loss, clipped at 0 and held constant for the gradient (stop-gradient).
"""

from __future__ import annotations

import warnings
from typing import Any

import keras
import tensorflow as tf

from oneshot.distances import Distance
from oneshot.losses.base import MetricLoss, check_margin, pair_values
from oneshot.losses.triplet import triplet_loss_from_distances
from oneshot.miners import QuadrupletMarginMiner, get_miner
from oneshot.pieces import register
from oneshot.reducers import get_reducer


def check_quadruplet_margins(
    alpha1: float, alpha2: float, max_distance: float | None, squared: bool = True
) -> None:
    """Warn when a margin can never be met because distances are bounded by ``max_distance``."""
    if max_distance is None:
        return
    bound = float(max_distance) ** 2 if squared else float(max_distance)
    what = "g^2" if squared else "g"
    for name, alpha in (("alpha1", alpha1), ("alpha2", alpha2)):
        if alpha >= bound:
            warnings.warn(
                f"Quadruplet margin {name}={alpha} can never be met: distances are at most "
                f"{max_distance}, so differences of {what} are at most {bound}. The hinge never "
                f"reaches zero and every quadruplet keeps pulling. Use {name} < {bound} "
                "(e.g. alpha1=0.5, alpha2=0.25 for the learned metric) or adaptive_margin=True.",
                UserWarning,
                stacklevel=3,
            )


def tuple_adaptive_margins(
    d_ap: tf.Tensor, d_an: tf.Tensor, d_nn: tf.Tensor, w1: float = 1.0, w2: float = 0.5
) -> tuple[tf.Tensor, tf.Tensor]:
    """(alpha1, alpha2) = (w1, w2) * max(mu_n - mu_p, 0) over a batch of quadruplets' values,
    constant for the gradient (the in-batch version is ``oneshot.miners.adaptive_margins``)."""
    mu_p = tf.reduce_mean(d_ap)
    mu_n = tf.reduce_mean(tf.concat([d_an, d_nn], axis=0))
    gap = tf.stop_gradient(tf.maximum(mu_n - mu_p, 0.0))
    return w1 * gap, w2 * gap


def _values(distances: tf.Tensor, squared: bool) -> tf.Tensor:
    d = tf.reshape(tf.convert_to_tensor(distances), [-1])
    return tf.square(d) if squared else d


def quadruplet_loss(
    d_ap: tf.Tensor,
    d_an: tf.Tensor,
    d_nn: tf.Tensor,
    alpha1: float = 1.0,
    alpha2: float = 0.5,
    squared: bool = True,
    adaptive_margin: bool = False,
    w1: float = 1.0,
    w2: float = 0.5,
) -> tf.Tensor:
    """Per-quadruplet loss from the three pair distances g(a,p), g(a,n), g(n,n2).

    Args:
        d_ap, d_an, d_nn: (B,) or (B, 1) distances (learned metric g or a fixed distance).
        alpha1: margin of the anchor-negative term. Defaults to 1.0 (the paper).
        alpha2: margin of the negative-pair term. Defaults to 0.5 (the paper).
        squared: square the distances, as in the paper. Defaults to True.
        adaptive_margin: replace alpha1, alpha2 by :func:`tuple_adaptive_margins`. Defaults
            to False.
        w1, w2: adaptive-margin weights. Defaults to 1.0 and 0.5 (the paper).

    Returns:
        A float tensor of shape (B,).
    """
    p, n, nn = _values(d_ap, squared), _values(d_an, squared), _values(d_nn, squared)
    if adaptive_margin:
        alpha1, alpha2 = tuple_adaptive_margins(p, n, nn, w1, w2)
    return triplet_loss_from_distances(p, n, alpha1) + triplet_loss_from_distances(p, nn, alpha2)


@register
class QuadrupletLoss(MetricLoss):
    """Quadruplet loss over the quadruplets of a batch, with margin-based mining (Chen 2017).

    ``y_true``: integer class labels (B,); ``y_pred``: embeddings (B, D). The tuples come from
    ``QuadrupletMarginMiner`` built from the SAME margins (so mining and loss cannot differ):
    the hardest negative of each positive pair (first term) and the hardest negative pair whose
    classes both differ from the anchor's (second term), kept when they violate their margin.
    Each term is reduced by the reducer over its own tuples and the two are added.

    Args:
        alpha1, alpha2: margins of the two terms. Defaults to 1.0 and 0.5 (the paper).
        adaptive_margin: ``alpha_i = w_i * max(mu_n - mu_p, 0)`` from the batch's mean
            negative and positive pair values. Defaults to False.
        w1, w2: adaptive-margin weights. Defaults to 1.0 and 0.5.
        distance: Defaults to ``LpDistance()``; the paper's ``g^2`` is ``LpDistance(power=2)``.
        reducer: Defaults to ``MeanReducer()``.
    """

    def __init__(
        self,
        alpha1: float = 1.0,
        alpha2: float = 0.5,
        adaptive_margin: bool = False,
        w1: float = 1.0,
        w2: float = 0.5,
        distance: Distance | str | dict | None = None,
        reducer: Any = None,
        name: str = "quadruplet_loss",
        reduction: str = "sum_over_batch_size",
        dtype: str | None = None,
        miner: Any = None,
    ) -> None:
        margins = dict(
            alpha1=check_margin(alpha1, "alpha1"),
            alpha2=check_margin(alpha2, "alpha2"),
            adaptive_margin=bool(adaptive_margin),
            w1=check_margin(w1, "w1"),
            w2=check_margin(w2, "w2"),
        )
        own = QuadrupletMarginMiner(**margins)
        if miner is not None and get_miner(miner) != own:  # an object, a name or a config dict
            raise ValueError(
                "Invalid value for argument `miner`. QuadrupletLoss mines with its own margins "
                f"(QuadrupletMarginMiner built from alpha1, alpha2, ...). Received: miner={miner!r}"
            )
        super().__init__(distance, own, reducer, name, reduction, dtype)
        for key, value in margins.items():
            setattr(self, key, value)

    def per_sample(self, dist, labels, indices, batch_size):
        (a, p, n), (qa, qp, qn, qn2) = indices
        alpha1, alpha2 = self.miner.margins(dist, labels)  # the margins it mined with
        term1 = triplet_loss_from_distances(
            pair_values(dist, a, p), pair_values(dist, a, n), alpha1
        )
        term2 = triplet_loss_from_distances(
            pair_values(dist, qa, qp), pair_values(dist, qn, qn2), alpha2
        )
        return self.reducer(term1, a, batch_size) + self.reducer(term2, qa, batch_size)

    def get_config(self) -> dict[str, Any]:
        config = {k: v for k, v in super().get_config().items() if k != "miner"}
        return {
            **config,
            "alpha1": self.alpha1,
            "alpha2": self.alpha2,
            "adaptive_margin": self.adaptive_margin,
            "w1": self.w1,
            "w2": self.w2,
        }


@register
class QuadrupletLossLayer(keras.layers.Layer):
    """Custom loss layer: adds the mean quadruplet loss of ``[d_ap, d_an, d_nn]`` with add_loss.

    Returns the distances stacked (B, 3) = ``[g(a,p), g(a,n), g(n,n2)]`` for mining.

    Args:
        alpha1, alpha2, squared, adaptive_margin, w1, w2: see :func:`quadruplet_loss`.
        reducer: over the B quadruplets. Defaults to ``MeanReducer()`` (Eric's code summed).
        max_distance: upper bound of the distances if known (1.0 for the learned metric);
            used only to warn about unreachable margins. Defaults to None.
    """

    def __init__(
        self,
        alpha1: float = 1.0,
        alpha2: float = 0.5,
        squared: bool = True,
        adaptive_margin: bool = False,
        max_distance: float | None = None,
        w1: float = 1.0,
        w2: float = 0.5,
        reducer: Any = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.alpha1 = check_margin(alpha1, "alpha1")
        self.alpha2 = check_margin(alpha2, "alpha2")
        self.squared = bool(squared)
        self.adaptive_margin = bool(adaptive_margin)
        self.max_distance = None if max_distance is None else float(max_distance)
        self.w1, self.w2 = check_margin(w1, "w1"), check_margin(w2, "w2")
        self.reducer = get_reducer(reducer)
        if not self.adaptive_margin:
            check_quadruplet_margins(self.alpha1, self.alpha2, self.max_distance, self.squared)

    def call(self, inputs):
        d_ap, d_an, d_nn = (tf.reshape(d, [-1]) for d in inputs)
        loss = quadruplet_loss(
            d_ap, d_an, d_nn, self.alpha1, self.alpha2, self.squared, self.adaptive_margin,
            self.w1, self.w2,
        )  # fmt: skip
        self.add_loss(self.reducer.reduce(loss))
        return tf.stack([d_ap, d_an, d_nn], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 3)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "alpha1": self.alpha1,
            "alpha2": self.alpha2,
            "squared": self.squared,
            "adaptive_margin": self.adaptive_margin,
            "max_distance": self.max_distance,
            "w1": self.w1,
            "w2": self.w2,
            "reducer": keras.saving.serialize_keras_object(self.reducer),
        }
