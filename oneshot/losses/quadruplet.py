"""Quadruplet loss (Chen et al., CVPR 2017, https://arxiv.org/abs/1704.01719).

    L = max(g(a,p)^2 - g(a,n)^2 + alpha1, 0) + max(g(a,p)^2 - g(n,n2)^2 + alpha2, 0)

``g`` is a distance: the learned metric network's output in [0, 1] or any fixed distance; ``n2``
is a second negative whose class differs from both the anchor's and ``n``'s. The first term is
the triplet loss; the second pushes the negative pair (n, n2) apart by a weaker margin
(alpha1 > alpha2). Reduction: the mean over the batch (Eric's code summed).

Fixes of the original experiment (see ``REFERENCE.md``):

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

import keras
import tensorflow as tf

from oneshot.losses.contrastive import _check_margin

ADAPTIVE_WEIGHTS = (1.0, 0.5)


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


def adaptive_margins(
    d_ap: tf.Tensor, d_an: tf.Tensor, d_nn: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """(alpha1, alpha2) = (1, 0.5) * max(mu_n - mu_p, 0), constant for the gradient."""
    mu_p = tf.reduce_mean(d_ap)
    mu_n = tf.reduce_mean(tf.concat([d_an, d_nn], axis=0))
    gap = tf.stop_gradient(tf.maximum(mu_n - mu_p, 0.0))
    return ADAPTIVE_WEIGHTS[0] * gap, ADAPTIVE_WEIGHTS[1] * gap


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
) -> tf.Tensor:
    """Per-quadruplet loss from the three pair distances g(a,p), g(a,n), g(n,n2).

    Args:
        d_ap, d_an, d_nn: (B,) or (B, 1) distances (learned metric g or a fixed distance).
        alpha1: margin of the anchor-negative term. Defaults to 1.0 (the paper).
        alpha2: margin of the negative-pair term. Defaults to 0.5 (the paper).
        squared: square the distances, as in the paper. Defaults to True.
        adaptive_margin: replace alpha1, alpha2 by :func:`adaptive_margins`. Defaults to False.

    Returns:
        A float tensor of shape (B,).
    """
    p, n, nn = _values(d_ap, squared), _values(d_an, squared), _values(d_nn, squared)
    if adaptive_margin:
        alpha1, alpha2 = adaptive_margins(p, n, nn)
    return tf.maximum(p - n + alpha1, 0.0) + tf.maximum(p - nn + alpha2, 0.0)


def quadruplet_hardness(
    d_ap: tf.Tensor, d_an: tf.Tensor, d_nn: tf.Tensor, squared: bool = True
) -> tf.Tensor:
    """Mining score (B,), higher = harder: 2 v(a,p) - v(a,n) - v(n,n2), v = g^2 or g as the loss."""
    p, n, nn = _values(d_ap, squared), _values(d_an, squared), _values(d_nn, squared)
    return 2.0 * p - n - nn


@keras.saving.register_keras_serializable(package="oneshot")
class QuadrupletLossLayer(keras.layers.Layer):
    """Custom loss layer: adds the mean quadruplet loss of ``[d_ap, d_an, d_nn]`` with add_loss.

    Returns the distances stacked (B, 3) = ``[g(a,p), g(a,n), g(n,n2)]`` for mining.

    Args:
        alpha1, alpha2, squared, adaptive_margin: see :func:`quadruplet_loss`.
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
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.alpha1 = _check_margin(alpha1, "alpha1")
        self.alpha2 = _check_margin(alpha2, "alpha2")
        self.squared = bool(squared)
        self.adaptive_margin = bool(adaptive_margin)
        self.max_distance = None if max_distance is None else float(max_distance)
        if not self.adaptive_margin:
            check_quadruplet_margins(self.alpha1, self.alpha2, self.max_distance, self.squared)

    def call(self, inputs):
        d_ap, d_an, d_nn = (tf.reshape(d, [-1]) for d in inputs)
        loss = quadruplet_loss(
            d_ap, d_an, d_nn, self.alpha1, self.alpha2, self.squared, self.adaptive_margin
        )
        self.add_loss(tf.reduce_mean(loss))
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
        }
