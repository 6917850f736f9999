"""Softmax over normalised class weights, with or without a margin on the target class.

With x the embedding, W_c the weights of class c (both L2-normalised, so ``cos(theta_c) =
x . W_c``) and y the label, each loss is the cross-entropy of softmax logits:

    normalized softmax:  z_c = cos(theta_c) / temperature                (Zhai & Wu 2018)
    CosFace:             z_c = s (cos(theta_c) - m [c = y])              (Wang et al. 2018)
    ArcFace:             z_c = s cos(theta_c + m [c = y])                (Deng et al. 2019)
    sub-centre ArcFace:  ArcFace with cos(theta_c) = max_k cos(x, W_ck)  (Deng et al. 2020)

The class weights are a :class:`oneshot.losses.proxies.ClassProxies` layer owned by the loss
(``loss.head``); see :mod:`oneshot.losses.proxies` for how a model trains and saves them.
"""

from __future__ import annotations

import math
from typing import Any

import tensorflow as tf

from oneshot.checks import check_count, check_positive
from oneshot.distances.base import safe_sqrt
from oneshot.losses.base import check_margin
from oneshot.losses.proxies import ProxyLoss
from oneshot.pieces import register


def softmax_cross_entropy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """``-log softmax(logits)[label]`` per row (B,), for int labels (B,) and logits (B, C)."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


def with_target(labels: tf.Tensor, cos: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """``cos`` (B, C) with the label column of each row replaced by ``target`` (B,)."""
    onehot = tf.one_hot(labels, tf.shape(cos)[1], dtype=cos.dtype)
    return cos + onehot * (target - target_cosines(labels, cos))[:, None]


def target_cosines(labels: tf.Tensor, cos: tf.Tensor) -> tf.Tensor:
    """The label column of each row of ``cos`` (B, C): (B,)."""
    return tf.gather(cos, labels, axis=1, batch_dims=1)


def sine_of(cos: tf.Tensor) -> tf.Tensor:
    """``sin(theta) = sqrt(1 - cos^2)`` for theta in [0, pi], with a finite gradient at
    ``cos = +-1`` (an embedding equal or opposite to its class weight): the square root is 0,
    with a zero gradient, where 1 - cos^2 <= 1e-12 (``oneshot.distances.base.safe_sqrt``)."""
    return safe_sqrt(1.0 - tf.square(cos))


def check_angular_margin(margin: Any) -> float:
    """ArcFace's margin as a float in [0, pi/2] radians, else a ValueError that names the
    units (a margin above pi/2 is almost surely in degrees: 28.6 degrees is 0.4992 rad)."""
    margin = check_margin(margin)
    if margin > math.pi / 2:
        raise ValueError(
            "Invalid value for argument `margin`. Expected an angle in radians in [0, pi/2]. "
            f"Received: margin={margin!r}. Margins are in radians; {margin:g} looks like "
            f"degrees: pass {math.radians(margin):.4f}."
        )
    return margin


def additive_angular_margin(cos: tf.Tensor, margin: float) -> tf.Tensor:
    """``cos(theta + margin)`` from ``cos(theta)`` without arccos: ``cos(theta) cos(m) -
    sin(theta) sin(m)`` (the paper's formula, also past theta + m > pi)."""
    return cos * math.cos(margin) - sine_of(cos) * math.sin(margin)


@register
class NormalizedSoftmaxLoss(ProxyLoss):
    """Normalized softmax: cross-entropy of cosine logits divided by a temperature.

    ``L = -log( exp(cos(x, W_y) / T) / sum_c exp(cos(x, W_c) / T) )`` with x and W_c
    L2-normalised. ``y_true``: integer labels (B,) in [0, num_classes); ``y_pred``: embeddings
    (B, D); returns per-sample losses (B,).

    Args:
        num_classes: C, the number of training classes.
        temperature: T > 0. Defaults to 0.05 (the paper's).
        embedding_dim, lr_multiplier, initializer: the class weights, see
            :class:`oneshot.losses.proxies.ClassProxies`. Defaults to None, 1.0, normal(0, 1).
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Example:
    >>> model = build_online(conv4(), loss=NormalizedSoftmaxLoss(num_classes=10))  # doctest: +SKIP

    Reference: Zhai, Wu, "Classification is a Strong Baseline for Deep Metric Learning",
    BMVC 2019, arXiv 1811.12649.
    """

    def __init__(
        self,
        num_classes: int,
        temperature: float = 0.05,
        embedding_dim: int | None = None,
        lr_multiplier: float = 1.0,
        initializer: Any = None,
        name: str = "normalized_softmax_loss",
        reduction: str = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        self.temperature = check_positive("temperature", temperature)
        super().__init__(
            num_classes, embedding_dim, lr_multiplier, initializer, name, reduction, dtype
        )

    def from_cosines(self, labels, cos):
        return softmax_cross_entropy(labels, cos[:, :, 0] / self.temperature)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "temperature": self.temperature}


@register
class CosFaceLoss(ProxyLoss):
    """CosFace (large margin cosine loss): the target cosine lowered by a margin, then scaled.

    ``L = -log( exp(s (cos(theta_y) - m)) / (exp(s (cos(theta_y) - m)) + sum_{c != y}
    exp(s cos(theta_c))) )`` with x and W_c L2-normalised.

    Args:
        num_classes: C, the number of training classes.
        scale: s > 0. Defaults to 64.0 (the paper's).
        margin: m >= 0. Defaults to 0.35 (the paper's).
        embedding_dim, lr_multiplier, initializer: the class weights, see
            :class:`oneshot.losses.proxies.ClassProxies`. Defaults to None, 1.0, normal(0, 1).
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference: Wang, Wang, Zhou, Ji, Gong, Zhou, Li, Liu, "CosFace: Large Margin Cosine Loss for
    Deep Face Recognition", CVPR 2018, arXiv 1801.09414.
    """

    def __init__(
        self,
        num_classes: int,
        scale: float = 64.0,
        margin: float = 0.35,
        embedding_dim: int | None = None,
        lr_multiplier: float = 1.0,
        initializer: Any = None,
        name: str = "cosface_loss",
        reduction: str = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        self.scale = check_positive("scale", scale)
        self.margin = check_margin(margin)
        super().__init__(
            num_classes, embedding_dim, lr_multiplier, initializer, name, reduction, dtype
        )

    def from_cosines(self, labels, cos):
        cos = cos[:, :, 0]
        logits = with_target(labels, cos, target_cosines(labels, cos) - self.margin)
        return softmax_cross_entropy(labels, self.scale * logits)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scale": self.scale, "margin": self.margin}


@register
class ArcFaceLoss(ProxyLoss):
    """ArcFace (additive angular margin): the angle to the target class widened by a margin.

    ``L = -log( exp(s cos(theta_y + m)) / (exp(s cos(theta_y + m)) + sum_{c != y}
    exp(s cos(theta_c))) )`` with x and W_c L2-normalised. ``cos(theta + m)`` is computed as
    ``cos(theta) cos(m) - sin(theta) sin(m)`` with a finite gradient at theta = 0 and pi.

    Past ``theta_y > pi - m`` the formula is kept as the paper writes it (as
    pytorch-metric-learning computes it): ``theta_y + m`` passes pi, so the target logit
    ``s cos(theta_y + m)`` rises again as the embedding turns further from its class (at most
    by ``s (1 - cos m)`` at theta_y = pi) and the gradient there pushes the wrong way. Only
    embeddings almost opposite their class weight are affected, and a margin of at most pi/2
    keeps that region within the last quarter turn; InsightFace's "easy margin" and
    ``cos(theta) - m sin(m)`` fallbacks are not offered.

    Args:
        num_classes: C, the number of training classes.
        scale: s > 0. Defaults to 64.0 (the paper's).
        margin: m in radians, in [0, pi/2] (a larger value is refused: it is most likely in
            degrees). Defaults to 0.5 (the paper's; 28.6 degrees).
        embedding_dim, lr_multiplier, initializer: the class weights, see
            :class:`oneshot.losses.proxies.ClassProxies`. Defaults to None, 1.0, normal(0, 1).
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference: Deng, Guo, Xue, Zafeiriou, "ArcFace: Additive Angular Margin Loss for Deep Face
    Recognition", CVPR 2019, arXiv 1801.07698.
    """

    def __init__(
        self,
        num_classes: int,
        scale: float = 64.0,
        margin: float = 0.5,
        embedding_dim: int | None = None,
        lr_multiplier: float = 1.0,
        initializer: Any = None,
        name: str = "arcface_loss",
        reduction: str = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        self.scale = check_positive("scale", scale)
        self.margin = check_angular_margin(margin)
        super().__init__(
            num_classes, embedding_dim, lr_multiplier, initializer, name, reduction, dtype
        )

    def from_cosines(self, labels, cos):
        cos = tf.reduce_max(cos, axis=-1)  # the closest sub-centre (one centre: itself)
        target = additive_angular_margin(target_cosines(labels, cos), self.margin)
        return softmax_cross_entropy(labels, self.scale * with_target(labels, cos, target))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scale": self.scale, "margin": self.margin}


@register
class SubCenterArcFaceLoss(ArcFaceLoss):
    """Sub-centre ArcFace: K weight vectors per class; a class's cosine is its closest one's.

    ``cos(theta_c) = max_k cos(x, W_ck)``, then the ArcFace loss
    ``-log( exp(s cos(theta_y + m)) / (exp(s cos(theta_y + m)) + sum_{c != y}
    exp(s cos(theta_c))) )``. (The paper's later step, dropping the samples far from their
    dominant sub-centre, is not part of the loss.)

    Args:
        num_classes: C, the number of training classes.
        centers_per_class: K >= 1. Defaults to 3 (the paper's).
        scale, margin: as for :class:`ArcFaceLoss`. Defaults to 64.0 and 0.5.
        embedding_dim, lr_multiplier, initializer, name, reduction, dtype: as for
            :class:`ArcFaceLoss`.

    Reference: Deng, Guo, Liu, Gong, Zafeiriou, "Sub-center ArcFace: Boosting Face Recognition
    by Large-scale Noisy Web Faces", ECCV 2020 (no arXiv version).
    """

    def __init__(
        self,
        num_classes: int,
        centers_per_class: int = 3,
        scale: float = 64.0,
        margin: float = 0.5,
        embedding_dim: int | None = None,
        lr_multiplier: float = 1.0,
        initializer: Any = None,
        name: str = "sub_center_arcface_loss",
        reduction: str = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        self.centers_per_class = check_count("centers_per_class", centers_per_class, 1)
        super().__init__(
            num_classes, scale, margin, embedding_dim, lr_multiplier, initializer, name,
            reduction, dtype,
        )  # fmt: skip

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "centers_per_class": self.centers_per_class}
