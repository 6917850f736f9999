"""What the classification and proxy losses share: class weights (proxies) as a Keras layer.

These losses compare each embedding with learned vectors, one or more per class, instead of
with the other embeddings of the batch. They keep the in-batch signature (``y_true`` = integer
labels (B,), ``y_pred`` = embeddings (B, D), per-sample values (B,)), so the data pipeline,
``fit`` and evaluation do not change. The vectors live in a :class:`ClassProxies` layer that the
loss exposes as ``loss.head``; :func:`oneshot.models.build_online` (or
:func:`oneshot.losses.attach`) puts it in the training model, so ``fit`` trains it and the run
checkpoint holds it, while the saved ``model.keras`` (:func:`oneshot.models.saveable_model`)
stays the embedding model alone. A model that computes the loss without holding the layer is
refused (:mod:`oneshot.losses.heads`).

A per-parameter learning rate (the papers train proxies faster) is a reparametrisation: the
layer stores ``raw`` and uses ``W = lr_multiplier * raw`` (``raw`` starts at ``W0 /
lr_multiplier``). The gradient on ``raw`` is ``lr_multiplier`` times the gradient on ``W``; a
scale-invariant optimizer (Adam, RMSprop, Adagrad: step = lr * g / (|g| + eps)) then moves
``raw`` by the same step as with a multiplier of 1, so ``W`` moves ``lr_multiplier`` times as
far (Adam's epsilon acts as ``eps / lr_multiplier``). With plain SGD the step on ``W`` is
``lr_multiplier ** 2`` times larger.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from oneshot.checks import check_count, check_positive
from oneshot.distances import CosineSimilarity
from oneshot.losses.base import MetricLoss, check_loss_inputs
from oneshot.losses.heads import LossHead, claim, updates_state
from oneshot.pieces import register

#: the default initial proxies: unit-variance normal entries (norm about sqrt(D) whatever C)
DEFAULT_INITIALIZER = {"class_name": "RandomNormal", "config": {"mean": 0.0, "stddev": 1.0}}


def check_class_indices(labels: tf.Tensor, num_classes: int) -> tf.Tensor:
    """Labels (B,) as int32 class indices; an error naming `y_true` and `num_classes` if one is
    outside ``[0, num_classes)`` (a ValueError eagerly, an InvalidArgumentError in a graph)."""
    message = (
        f"Invalid value for `y_true`. Expected integer class labels in [0, {num_classes}) "
        f"(`num_classes`={num_classes}: one class weight or proxy per training class)."
    )
    if tf.executing_eagerly():
        values = np.asarray(labels)
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{message} Received labels from {values.min()} to {values.max()}.")
        return tf.cast(labels, tf.int32)
    checks = [
        tf.debugging.assert_non_negative(labels, message=message),
        tf.debugging.assert_less(labels, tf.cast(num_classes, labels.dtype), message=message),
    ]
    with tf.control_dependencies(checks):
        return tf.cast(labels, tf.int32)


def normalize(x: tf.Tensor) -> tf.Tensor:
    """Rows scaled to unit L2 norm; a zero row stays zero, with a finite gradient."""
    return tf.math.l2_normalize(x, axis=-1, epsilon=1e-12)


def proxy_cosines(embeddings: tf.Tensor, proxies: tf.Tensor, centers: int) -> tf.Tensor:
    """Cosine similarities (B, C, K) of every embedding (B, D) with every proxy (C * K, D),
    proxy ``c * K + k`` being the k-th centre of class c."""
    cos = tf.matmul(normalize(embeddings), normalize(proxies), transpose_b=True)
    return tf.reshape(cos, (tf.shape(cos)[0], -1, centers))


@register
class ClassProxies(LossHead):
    """Learned class vectors: ``centers_per_class`` proxies of dimension D for each class.

    Calling it on embeddings (B, D) returns the proxies (C * K, D) (row ``c * K + k``: centre k
    of class c), building them on the first call if ``embedding_dim`` was not given.

    Args:
        num_classes: C, the number of training classes (>= 2).
        embedding_dim: D; None takes it from the first input. Defaults to None.
        centers_per_class: K. Defaults to 1.
        initializer: of the proxies W (Keras initializer or its config). Defaults to a normal
            distribution of standard deviation 1.
        lr_multiplier: m; ``W = m * raw`` so that Adam moves W m times as fast as the rest of
            the model (see the module docstring). Defaults to 1.0.
    """

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int | None = None,
        centers_per_class: int = 1,
        initializer: Any = None,
        lr_multiplier: float = 1.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.num_classes = check_count("num_classes", num_classes, 2)
        self.embedding_dim = (
            None if embedding_dim is None else check_count("embedding_dim", embedding_dim, 1)
        )
        self.centers_per_class = check_count("centers_per_class", centers_per_class, 1)
        self.initializer = keras.initializers.get(initializer or DEFAULT_INITIALIZER)
        self.lr_multiplier = check_positive("lr_multiplier", lr_multiplier)
        self.raw = None

    def build(self, input_shape) -> None:
        self.embedding_size(input_shape)
        init, m = self.initializer, self.lr_multiplier

        def scaled(shape, dtype=None):  # raw = W0 / m, so that W = m * raw starts at W0
            return init(shape, dtype=dtype) / m

        shape = (self.num_classes * self.centers_per_class, self.embedding_dim)
        self.raw = self.add_weight(shape=shape, initializer=scaled, name="proxies")

    @property
    def proxies(self) -> tf.Tensor:
        """The proxies W = lr_multiplier * raw, (C * K, D)."""
        return self.lr_multiplier * tf.convert_to_tensor(self.raw)

    def call(self, inputs):
        return self.proxies

    def compute_output_shape(self, input_shape):
        return (self.num_classes * self.centers_per_class, input_shape[-1])

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "embedding_dim": self.embedding_dim,
            "centers_per_class": self.centers_per_class,
            "initializer": keras.initializers.serialize(self.initializer),
            "lr_multiplier": self.lr_multiplier,
        }


class ProxyLoss(MetricLoss):
    """Base of the losses with class weights or proxies (subclasses implement
    :meth:`from_cosines` or override :meth:`proxy_loss`).

    The loss owns its :class:`ClassProxies` as ``loss.head``: build the training model with
    :func:`oneshot.models.build_online` (or :func:`oneshot.losses.attach`), which attaches and
    builds it, so ``fit`` trains it; any other model computing the loss is refused with an
    error saying so. A loss (and its head) belongs to one model: give another model a fresh copy,
    ``keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))``, whose
    proxies are new and unbuilt. The distance recorded for evaluation is the cosine similarity
    (all these losses compare directions).

    Args:
        num_classes: C, the number of training classes; labels must lie in [0, C). None
            leaves it to be set from the training labels (:meth:`with_num_classes`;
            ``python -m oneshot.train`` does it), e.g. in a named experiment whose class
            count depends on the split.
        embedding_dim: D, or None to take it from the embeddings. Defaults to None.
        lr_multiplier, initializer: see :class:`ClassProxies`.
        name, reduction, dtype: as for ``keras.losses.Loss``.
    """

    centers_per_class = 1
    head_class: type[ClassProxies] = ClassProxies

    def __init__(
        self,
        num_classes: int | None,
        embedding_dim: int | None = None,
        lr_multiplier: float = 1.0,
        initializer: Any = None,
        name: str | None = None,
        reduction: str = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        super().__init__(CosineSimilarity(), None, None, name, reduction, dtype)
        self.head = None
        self.num_classes = None
        if num_classes is not None:
            self.head = self.head_class(
                num_classes,
                embedding_dim,
                self.centers_per_class,
                initializer,
                lr_multiplier,
                dtype=self.dtype,
                name=f"{self.name}_proxies",
            )
            self.num_classes = self.head.num_classes
        self.lr_multiplier = check_positive("lr_multiplier", lr_multiplier)
        self.initializer = keras.initializers.get(
            DEFAULT_INITIALIZER if initializer is None else initializer
        )
        self.embedding_dim = embedding_dim if embedding_dim is None else int(embedding_dim)
        self._owner = None  # weak reference to the model the head is attached to

    def proxies_for(self, embeddings: tf.Tensor) -> tf.Tensor:
        """The proxies (C * K, D) in the embeddings' dtype (built on first eager use). A
        Keras model that does not hold them is refused (:func:`heads.updates_state`)."""
        updates_state(self)
        if not self.head.built and not tf.executing_eagerly():
            raise ValueError(
                f"The class weights of {type(self).__name__} are not built, and a graph cannot "
                "create them. Build the training model with oneshot.models.build_online("
                "embedding, loss=...) or oneshot.losses.attach(model, loss), which attach and "
                "build them, so that fit trains them."
            )
        return tf.cast(self.head(embeddings), embeddings.dtype)

    def attach(self, model: keras.Model) -> None:
        """Record that ``model`` trains this loss's head; a second model is refused."""
        claim(self, model, "trains the class weights")

    def compute(self, labels, embeddings, indices: tuple | None = None) -> tf.Tensor:
        """Per-sample losses (B,) for ``labels`` (B,) and ``embeddings`` (B, D); ``indices``
        must be None (these losses use no miner)."""
        if indices is not None:
            raise ValueError(f"{type(self).__name__} takes no mined `indices`.")
        if self.head is None:
            raise ValueError(
                f"{type(self).__name__} has no class weights yet: `num_classes` is None. Give "
                "num_classes=C (the number of training classes), or call "
                "loss.with_num_classes(C) before building the model."
            )
        labels, embeddings = check_loss_inputs(labels, embeddings)
        labels = check_class_indices(labels, self.num_classes)
        return self.proxy_loss(labels, embeddings, self.proxies_for(embeddings))

    def proxy_loss(self, labels, embeddings, proxies) -> tf.Tensor:
        """Per-sample losses from int labels, embeddings and proxies (C * K, D)."""
        cos = proxy_cosines(embeddings, proxies, self.centers_per_class)
        return self.from_cosines(labels, cos)

    def from_cosines(self, labels, cos) -> tf.Tensor:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        skip = ("name", "reduction", "dtype", "initializer")
        args = [f"{k}={v!r}" for k, v in self.get_config().items() if k not in skip]
        return f"{type(self).__name__}({', '.join(args)})"

    def get_config(self) -> dict[str, Any]:
        return {
            **keras.losses.Loss.get_config(self),
            "dtype": self.dtype,
            "num_classes": self.num_classes,
            "embedding_dim": self.embedding_dim,
            "lr_multiplier": self.lr_multiplier,
            "initializer": keras.initializers.serialize(self.initializer),
        }

    def with_num_classes(self, num_classes: int) -> ProxyLoss:
        """A fresh copy (new, unbuilt class weights) with ``num_classes`` classes."""
        return type(self).from_config({**self.get_config(), "num_classes": num_classes})
