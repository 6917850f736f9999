"""Global mining across tf.distribute replicas: an in-batch loss computed on the whole batch.

Under a ``tf.distribute`` strategy each replica holds only its slice of the P x K batch, so a
miner or a pair, proxy or contrastive loss sees that slice alone: the slice may lack an
anchor's positives, its hardest negatives, or whole classes, and the loss is no longer the one
of the batch. :class:`GlobalBatchLoss` all-gathers labels and embeddings across the replicas,
lets the wrapped loss mine and compute its per-sample values on the global batch, and returns
this replica's slice of them.

Gradient: replica r returns ``l_i`` for its samples; Keras averages them and scales by 1/R, so
the replica losses sum to the global mean L. The gather's gradient all-reduces (SUM) each
replica's dL_r/dE and keeps rows r: dL/dE_r; the optimizer's SUM of the replicas' gradients
is then dL/dtheta, the one-device gradient of L on the whole batch (equal slices).

The idea is that of pytorch-metric-learning's ``DistributedLossWrapper``
(https://kevinmusgrave.github.io/pytorch-metric-learning/distributed/), written for
``tf.distribute`` and Keras's loss reduction.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from oneshot.pieces import register


def _replica_context() -> tf.distribute.ReplicaContext | None:
    """The replica context of a strategy with several replicas in sync, else None (no
    strategy, one replica, or cross-replica context: nothing to gather)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync <= 1:
        return None
    return context


def _offset(context: tf.distribute.ReplicaContext, size: tf.Tensor) -> tf.Tensor:
    """Where this replica's rows start in the gathered batch: the sum of the batch sizes of
    the replicas before it (they may differ, e.g. a last partial batch)."""
    sizes = context.all_gather(tf.reshape(size, (1,)), axis=0)  # (R,)
    before = tf.range(context.num_replicas_in_sync) < context.replica_id_in_sync_group
    return tf.reduce_sum(tf.where(before, sizes, tf.zeros_like(sizes)))


def gather_with_gradient(
    context: tf.distribute.ReplicaContext, x: tf.Tensor, offset: tf.Tensor
) -> tf.Tensor:
    """All-gather ``x`` (b, ...) along axis 0 into (N, ...), with the gradient of the global
    loss: the upstream gradients of all replicas summed, rows ``offset : offset + b`` kept."""
    size = tf.shape(x)[0]

    @tf.custom_gradient
    def gather(local):
        def grad(upstream):
            total = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.convert_to_tensor(upstream))
            return total[offset : offset + size]

        return context.all_gather(local, axis=0), grad

    return gather(x)


@register
class GlobalBatchLoss(keras.losses.Loss):
    """An in-batch loss mined and computed on the global batch of all replicas.

    Under a strategy with several replicas in sync, ``call`` all-gathers ``y_true`` and
    ``y_pred`` (the embeddings, with gradients flowing back to each replica's own rows), runs
    the wrapped loss's ``call`` on the global batch and returns this replica's slice of its
    per-sample values (b,): Keras's reduction, ``sample_weight`` and 1/R scaling then apply as
    for any loss, and the replicas' losses and gradients sum to those of the global batch on
    one device. Without a strategy, with one replica or in cross-replica context it is the
    wrapped loss itself (bit for bit).

    The wrapper is transparent: it takes the wrapped loss's reduction and dtype, and any
    attribute it does not have is read from the wrapped loss (``distance``, ``head`` and
    ``attach`` of losses with class weights, ``miner``, ``num_classes``...), so
    :func:`oneshot.models.build_online` records its distance and attaches and trains its head.

    Every replica computes the whole (N, N) loss (N = global batch): R times the work of one
    device, for exact mining. Keras averages each replica's slice and scales by 1/R, which is
    the global mean only for equal slices (a batch divisible by R); the per-sample values are
    exact either way (``reduction="sum"`` or ``"none"`` sums exactly). Build the loss inside
    ``strategy.scope()`` so that class weights and a random miner's seed state are mirrored.

    Args:
        loss: the in-batch loss to wrap (a ``keras.losses.Loss`` taking labels and embeddings
            and returning per-sample values, e.g. any of ``oneshot.losses``), or its Keras
            config.
        name: Defaults to ``"global_" + loss.name``.

    Example:
    >>> loss = GlobalBatchLoss(TripletMarginLoss(miner=BatchHardMiner()))
    >>> with tf.distribute.MirroredStrategy().scope():  # doctest: +SKIP
    ...     model = build_online(conv4(), loss=loss)
    """

    def __init__(self, loss: keras.losses.Loss | dict, name: str | None = None) -> None:
        if isinstance(loss, dict):
            loss = keras.saving.deserialize_keras_object(loss)
        if not isinstance(loss, keras.losses.Loss) or isinstance(loss, GlobalBatchLoss):
            raise ValueError(
                "Invalid value for argument `loss`. Expected a keras.losses.Loss taking labels "
                "and embeddings (an in-batch loss of oneshot.losses) that is not already a "
                f"GlobalBatchLoss. Received: loss={loss!r} of type {type(loss).__name__}"
            )
        super().__init__(
            name=name or f"global_{loss.name}", reduction=loss.reduction, dtype=loss.dtype
        )
        self.loss = loss

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes the wrapper lacks: public ones are the wrapped loss's.
        inner = self.__dict__.get("loss")
        if inner is None or name.startswith("_"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(inner, name)

    def call(self, y_true, y_pred):
        context = _replica_context()
        if context is None:
            return self.loss.call(y_true, y_pred)
        y_pred = tf.convert_to_tensor(y_pred)
        offset = _offset(context, tf.shape(y_pred)[0])
        labels = tf.stop_gradient(context.all_gather(tf.convert_to_tensor(y_true), axis=0))
        embeddings = gather_with_gradient(context, y_pred, offset)
        values = self.loss.call(labels, embeddings)
        return values[offset : offset + tf.shape(y_pred)[0]]

    def with_num_classes(self, num_classes: int) -> GlobalBatchLoss:
        """The wrapped loss's :meth:`~oneshot.losses.ProxyLoss.with_num_classes`, wrapped: a
        fresh copy with new, unbuilt class weights."""
        return GlobalBatchLoss(self.loss.with_num_classes(num_classes), name=self.name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.loss!r})"

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "loss": keras.saving.serialize_keras_object(self.loss)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> GlobalBatchLoss:
        return cls(**config)
