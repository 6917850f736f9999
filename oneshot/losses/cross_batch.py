"""Cross-batch memory (XBM): mine the current batch against a queue of recent embeddings.

Wang et al. 2020 observed that embeddings drift slowly once training settles, so those of the
last few batches can stand in for the current network's: a first-in first-out queue of the
last M embeddings and labels gives every anchor up to M - 1 partners instead of B - 1 at the
cost of an M x M distance block at most, and no extra forward pass.

The queue is a Keras layer, :class:`EmbeddingMemory`, of non-trainable variables: the
embeddings (M, D), their labels (M,), how many rows were ever enqueued, and how many training
steps ran (``evaluate`` changes none of them). :class:`CrossBatchMemory` exposes it as
``loss.head``, so :func:`oneshot.models.build_online` attaches it to the training model as the
class-weight losses' heads are (:mod:`oneshot.losses.heads`): ``model.save_weights`` (the run
checkpoint) holds the queue and ``--resume`` continues with the same memory, while the saved
embedding model leaves it out.

Choices, as pytorch-metric-learning's ``CrossBatchMemory`` makes them:

- each call first enqueues the batch (stop-gradient), then mines with the batch's B samples
  as anchors and the queue (which now holds the batch) as positives and negatives; an anchor
  is never compared with its own copy in the queue;
- the gradient flows through the anchors only (the queue is constant); ``batch_gradient=True``
  (not in pytorch-metric-learning) lets the batch's own rows carry it too, as in the wrapped
  loss;
- until the queue is full only its filled rows are used.

Differences: the wrapped loss's own miner mines (pytorch-metric-learning takes a second miner),
there is no ``enqueue_mask`` (samples that only enter the queue), and, as there, the loss is the
memory loss alone, where the paper's code adds the in-batch loss to it (the queue holds the
batch, so its tuples are among the memory's, with constant partners).

Under a ``tf.distribute`` strategy wrap it in :class:`oneshot.losses.GlobalBatchLoss` (as
``python -m oneshot.train`` does): every replica then enqueues the same global batch and the
variables keep the first replica's (identical) update.

Reference: Wang, Zhang, Huang, Scott, "Cross-Batch Memory for Embedding Learning", CVPR 2020,
https://arxiv.org/abs/1912.06798.
"""

from __future__ import annotations

import copy
from typing import Any

import keras
import tensorflow as tf

from oneshot.checks import check_count
from oneshot.losses.base import MetricLoss, check_loss_inputs
from oneshot.losses.global_batch import GlobalBatchLoss
from oneshot.losses.heads import LossHead, claim, updates_state
from oneshot.pieces import register
from oneshot.reducers import Reducer

#: what the wrapped loss must consume: tuples whose anchors can be restricted to the batch
TUPLES = ("triplets", "pairs")


@register
class EmbeddingMemory(LossHead):
    """A first-in first-out queue of the last ``memory_size`` embeddings and labels.

    Its state is four non-trainable variables (saved with the model's weights): ``embeddings``
    (M, D), ``labels`` (M,) int64, ``count`` (rows ever enqueued: row ``count % M`` is written
    next, ``min(count, M)`` rows are filled) and ``steps`` (training steps of the loss that
    owns it).
    Replicas of a ``tf.distribute`` strategy keep the first replica's update.

    Args:
        memory_size: M, the number of rows kept (>= 1).
        embedding_dim: D; None takes it from the first input. Defaults to None.
    """

    def __init__(self, memory_size: int, embedding_dim: int | None = None, **kwargs) -> None:
        super().__init__(trainable=False, **kwargs)
        self.memory_size = check_count("memory_size", memory_size, 1)
        self.embedding_dim = (
            None if embedding_dim is None else check_count("embedding_dim", embedding_dim, 1)
        )

    def build(self, input_shape) -> None:
        self.embedding_size(input_shape)

        def state(name, shape, dtype):
            return self.add_weight(
                shape=shape, initializer="zeros", dtype=dtype, trainable=False,
                aggregation="only_first_replica", name=name,
            )  # fmt: skip

        self.embeddings = state("embeddings", (self.memory_size, self.embedding_dim), "float32")
        self.labels = state("labels", (self.memory_size,), "int64")
        self.count = state("count", (), "int64")
        self.steps = state("steps", (), "int64")

    def slots(self, embeddings: tf.Tensor) -> tf.Tensor:
        """The rows (B,) int64 a batch would take: the oldest ones (checked to fit)."""
        size = tf.shape(embeddings, out_type=tf.int64)[0]
        check = tf.debugging.assert_less_equal(
            size,
            tf.constant(self.memory_size, tf.int64),
            message=f"Invalid value for argument `memory_size`: the queue ({self.memory_size} "
            "rows) must hold at least one whole (global) batch.",
        )
        with tf.control_dependencies([check]):
            return (self.count + tf.range(size)) % self.memory_size

    def enqueue(self, labels: tf.Tensor, embeddings: tf.Tensor) -> tf.Tensor:
        """Write a batch over the oldest rows; returns the rows it took (B,) int64."""
        slots = self.slots(embeddings)
        rows = slots[:, None]
        values = tf.cast(tf.stop_gradient(embeddings), self.embeddings.dtype)
        self.embeddings.assign(tf.tensor_scatter_nd_update(self.embeddings, rows, values))
        self.labels.assign(tf.tensor_scatter_nd_update(self.labels, rows, tf.cast(labels, "int64")))
        self.count.assign_add(tf.shape(slots, out_type=tf.int64)[0])
        return slots

    def with_batch(self, labels: tf.Tensor, embeddings: tf.Tensor) -> tuple:
        """What :meth:`enqueue` would make of the queue, without writing it: the rows the
        batch takes, :meth:`filled`, the embeddings (M, D) and the labels (M,)."""
        slots = self.slots(embeddings)
        rows = slots[:, None]
        values = tf.cast(tf.stop_gradient(embeddings), self.embeddings.dtype)
        stored = tf.tensor_scatter_nd_update(self.embeddings, rows, values)
        labels = tf.tensor_scatter_nd_update(self.labels, rows, tf.cast(labels, "int64"))
        count = self.count + tf.shape(slots, out_type=tf.int64)[0]
        return slots, tf.range(self.memory_size, dtype=tf.int64) < count, stored, labels

    def filled(self) -> tf.Tensor:
        """(M,) bool: the rows that hold an embedding."""
        return tf.range(self.memory_size, dtype=tf.int64) < self.count

    def call(self, inputs):
        return tf.convert_to_tensor(self.embeddings)

    def compute_output_shape(self, input_shape):
        return (self.memory_size, input_shape[-1])

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "memory_size": self.memory_size,
            "embedding_dim": self.embedding_dim,
        }


class _BatchRows(Reducer):
    """A reducer applied to the tuples anchored in the first ``rows`` samples only, as if the
    batch were those rows (the other rows of the matrix are queue entries)."""

    def __init__(self, reducer: Reducer, rows: tf.Tensor) -> None:
        self.reducer, self.rows = reducer, rows

    def __call__(self, losses, anchors, batch_size):
        losses = tf.reshape(losses, (-1,))
        keep = tf.cast(anchors, tf.int64) < tf.cast(self.rows, tf.int64)
        return self.reducer(
            tf.boolean_mask(losses, keep), tf.boolean_mask(anchors, keep), self.rows
        )


def batch_anchored(indices: tuple, rows: tf.Tensor, tuples: str) -> tuple:
    """The mined ``indices`` whose anchors are among the first ``rows`` samples: triplets
    ``(a, p, n)`` by ``a``; pairs ``(a1, p, a2, n)`` by ``a1`` (positive pairs) and ``a2``
    (negative pairs) separately."""
    rows = tf.cast(rows, tf.int64)
    if tuples == "triplets":
        a, p, n = indices
        keep = tf.cast(a, tf.int64) < rows
        return tuple(tf.boolean_mask(t, keep) for t in (a, p, n))
    a1, p, a2, n = indices
    keep_pos, keep_neg = tf.cast(a1, tf.int64) < rows, tf.cast(a2, tf.int64) < rows
    return (
        tf.boolean_mask(a1, keep_pos),
        tf.boolean_mask(p, keep_pos),
        tf.boolean_mask(a2, keep_neg),
        tf.boolean_mask(n, keep_neg),
    )


@register
class CrossBatchMemory(keras.losses.Loss):
    """An in-batch tuple or pair loss mined against a queue of recent embeddings (XBM).

    Each call enqueues the batch (labels and stop-gradient embeddings) into the
    :class:`EmbeddingMemory` ``loss.head``, then computes the wrapped loss with the batch's
    samples as anchors and the queue's rows as positives and negatives::

        D = d(E_batch, Q)  (B, M')       Q = the filled rows of the queue, batch included
        l_i = wrapped loss of anchor i with partners Q \\ {i's own row}

    Only the anchors carry a gradient (with ``batch_gradient``, the batch's own partners too).
    The matrix the miner sees is square, (B + V) x (B + V)
    with V the other filled rows: rows are the batch (live) then the older entries, columns
    the batch's queue copies then the same older entries, so the miner's usual "not itself"
    rule removes each anchor's own copy; tuples anchored at older entries are dropped before
    the loss. As B + V is at most M, work and memory are O(M^2), plus what the miner lists:
    prefer one that keeps a few tuples per anchor (batch-hard, semi-hard, a margin), as
    batch-all over the queue's anchors would list O(M^3) triplets before they are dropped.

    The loss updates its queue in each training step (and each direct call); ``evaluate``
    computes it against the queue as it would be with the batch, leaving the queue and step
    count unchanged. Build the model with :func:`oneshot.models.build_online` (or
    :func:`oneshot.losses.attach`), which puts the queue in the model so that the run
    checkpoint holds it (a loss belongs to one model); any other model is refused.

    Args:
        loss: the wrapped in-batch loss, a ``oneshot.losses.MetricLoss`` on triplets or pairs
            (``TripletMarginLoss`` with a miner, ``ContrastiveLoss``,
            ``MultiSimilarityLoss``...), or its Keras config.
        memory_size: M, the queue's rows; at least one (global) batch. Defaults to 1024.
        warmup_steps: for the first calls, the wrapped loss on the batch alone and an empty
            queue (the paper starts the memory after the embeddings settle). Defaults to 0.
        embedding_dim: D, or None to take it from the embeddings. Defaults to None.
        batch_gradient: the batch's own rows of the queue are its live embeddings in the loss,
            so the in-batch tuples carry the gradient at both ends as in the wrapped loss and
            only the older entries are constant (with ``memory_size`` = B it is the wrapped
            loss). False is pytorch-metric-learning's rule: every partner is constant.
            Defaults to False.
        name: Defaults to ``"xbm_" + loss.name``.

    Returns:
        Per-sample losses (B,) (the wrapped loss's reducer over the batch's anchors), reduced
        by the wrapped loss's ``reduction``.

    Example:
    >>> loss = CrossBatchMemory(TripletMarginLoss(0.1, miner=BatchHardMiner()), memory_size=512)
    >>> model = build_online(conv4(), loss=loss)  # doctest: +SKIP

    Reference: Wang et al., "Cross-Batch Memory for Embedding Learning", CVPR 2020,
    https://arxiv.org/abs/1912.06798.
    """

    def __init__(
        self,
        loss: MetricLoss | dict,
        memory_size: int = 1024,
        warmup_steps: int = 0,
        embedding_dim: int | None = None,
        name: str | None = None,
        batch_gradient: bool = False,
    ) -> None:
        if isinstance(loss, dict):
            loss = keras.saving.deserialize_keras_object(loss)
        if isinstance(loss, GlobalBatchLoss):
            raise ValueError(
                "Invalid value for argument `loss`. Wrap the cross-batch memory in "
                "GlobalBatchLoss, not the reverse: GlobalBatchLoss(CrossBatchMemory(loss)). "
                f"Received: loss={loss!r}"
            )
        if not isinstance(loss, MetricLoss) or loss.tuples not in TUPLES:
            raise ValueError(
                "Invalid value for argument `loss`. Expected an in-batch loss of "
                f"oneshot.losses on {' or '.join(TUPLES)} (TripletMarginLoss, ContrastiveLoss, "
                f"MultiSimilarityLoss...). Received: loss={loss!r} of type {type(loss).__name__}"
            )
        super().__init__(
            name=name or f"xbm_{loss.name}", reduction=loss.reduction, dtype=loss.dtype
        )
        self.loss = loss
        self.memory_size = check_count("memory_size", memory_size, 1)
        self.warmup_steps = check_count("warmup_steps", warmup_steps, 0)
        self.embedding_dim = None if embedding_dim is None else int(embedding_dim)
        self.batch_gradient = bool(batch_gradient)
        self.head = EmbeddingMemory(self.memory_size, embedding_dim, name=f"{self.name}_memory")
        self._owner = None  # weak reference to the model the queue is attached to

    @property
    def distance(self):
        """The wrapped loss's distance (recorded by ``build_online`` for evaluation)."""
        return self.loss.distance

    def attach(self, model: keras.Model) -> None:
        """Record that ``model`` holds this loss's queue; a second model is refused."""
        claim(self, model, "holds the queue")

    def call(self, y_true, y_pred):
        labels, embeddings = check_loss_inputs(y_true, y_pred)
        training = updates_state(self)  # a model that does not hold the queue is refused
        memory = self.head
        if not memory.built:
            if not tf.executing_eagerly():
                raise ValueError(
                    f"The queue of {type(self).__name__} is not built, and a graph cannot "
                    "create it. Build the training model with oneshot.models.build_online("
                    "embedding, loss=...) or oneshot.losses.attach(model, loss), which attach "
                    "and build it."
                )
            memory.build(embeddings.shape)
        if self.warmup_steps:
            values = tf.cond(
                memory.steps < self.warmup_steps,
                lambda: self.loss.call(labels, embeddings),
                lambda: self.with_memory(labels, embeddings, training),
            )
        else:
            values = self.with_memory(labels, embeddings, training)
        if training:
            memory.steps.assign_add(1)
        return values

    def with_memory(
        self, labels: tf.Tensor, embeddings: tf.Tensor, enqueue: bool = True
    ) -> tf.Tensor:
        """Enqueue the batch, then its per-sample losses (B,) against the queue. With
        ``enqueue`` False (``evaluate``) the same values against the queue as it would be with
        the batch enqueued, the queue left unchanged."""
        memory = self.head
        if enqueue:
            slots = memory.enqueue(labels, embeddings)
            filled = memory.filled()
            queue_embeddings = tf.convert_to_tensor(memory.embeddings)
            queue_labels = tf.convert_to_tensor(memory.labels)
        else:
            slots, filled, queue_embeddings, queue_labels = memory.with_batch(labels, embeddings)
        size = tf.shape(slots)[0]
        current = tf.scatter_nd(slots[:, None], tf.ones_like(slots, tf.bool), [memory.memory_size])
        older = tf.where(tf.logical_and(filled, tf.logical_not(current)))[:, 0]
        stored = tf.cast(queue_embeddings, embeddings.dtype)
        past = tf.gather(stored, older)
        rows = tf.concat([embeddings, past], 0)
        own = embeddings if self.batch_gradient else tf.gather(stored, slots)
        columns = tf.concat([own, past], 0)
        all_labels = tf.concat([tf.cast(labels, tf.int64), tf.gather(queue_labels, older)], 0)
        distance = self.loss.distance
        dist = distance.dissimilarity(distance.pairwise(rows, columns))
        indices = batch_anchored(self.loss.mine(dist, all_labels), size, self.loss.tuples)
        inner = copy.copy(self.loss)  # the same loss, its reducer restricted to the batch
        inner.reducer = _BatchRows(self.loss.reducer, size)
        return inner.per_sample(dist, all_labels, indices, tf.shape(all_labels)[0])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.loss!r}, memory_size={self.memory_size}, "
            f"warmup_steps={self.warmup_steps}, batch_gradient={self.batch_gradient})"
        )

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "loss": keras.saving.serialize_keras_object(self.loss),
            "memory_size": self.memory_size,
            "warmup_steps": self.warmup_steps,
            "embedding_dim": self.embedding_dim,
            # only when set: the configs of runs made before the option stay what the code builds
            **({"batch_gradient": True} if self.batch_gradient else {}),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> CrossBatchMemory:
        return cls(**config)
