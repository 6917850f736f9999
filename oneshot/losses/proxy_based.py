"""Proxy-based losses: each class has learned proxies that embeddings are pulled towards.

    ProxyNCA:     softmax over proxies of -s |x - p_c|^2, x and p_c L2-normalised
    ProxyAnchor:  each proxy is an anchor that pulls its class's embeddings (within the batch)
                  and pushes the others, with log-sum-exp weights
    SoftTriple:   K centres per class, a class similarity that softly picks the closest centre,
                  a margin softmax over classes, and a regulariser merging close centres

The proxies are a :class:`oneshot.losses.proxies.ClassProxies` layer owned by the loss
(``loss.head``; ``lr_multiplier`` trains them faster, as the papers do).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from oneshot.checks import check_count, check_positive
from oneshot.losses.base import check_margin
from oneshot.losses.margin_softmax import softmax_cross_entropy
from oneshot.losses.proxies import ProxyLoss, normalize
from oneshot.pieces import register

#: inside the square root of the SoftTriple regulariser, as in the paper's code (finite
#: gradient for two equal centres)
SOFT_TRIPLE_EPSILON = 1e-5


def log1p_sum_exp(logits: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """``log(1 + sum_i exp(logits[i, c]))`` over the rows where ``mask`` is True, per column
    (C,), as a stable log-sum-exp (a column without any row gives 0)."""
    excluded = tf.fill(tf.shape(logits), tf.constant(logits.dtype.min, logits.dtype))
    rows = tf.concat([tf.zeros_like(logits[:1]), tf.where(mask, logits, excluded)], axis=0)
    return tf.reduce_logsumexp(rows, axis=0)


def proxy_anchor_loss(labels: tf.Tensor, cos: tf.Tensor, alpha: float, delta: float):
    """The Proxy Anchor loss (a scalar) from int labels (B,) and cosines to the proxies (B, C)."""
    positive = tf.cast(tf.one_hot(labels, tf.shape(cos)[1]), tf.bool)
    pulls = log1p_sum_exp(-alpha * (cos - delta), positive)  # (C,); 0 for absent classes
    pushes = log1p_sum_exp(alpha * (cos + delta), tf.logical_not(positive))
    present = tf.reduce_sum(tf.cast(tf.reduce_any(positive, axis=0), cos.dtype))
    return tf.reduce_sum(pulls) / tf.maximum(present, 1.0) + tf.reduce_mean(pushes)


@register
class ProxyAnchorLoss(ProxyLoss):
    """Proxy Anchor loss, with cosine similarity s(x, p):

    ``L = 1/|P+| sum_{p in P+} log(1 + sum_{x in X_p+} exp(-alpha (s(x, p) - delta)))
    + 1/|P| sum_{p in P} log(1 + sum_{x in X_p-} exp(alpha (s(x, p) + delta)))``

    P: all proxies (one per class); P+: those of the classes in the batch; X_p+ / X_p-: the
    batch's embeddings of p's class / of the other classes. The loss belongs to the whole
    batch, so every sample carries it: the per-sample values (B,) are all equal to L (their
    mean is L; a ``sample_weight`` scales it by the weights' mean).

    Args:
        num_classes: C, the number of training classes.
        alpha: the scale, > 0. Defaults to 32.0 (the paper's).
        delta: the margin, >= 0. Defaults to 0.1 (the paper's).
        lr_multiplier: the proxies' learning rate relative to the network's. Defaults to 100.0
            (the paper's).
        embedding_dim, initializer: see :class:`oneshot.losses.proxies.ClassProxies`.
            Defaults to None and normal(0, 1).
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference: Kim, Kim, Cho, Kwak, "Proxy Anchor Loss for Deep Metric Learning", CVPR 2020,
    arXiv 2003.13911.
    """

    def __init__(
        self,
        num_classes: int,
        alpha: float = 32.0,
        delta: float = 0.1,
        embedding_dim: int | None = None,
        lr_multiplier: float = 100.0,
        initializer: Any = None,
        name: str = "proxy_anchor_loss",
        reduction: str = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        self.alpha = check_positive("alpha", alpha)
        self.delta = check_margin(delta, "delta")
        super().__init__(
            num_classes, embedding_dim, lr_multiplier, initializer, name, reduction, dtype
        )

    def from_cosines(self, labels, cos):
        loss = proxy_anchor_loss(labels, cos[:, :, 0], self.alpha, self.delta)
        return tf.fill(tf.shape(labels), loss)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "alpha": self.alpha, "delta": self.delta}


@register
class ProxyNCALoss(ProxyLoss):
    """ProxyNCA: a softmax over the proxies of minus the scaled squared distances.

    ``L = -log( exp(-s |x - p_y|^2) / sum_c exp(-s |x - p_c|^2) )`` with x and p_c
    L2-normalised (so ``|x - p_c|^2 = 2 - 2 cos(x, p_c)``). The paper's denominator leaves out
    the target proxy; here it is the softmax over all proxies (the common form, a
    cross-entropy), which differs by ``log(1 + ...)`` only in how hard the target is pushed.

    Args:
        num_classes: C, the number of training classes.
        scale: s > 0, the inverse temperature of the softmax. Defaults to 1.0 (the paper's
            formula has none; ProxyNCA++, Teh et al. 2020, found 9 = 1 / temperature 1/9
            better).
        lr_multiplier: the proxies' learning rate relative to the network's. Defaults to 1.0
            (the paper sets none for the proxies).
        embedding_dim, initializer: see :class:`oneshot.losses.proxies.ClassProxies`.
            Defaults to None and normal(0, 1).
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference: Movshovitz-Attias, Toshev, Leung, Ioffe, Singh, "No Fuss Distance Metric
    Learning using Proxies", ICCV 2017, arXiv 1703.07464.
    """

    def __init__(
        self,
        num_classes: int,
        scale: float = 1.0,
        embedding_dim: int | None = None,
        lr_multiplier: float = 1.0,
        initializer: Any = None,
        name: str = "proxy_nca_loss",
        reduction: str = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        self.scale = check_positive("scale", scale)
        super().__init__(
            num_classes, embedding_dim, lr_multiplier, initializer, name, reduction, dtype
        )

    def from_cosines(self, labels, cos):
        squared = 2.0 - 2.0 * cos[:, :, 0]  # |x - p|^2 of unit vectors
        return softmax_cross_entropy(labels, -self.scale * squared)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scale": self.scale}


def center_regularizer(centers: tf.Tensor, num_classes: int, k: int) -> tf.Tensor:
    """SoftTriple's ``sum_c sum_{t < s} sqrt(2 + eps - 2 w_ct . w_cs) / (C K (K - 1))`` for
    unit centres (C * K, D); 0 for one centre per class."""
    if k == 1:
        return tf.zeros((), centers.dtype)
    w = tf.reshape(centers, (num_classes, k, -1))
    similarity = tf.matmul(w, w, transpose_b=True)  # (C, K, K)
    upper = tf.cast(tf.linalg.band_part(tf.ones((k, k)), 0, -1) - tf.eye(k), centers.dtype)
    distance = tf.sqrt(2.0 + SOFT_TRIPLE_EPSILON - 2.0 * similarity)
    return tf.reduce_sum(distance * upper) / (num_classes * k * (k - 1))


@register
class SoftTripleLoss(ProxyLoss):
    """SoftTriple: K centres per class, soft assignment to them, margin softmax over classes.

    With x and the centres w_ck L2-normalised: ``S_c = sum_k softmax_k(x . w_ck / gamma)
    x . w_ck`` and ``L = -log( exp(lambda (S_y - delta)) / (exp(lambda (S_y - delta)) +
    sum_{c != y} exp(lambda S_c)) ) + tau R``, with the regulariser ``R = sum_c sum_{t < s}
    sqrt(2 + 1e-5 - 2 w_ct . w_cs) / (C K (K - 1))`` (1e-5 as in the paper's code) that
    lets centres of a class merge. Per-sample values: each sample's cross-entropy plus tau R.

    Args:
        num_classes: C, the number of training classes.
        centers_per_class: K >= 1. Defaults to 10 (the paper's).
        la: lambda > 0, the scale. Defaults to 20.0 (the paper's).
        gamma: > 0, the temperature of the soft assignment. Defaults to 0.1 (the paper's).
        tau: >= 0, the weight of the regulariser. Defaults to 0.2 (the paper's).
        delta: >= 0, the margin. Defaults to 0.01 (the paper's).
        lr_multiplier: the centres' learning rate relative to the network's. Defaults to 100.0
            (the paper's code: 1e-2 for the centres, 1e-4 for the network).
        embedding_dim, initializer: see :class:`oneshot.losses.proxies.ClassProxies`.
            Defaults to None and normal(0, 1).
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Reference: Qian, Shang, Sun, Hu, Li, Jin, "SoftTriple Loss: Deep Metric Learning Without
    Triplet Sampling", ICCV 2019, arXiv 1909.05235.
    """

    def __init__(
        self,
        num_classes: int,
        centers_per_class: int = 10,
        la: float = 20.0,
        gamma: float = 0.1,
        tau: float = 0.2,
        delta: float = 0.01,
        embedding_dim: int | None = None,
        lr_multiplier: float = 100.0,
        initializer: Any = None,
        name: str = "soft_triple_loss",
        reduction: str = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        self.centers_per_class = check_count("centers_per_class", centers_per_class, 1)
        self.la = check_positive("la", la)
        self.gamma = check_positive("gamma", gamma)
        self.tau = check_margin(tau, "tau")
        self.delta = check_margin(delta, "delta")
        super().__init__(
            num_classes, embedding_dim, lr_multiplier, initializer, name, reduction, dtype
        )

    def proxy_loss(self, labels, embeddings, proxies):
        k = self.centers_per_class
        centers = normalize(proxies)
        cos = tf.matmul(normalize(embeddings), centers, transpose_b=True)
        cos = tf.reshape(cos, (tf.shape(cos)[0], self.num_classes, k))  # (B, C, K)
        similarity = tf.reduce_sum(tf.nn.softmax(cos / self.gamma, axis=-1) * cos, axis=-1)
        onehot = tf.one_hot(labels, self.num_classes, dtype=cos.dtype)
        ce = softmax_cross_entropy(labels, self.la * (similarity - self.delta * onehot))
        return ce + self.tau * center_regularizer(centers, self.num_classes, k)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "centers_per_class": self.centers_per_class,
            "la": self.la,
            "gamma": self.gamma,
            "tau": self.tau,
            "delta": self.delta,
        }
