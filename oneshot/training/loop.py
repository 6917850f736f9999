"""``model.fit`` for single-process runs, with several training steps per graph call.

:func:`fit_loop` trains as ``model.fit(dataset, initial_epoch=..., epochs=...,
steps_per_epoch=..., shuffle=False)`` does, with the same callbacks called the same way and the
same numbers: each step is Keras's own ``model.train_step`` (forward pass, loss, loss tracker,
gradients, optimizer), wrapped as ``fit`` wraps it (``distribute_strategy.run`` inside a
``tf.function`` with the model's ``jit_compile``), on batches read in the graph from one
iterator of ``dataset`` per call. What differs is the Python around it: instead of one graph
call, callback dispatch and loss read-back per step, one ``tf.function`` runs a chunk of steps
in a ``tf.while_loop`` and the batch callbacks are then called with each step's logs.

- A chunk leaves the graph after the first step whose loss is NaN or infinite, so
  :class:`~oneshot.training.callbacks.StopOnNaN` stops on the step it stops on under ``fit``
  (without it, training goes on, one step per call while the loss stays non-finite).
- Batch callbacks that may act during an epoch (any callback with its own ``on_train_batch_*``
  or ``on_batch_*`` method, other than ``StopOnNaN``, Keras's ``History`` and progress bar)
  make the loop run one step per graph call, so they see every step before the next one.
- The input's iterator runs without tf.data's autotuning (``Options.autotune.enabled``
  False; what it yields is the same). With it, dropping an iterator can wait for the
  autotuning thread's next wake-up, at 10 ms x (2^n - 1) after the iterator started (as if
  its period started at 10 ms and doubled): a ``fit`` call, which drops its iterator at its end, then
  lasts 1.27, 2.55, 5.11, 10.23, 20.47 or 40.95 s ... whatever its steps took
  (``benchmarks/bench_fit_stall.py``, ``docs/training-speed.md``).
- With op determinism on (the runner turns it on), the loss curve and the weights are those of
  ``model.fit`` bit for bit (``tests/test_training_loop.py``).
"""

from __future__ import annotations

import weakref

import keras
import tensorflow as tf

from oneshot.training.callbacks import StopOnNaN

__all__ = ["fit_loop", "replayable"]

NO_AUTOTUNE = tf.data.Options()
NO_AUTOTUNE.autotune.enabled = False  # its thread would hold up the iterator's teardown

_BATCH_HOOKS = ("on_batch_begin", "on_batch_end", "on_train_batch_begin", "on_train_batch_end")
# callbacks whose batch methods only look at the logs: called after the chunk, as if per step
_REPLAYABLE = (StopOnNaN, keras.callbacks.History, keras.callbacks.ProgbarLogger)

# How a single-process run trains: "graph" (oneshot.training.loop.fit_loop: a chunk of steps
# per graph call, the numbers of model.fit bit for bit) or "fit" (Keras's model.fit)
LOOPS = ("graph", "fit")


def check_loop(loop: str) -> None:
    """A ValueError unless ``loop`` is one of :data:`LOOPS`."""
    if loop not in LOOPS:
        raise ValueError(
            f"Invalid value for argument `loop`. Expected one of {LOOPS}. Received: loop={loop!r}"
        )


def replayable(callbacks: list[keras.callbacks.Callback]) -> bool:
    """Whether the batch callbacks of ``callbacks`` may be called after a chunk of steps ran
    (none of them acts during an epoch, except the NaN stop that the loop does itself)."""
    base = keras.callbacks.Callback
    for callback in callbacks:
        if isinstance(callback, _REPLAYABLE):
            continue
        if any(getattr(type(callback), hook) is not getattr(base, hook) for hook in _BATCH_HOOKS):
            return False
    return True


class ChunkStep:
    """Up to ``steps`` training steps of ``model`` in one graph call, stopping after the first
    non-finite loss. Returns ``(steps done, every step's logs stacked, the last step's logs)``.
    """

    def __init__(self, model: keras.Model) -> None:
        self.model = model

        @tf.autograph.experimental.do_not_convert
        def one_step_on_data(data):  # as Keras's TensorFlowTrainer._make_function
            outputs = model.distribute_strategy.run(model.train_step, args=(data,))
            return outputs  # one replica: nothing to reduce

        self._step = tf.function(
            one_step_on_data, reduce_retracing=True, jit_compile=model.jit_compile
        )
        self._chunk = tf.function(self._run, reduce_retracing=True)

    def _run(self, iterator, steps):
        # the logs' structure, from the step's trace (reused by the loop's call of the step)
        spec = self._step.get_concrete_function(iterator.element_spec).structured_outputs
        arrays = {
            key: tf.TensorArray(value.dtype, size=steps, element_shape=value.shape)
            for key, value in spec.items()
        }
        start = {key: tf.zeros(value.shape, value.dtype) for key, value in spec.items()}

        def cond(done, last, arrays):
            finite = tf.reduce_all(tf.math.is_finite(tf.cast(last["loss"], tf.float32)))
            return tf.logical_and(done < steps, finite)

        def body(done, last, arrays):
            logs = self._step(iterator.get_next())
            arrays = {key: arrays[key].write(done, logs[key]) for key in arrays}
            return done + 1, logs, arrays

        done, last, arrays = tf.while_loop(
            cond, body, (tf.constant(0), start, arrays), parallel_iterations=1
        )
        return done, {key: array.stack()[:done] for key, array in arrays.items()}, last

    def __call__(self, iterator, steps: int):
        done, stacked, last = self._chunk(iterator, tf.constant(steps, tf.int32))
        return int(done), {key: value.numpy() for key, value in stacked.items()}, last


_STEPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def chunk_step(model: keras.Model) -> ChunkStep:
    """The model's :class:`ChunkStep`, made once (traced once) like ``fit``'s train function."""
    if model not in _STEPS:
        _STEPS[model] = ChunkStep(model)
    return _STEPS[model]


def fit_loop(
    model: keras.Model,
    dataset: tf.data.Dataset,
    *,
    initial_epoch: int,
    epochs: int,
    steps_per_epoch: int,
    callbacks: list[keras.callbacks.Callback],
    verbose: int = 2,
    steps_per_call: int | None = None,
) -> keras.callbacks.History:
    """``model.fit(dataset, initial_epoch=initial_epoch, epochs=epochs,
    steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=verbose, shuffle=False)``
    with up to ``steps_per_call`` steps per graph call (default: a whole epoch, or 1 when a
    callback acts during an epoch: :func:`replayable`). ``dataset`` must be infinite (or
    hold enough batches), as with the runner's inputs. Returns the History, as ``fit`` does.
    """
    callback_list = keras.callbacks.CallbackList(
        callbacks, add_history=True, add_progbar=verbose != 0, verbose=verbose, epochs=epochs,
        steps=steps_per_epoch, model=model,
    )  # fmt: skip
    if steps_per_call is None:
        steps_per_call = steps_per_epoch if replayable(callbacks) else 1
    if steps_per_call < 1:
        raise ValueError(
            "Invalid value for argument `steps_per_call`. Expected a whole number >= 1 or "
            f"None. Received: steps_per_call={steps_per_call}"
        )
    step = chunk_step(model)
    iterator = iter(dataset.with_options(NO_AUTOTUNE))
    model.stop_training = False
    callback_list.on_train_begin()
    training_logs, logs = None, {}
    for epoch in range(getattr(model, "_initial_epoch", None) or initial_epoch, epochs):
        model.reset_metrics()
        callback_list.on_epoch_begin(epoch)
        done = 0
        while done < steps_per_epoch and not model.stop_training:
            asked = min(steps_per_call, steps_per_epoch - done)
            count, stacked, logs = step(iterator, asked)
            for i in range(count):
                callback_list.on_train_batch_begin(done + i)
                callback_list.on_train_batch_end(done + i, {k: v[i] for k, v in stacked.items()})
            done += count  # fewer than asked after a non-finite loss: StopOnNaN stops
        epoch_logs = dict(model._get_metrics_result_or_logs(logs))  # as fit's epoch logs
        callback_list.on_epoch_end(epoch, epoch_logs)
        training_logs = epoch_logs
        if model.stop_training:
            break
    if isinstance(model.optimizer, keras.optimizers.Optimizer) and epochs > 0:
        model.optimizer.finalize_variable_values(model.trainable_weights)
    callback_list.on_train_end(logs=training_logs)
    return model.history
