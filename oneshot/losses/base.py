"""The shape every in-batch loss shares: a distance, a miner and a reducer as arguments.

    loss = TripletMarginLoss(margin=0.2, distance=LpDistance(), miner=BatchHardMiner(),
                             reducer=MeanReducer())
    model.compile("adam", loss=loss)            # y_true: int labels (B,), y_pred: embeddings (B, D)

``call`` computes the (B, B) matrix once with the distance, maps it to a dissimilarity (smaller =
closer; see ``oneshot.distances``), lets the miner pick index tuples from it, computes one loss
per tuple with the loss's pure function and lets the reducer turn them into one value per
sample (B,), whose batch mean is the loss. So Keras's ``reduction`` and ``sample_weight`` work,
and every piece can be swapped without touching the others.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from oneshot.checks import check_number
from oneshot.distances import Distance, get_distance
from oneshot.miners import get_miner
from oneshot.reducers import MeanReducer, Reducer, get_reducer


def check_margin(value: float, name: str = "margin") -> float:
    """Return ``value`` as a float if it is a finite real number >= 0, else raise (the miners'
    rule: numpy scalars pass; bools, NaN and infinity do not)."""
    return check_number(name, value, minimum=0.0)


def pair_values(matrix: tf.Tensor, i: tf.Tensor, j: tf.Tensor) -> tf.Tensor:
    """``matrix[i[t], j[t]]`` for every t: the values of index pairs (T,)."""
    return tf.gather_nd(matrix, tf.stack([tf.cast(i, tf.int64), tf.cast(j, tf.int64)], 1))


def check_loss_inputs(labels: tf.Tensor, embeddings: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Labels as (B,) and embeddings as (B, D), with a clear error for other shapes."""
    embeddings = tf.convert_to_tensor(embeddings)
    if embeddings.shape.rank != 2:
        raise ValueError(
            "Invalid value for `y_pred`. Expected embeddings of shape (B, D). Received shape "
            f"{embeddings.shape}. In-batch losses take the embedding network's output and "
            "integer class labels as `y_true`."
        )
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank is not None and labels.shape.rank > 1 and labels.shape[-1] != 1:
        raise ValueError(
            "Invalid value for `y_true`. Expected integer class labels of shape (B,) or (B, 1). "
            f"Received shape {labels.shape}."
        )
    labels = tf.reshape(labels, (-1,))
    b_labels, b_emb = labels.shape[0], embeddings.shape[0]
    if b_labels is not None and b_emb is not None and b_labels != b_emb:
        raise ValueError(
            f"Invalid values for `y_true` and `y_pred`. Expected one label per embedding. "
            f"Received: {b_labels} labels in `y_true` for {b_emb} embeddings in `y_pred`."
        )
    return labels, embeddings


def check_two_classes(
    labels: tf.Tensor, embeddings: tf.Tensor, loss_name: str
) -> tuple[tf.Tensor, tf.Tensor]:
    """``(labels, embeddings)`` if the batch holds at least two classes, else an error naming
    `y_true` (a ValueError eagerly; an InvalidArgumentError inside ``fit``'s graph, checked
    before anything computed from them)."""
    message = (
        f"Invalid value for `y_true`. {loss_name} contrasts classes and needs a batch with at "
        "least two classes; this batch has one. Sample P x K batches with P >= 2 "
        "(oneshot.data.samplers.pk_dataset)."
    )
    several = tf.reduce_any(tf.not_equal(labels, labels[:1]))
    if tf.executing_eagerly():
        if not bool(several):
            raise ValueError(message)
        return labels, embeddings
    with tf.control_dependencies([tf.debugging.Assert(several, [message])]):
        return tf.identity(labels), tf.identity(embeddings)


class MetricLoss(keras.losses.Loss):
    """Base class of the in-batch losses (subclasses implement :meth:`per_sample`).

    Args:
        distance: a ``oneshot.distances.Distance`` or legacy name. Defaults to Euclidean.
        miner: a ``oneshot.miners`` miner or name; None uses the loss's default tuples.
        reducer: a ``oneshot.reducers`` reducer or name; None uses the loss's default.
        name, reduction, dtype: as for ``keras.losses.Loss``.
    """

    default_reducer: type[Reducer] = MeanReducer
    #: refuse a batch of a single class (pair- and batch-based losses): it has no negative
    requires_two_classes: bool = False
    #: what the loss consumes: "triplets", "pairs" or "quadruplets" (a miner's ``tuples``)
    tuples: str = ""

    def __init__(
        self,
        distance: Distance | str | dict | None = None,
        miner: Any = None,
        reducer: Reducer | str | dict | None = None,
        name: str | None = None,
        reduction: str = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.distance = get_distance(distance)
        self.miner = None if miner is None else get_miner(miner)
        if self.miner is not None and self.tuples and self.miner.tuples != self.tuples:
            raise ValueError(
                f"Invalid value for argument `miner`. {type(self).__name__} takes {self.tuples}; "
                f"{self.miner!r} returns {self.miner.tuples or 'other tuples'}. Received: "
                f"miner={miner!r}"
            )
        self.reducer = get_reducer(reducer, self.default_reducer)

    def call(self, y_true, y_pred):
        labels, embeddings = check_loss_inputs(y_true, y_pred)
        if self.requires_two_classes:
            labels, embeddings = check_two_classes(labels, embeddings, type(self).__name__)
        return self.compute(labels, embeddings)

    def compute(self, labels, embeddings, indices: tuple | None = None) -> tf.Tensor:
        """Per-sample losses (B,) for ``labels`` (B,) and ``embeddings`` (B, D), on the given
        index tuples (as a miner returns them) or, if None, on those the miner picks."""
        labels, embeddings = check_loss_inputs(labels, embeddings)
        dist = self.distance.dissimilarity(self.distance.pairwise(embeddings))
        if indices is None:
            indices = self.mine(dist, labels)
        return self.per_sample(dist, labels, indices, tf.shape(labels)[0])

    def mine(self, dist: tf.Tensor, labels: tf.Tensor) -> tuple:
        """The miner's tuples, or the loss's default tuples when it has no miner."""
        return (
            self.miner(dist, labels)
            if self.miner is not None
            else self.default_tuples(dist, labels)
        )

    def default_tuples(self, dist: tf.Tensor, labels: tf.Tensor) -> tuple:  # pragma: no cover
        raise NotImplementedError

    def per_sample(self, dist, labels, indices, batch_size) -> tf.Tensor:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        skip = ("name", "reduction", "dtype", "distance", "miner", "reducer")
        args = [f"{k}={v!r}" for k, v in self.get_config().items() if k not in skip]
        args += [f"distance={self.distance!r}"]
        args += [f"miner={self.miner!r}"] if self.miner is not None else []
        args += [f"reducer={self.reducer!r}"]
        return f"{type(self).__name__}({', '.join(args)})"

    def get_config(self) -> dict[str, Any]:
        ser = keras.saving.serialize_keras_object
        return {
            **super().get_config(),
            "dtype": self.dtype,  # keras.losses.Loss omits it: float64 would reload as float32
            "distance": ser(self.distance),
            "miner": None if self.miner is None else ser(self.miner),
            "reducer": ser(self.reducer),
        }
