"""Keras callbacks for training runs: step/time columns in the log, NaN stop with a clear message,
and the resume point of an interrupted run."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import keras

BACKUP_DIR = "backup"


class TrainingDivergedError(RuntimeError):
    """Raised after training stopped on a NaN or infinite loss."""


class StepLogger(keras.callbacks.Callback):
    """Adds ``step``, ``learning_rate`` and cumulative ``seconds`` to each epoch's logs.

    One Keras epoch is ``steps_per_epoch`` optimisation steps, so ``history.csv`` (written by a
    CSVLogger placed *after* this callback) can be plotted against steps. ``seconds`` continues
    across resumes from ``elapsed_before``.
    """

    def __init__(self, steps_per_epoch: int, elapsed_before: float = 0.0) -> None:
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.elapsed_before = elapsed_before
        self._start = 0.0

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        logs["step"] = (epoch + 1) * self.steps_per_epoch
        logs["seconds"] = round(self.elapsed_before + time.perf_counter() - self._start, 2)
        optimizer = self.model.optimizer
        if optimizer is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))


class StopOnNaN(keras.callbacks.Callback):
    """Stops training at the first NaN/inf loss and remembers where, so the caller can raise
    :class:`TrainingDivergedError` with advice instead of writing a broken model."""

    def __init__(self, steps_per_epoch: int) -> None:
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.bad_step: int | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.bad_step = self._epoch * self.steps_per_epoch + batch + 1
            self.model.stop_training = True

    def raise_if_diverged(self, out_dir: Path) -> None:
        if self.bad_step is not None:
            raise TrainingDivergedError(
                f"The loss became NaN or infinite at step {self.bad_step}; training stopped. "
                "Lower the learning rate (--learning-rate), check the margins of the loss, or "
                f"resume from the last good checkpoint in {out_dir / BACKUP_DIR} with --resume "
                "after changing the config."
            )


def completed_epochs(out_dir: Path) -> int:
    """Epochs finished by an interrupted run in ``out_dir`` (0 if there is nothing to resume)."""
    meta = Path(out_dir) / BACKUP_DIR / "training_metadata.json"
    if not meta.exists():
        return 0
    return int(json.loads(meta.read_text())["epoch"])


def backup_callback(out_dir: Path) -> keras.callbacks.BackupAndRestore:
    """Saves weights + optimizer state every epoch; on the next ``fit`` restores them and the
    epoch counter, so an interrupted run continues where it stopped."""
    return keras.callbacks.BackupAndRestore(str(Path(out_dir) / BACKUP_DIR), save_freq="epoch")
