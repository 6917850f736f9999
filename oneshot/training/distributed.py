"""Training under a tf.distribute strategy: which strategy, which process writes, how each
replica gets its slice of a batch, and the training loop ``fit`` cannot run.

- ``--strategy mirrored``: one process, one replica per device (GPUs, or the CPU; for tests and
  benchmarks ``ONESHOT_CPU_DEVICES=N`` splits the CPU into N logical devices,
  :func:`use_logical_cpus`).
- ``--strategy multiworker``: one process per worker, described by the ``TF_CONFIG``
  environment variable (``{"cluster": {"worker": ["host1:port", ...]}, "task": {"type":
  "worker", "index": i}}``). Keras 3.15's ``fit`` fails under ``MultiWorkerMirroredStrategy``
  ("Attempt to convert a value (PerReplica ...) with an unsupported type", keras-team/keras
  #20585), so every run under a strategy trains with :func:`fit_distributed`: the same
  callbacks (history, checkpoints, resume, the NaN stop, the episode monitor), one
  ``strategy.run`` step of forward pass, Keras's ``compute_loss`` (scaled by 1 / replicas),
  ``GradientTape`` and the optimizer's ``apply_gradients`` (which sums the replicas'
  gradients).
- Every worker builds the same global batch (same seed) and keeps its replicas' contiguous
  slices (:func:`replica_slices`): a P x K batch ordered class by class gives each of R replicas
  P / R whole classes when R divides P. With global mining (the default under a strategy) the
  loss gathers the slices back (``oneshot.losses.GlobalBatchLoss``).
- Batch-normalisation statistics are per replica in Keras 3; after every step they are replaced
  by their mean over replicas, so all workers hold the same weights (trainable or not).
- Only the chief (worker 0, or the ``chief`` task) writes the run folder; the other workers
  write into a private temporary folder that is deleted afterwards (:func:`is_chief`).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf

STRATEGIES = ("none", "mirrored", "multiworker")
CPU_DEVICES_ENV = "ONESHOT_CPU_DEVICES"


def use_logical_cpus(count: int | None = None) -> int | None:
    """Split the CPU into ``count`` logical devices (default: ``$ONESHOT_CPU_DEVICES``; unset:
    do nothing and return None), so ``MirroredStrategy`` has that many replicas on one
    machine. Must run before TensorFlow initialises its devices; returns the number of CPU
    devices then visible.

    Raises:
        ValueError: ``count`` is not a whole number >= 1, or TensorFlow is already initialised
            with another number of CPU devices.
    """
    if count is None:
        text = os.environ.get(CPU_DEVICES_ENV, "").strip()
        if not text:
            return None  # listing the devices would start TensorFlow
        try:
            count = int(text)
        except ValueError:
            count = 0
        if count < 1:
            raise ValueError(
                f"Invalid value for ${CPU_DEVICES_ENV}. Expected a whole number >= 1 (logical "
                f"CPU devices). Received: {text!r}"
            )
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * count
        )
    except RuntimeError:  # already initialised: fine if it already has the asked devices
        have = len(tf.config.list_logical_devices("CPU"))
        if have != count:
            raise ValueError(
                f"Cannot split the CPU into {count} logical devices: TensorFlow already runs "
                f"with {have}. Set ${CPU_DEVICES_ENV} before the first TensorFlow operation."
            ) from None
    return len(tf.config.list_logical_devices("CPU"))


def check_tf_config(strategy: str) -> dict[str, Any] | None:
    """The parsed ``TF_CONFIG`` for ``multiworker`` (None for other strategies), or a
    ValueError that says what is missing."""
    if strategy != "multiworker":
        return None
    text = os.environ.get("TF_CONFIG", "").strip()
    example = (
        'TF_CONFIG=\'{"cluster": {"worker": ["localhost:12345", "localhost:12346"]}, '
        '"task": {"type": "worker", "index": 0}}\''
    )
    if not text:
        raise ValueError(
            "--strategy multiworker needs the TF_CONFIG environment variable in every worker "
            f"process, e.g. {example} for the first of two (index 1 for the second)."
        )
    try:
        config = json.loads(text)
        workers = config["cluster"].get("worker", []) + config["cluster"].get("chief", [])
        task = config["task"]
        kind, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ValueError(
            f"TF_CONFIG is not a cluster description: {text!r}. Expected JSON like {example}."
        ) from None
    jobs = config["cluster"].get(kind)
    if not workers or jobs is None or not 0 <= index < len(jobs):
        raise ValueError(
            f"TF_CONFIG's task {kind!r} {index} is not in its cluster {config['cluster']!r}. "
            f"Expected JSON like {example}."
        )
    return config


_CREATED: dict[str, tf.distribute.Strategy] = {}


def get_strategy(name: str) -> tf.distribute.Strategy:
    """The tf.distribute strategy called ``name`` (``none`` = the default, single device),
    created once per process: a multi-worker strategy must be created at program start, before
    any TensorFlow operation (``python -m oneshot.train`` does so first)."""
    if name not in STRATEGIES:
        raise ValueError(
            f"Invalid value for argument `strategy`. Expected one of {STRATEGIES}. "
            f"Received: strategy={name!r}"
        )
    if name == "none":
        return tf.distribute.get_strategy()
    if name not in _CREATED:
        if name == "mirrored":
            _CREATED[name] = tf.distribute.MirroredStrategy()
        else:
            check_tf_config(name)
            try:
                _CREATED[name] = tf.distribute.MultiWorkerMirroredStrategy()
            except RuntimeError as error:  # "Collective ops must be configured at startup"
                raise ValueError(
                    f"The multi-worker strategy could not start ({error}): create it before any "
                    "other TensorFlow operation in the process, i.e. call "
                    "oneshot.training.distributed.get_strategy('multiworker') first."
                ) from None
    return _CREATED[name]


def _cluster(strategy: tf.distribute.Strategy | None):
    """The cluster resolver of a multi-worker strategy with a cluster, else None."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None or not resolver.cluster_spec().as_dict():
        return None
    return resolver


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    """The :data:`STRATEGIES` name of a strategy object ("none" for the default one)."""
    names = {"MirroredStrategy": "mirrored", "MultiWorkerMirroredStrategy": "multiworker"}
    return names.get(type(strategy).__name__, "none")


def is_chief(strategy: tf.distribute.Strategy | None = None) -> bool:
    """Whether this process writes the run folder: always, except under a multi-worker
    strategy on a worker other than the chief (the ``chief`` task, else worker 0)."""
    resolver = _cluster(strategy)
    if resolver is None or resolver.task_type == "chief":
        return True
    jobs = resolver.cluster_spec().as_dict()
    return "chief" not in jobs and resolver.task_type == "worker" and resolver.task_id == 0


def task_name(strategy: tf.distribute.Strategy | None = None) -> str:
    """``"worker 1"``, ``"chief 0"``, or ``"single process"``."""
    resolver = _cluster(strategy)
    return "single process" if resolver is None else f"{resolver.task_type} {resolver.task_id}"


def wait_for_all(strategy: tf.distribute.Strategy) -> None:
    """A barrier across the workers of a multi-worker strategy (no-op otherwise): a worker that
    has finished training waits for the chief's evaluation instead of exiting, which the
    cluster's coordination service would report as a crashed task."""
    if _cluster(strategy) is None:
        return
    barrier = tf.function(lambda: strategy.reduce("SUM", strategy.run(tf.ones, ((),)), axis=None))
    barrier()


def free_ports(count: int) -> list[int]:
    """``count`` TCP ports free on localhost now, for a cluster of processes on one machine."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def local_tf_config(ports: list[int], index: int) -> str:
    """``TF_CONFIG`` of worker ``index`` in a cluster of workers on localhost ``ports``."""
    workers = [f"localhost:{port}" for port in ports]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def check_batch_split(runs, replicas: int, global_mining: bool) -> None:
    """Refuse online runs whose P x K batch does not split evenly over ``replicas`` (Keras
    averages each replica's slice, so uneven slices weight samples unequally), or, without
    global mining, whose P classes do not (a replica would hold part of a class)."""
    if replicas <= 1:
        return
    for run in runs:
        p, k = getattr(run, "classes_per_batch", None), getattr(run, "samples_per_class", None)
        if p is None or k is None:
            continue
        if (p * k) % replicas or (not global_mining and p % replicas):
            what = (
                "P x K"
                if global_mining
                else "P (without global mining each replica needs whole classes)"
            )
            raise ValueError(
                f"Run {run.name!r}: its batch of P x K = {p} x {k} cannot be split evenly over "
                f"{replicas} replicas ({what} must be a multiple of {replicas}). Choose "
                "classes_per_batch accordingly, or another number of workers or devices."
            )


def weights_fingerprint(model: keras.Model) -> str:
    """sha256 (first 16 hex digits) of every weight's bytes, trainable or not: equal on all
    workers after synchronous training."""
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()[:16]


def _slice_bounds(size: tf.Tensor, replicas: int, replica: tf.Tensor) -> tuple[tf.Tensor, ...]:
    size = tf.cast(size, tf.int64)
    replica = tf.cast(replica, tf.int64)
    return size * replica // replicas, size * (replica + 1) // replicas


def replica_slices(dataset: tf.data.Dataset, strategy: tf.distribute.Strategy):
    """``dataset`` (global batches) distributed so that replica r of R receives rows
    ``[r * B // R, (r + 1) * B // R)`` of every batch: each input pipeline (one per worker)
    builds the same global batch from the same seed and keeps its replicas' slices in order."""
    replicas = strategy.num_replicas_in_sync

    def pipeline(context: tf.distribute.InputContext) -> tf.data.Dataset:
        per_pipeline = replicas // context.num_input_pipelines
        first = context.input_pipeline_id * per_pipeline

        def split(*batch):
            size = tf.shape(tf.nest.flatten(batch)[0])[0]

            def piece(replica):
                low, high = _slice_bounds(size, replicas, replica)
                return tf.nest.map_structure(lambda t: t[low:high], batch)

            ids = tf.data.Dataset.range(first, first + per_pipeline)
            return ids.map(piece)

        return dataset.flat_map(split)

    options = tf.distribute.InputOptions(experimental_fetch_to_device=False)
    return strategy.distribute_datasets_from_function(pipeline, options)


class DistributedStep:
    """One synchronous training step under ``strategy``: each replica's forward pass, Keras's
    loss (scaled by 1 / replicas), its gradients summed by the optimizer; then the
    non-trainable weights (batch-norm statistics) set to their mean over replicas. Returns the
    loss averaged over replicas."""

    def __init__(self, model: keras.Model, strategy: tf.distribute.Strategy) -> None:
        self.model, self.strategy = model, strategy
        with strategy.scope():
            model.optimizer.build(model.trainable_variables)
        self._function = tf.function(self._step)

    def _replica_step(self, *batch):
        model = self.model
        x, y = (batch[0], batch[1]) if len(batch) > 1 else (batch[0], None)
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            loss = model.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
        gradients = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss

    def _step(self, iterator):
        strategy, model = self.strategy, self.model
        per_replica = strategy.run(self._replica_step, args=next(iterator))
        loss = strategy.reduce("SUM", per_replica, axis=None)  # each is loss / replicas
        others = model.non_trainable_variables
        if others and strategy.num_replicas_in_sync > 1:
            local = strategy.run(lambda: [tf.identity(v.value) for v in others])
            for variable, values in zip(others, local, strict=True):
                variable.assign(strategy.reduce("MEAN", values, axis=None))
        return loss

    def __call__(self, iterator) -> float:
        return float(self._function(iterator))


def fit_distributed(
    model: keras.Model,
    strategy: tf.distribute.Strategy,
    dataset: tf.data.Dataset,
    *,
    initial_epoch: int,
    epochs: int,
    steps_per_epoch: int,
    callbacks: list[keras.callbacks.Callback],
    verbose: int = 2,
) -> keras.callbacks.History:
    """``model.fit`` for a strategy it cannot run under: epochs ``initial_epoch..epochs - 1``
    of ``steps_per_epoch`` steps over ``dataset`` (global batches, :func:`replica_slices`),
    with Keras callbacks called as ``fit`` calls them (``loss`` in the logs is the running mean
    of the epoch's step losses; ``model.stop_training`` stops after the step)."""
    history = keras.callbacks.History()
    callback_list = keras.callbacks.CallbackList(
        [*callbacks, history], add_history=False, add_progbar=False, model=model,
        verbose=verbose, epochs=epochs, steps=steps_per_epoch,
    )  # fmt: skip
    step = DistributedStep(model, strategy)
    iterator = iter(replica_slices(dataset, strategy))
    model.stop_training = False
    callback_list.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        callback_list.on_epoch_begin(epoch)
        started, total, done = time.perf_counter(), 0.0, 0
        for batch in range(steps_per_epoch):
            callback_list.on_train_batch_begin(batch)
            total += step(iterator)
            done += 1
            callback_list.on_train_batch_end(batch, {"loss": total / done})
            if model.stop_training:
                break
        logs = {"loss": total / max(done, 1)}
        callback_list.on_epoch_end(epoch, logs)
        if verbose:
            seconds = time.perf_counter() - started
            shown = " - ".join(f"{k}: {v:.4g}" for k, v in logs.items())
            print(
                f"Epoch {epoch + 1}/{epochs} [{task_name(strategy)}, "
                f"{strategy.num_replicas_in_sync} replicas] {done} steps - {seconds:.0f}s - "
                f"{shown}",
                flush=True,
            )
        if model.stop_training:
            break
    callback_list.on_train_end()
    return history


def training_record(strategy: str, global_mining: bool = True) -> dict[str, Any]:
    """What a run's ``config.json`` adds about how it trains: nothing without a strategy (so
    single-process runs keep their configs), else the strategy and whether the loss mines the
    global batch (``oneshot.losses.GlobalBatchLoss``)."""
    if strategy == "none":
        return {}
    return {"strategy": {"name": strategy, "global_mining": bool(global_mining)}}
