"""Keras callbacks for training runs: step/time columns in the log, NaN stop with a clear message,
and the resume point of an interrupted run."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np

if TYPE_CHECKING:
    from oneshot.distances import Distance

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
        # time spent by an EpisodeMonitor (placed before this callback) is not training time
        spent = time.perf_counter() - self._start - logs.get("monitor_seconds", 0.0)
        logs["seconds"] = round(self.elapsed_before + spent, 2)
        optimizer = self.model.optimizer
        if optimizer is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))


class EpisodeMonitor(keras.callbacks.Callback):
    """Logs ``monitor_20way``: N-way 1-shot within-alphabet accuracy on held-out images after
    every epoch (log chunk), so history.csv shows accuracy against training time.

    The monitor set is small (a few drawers per class) and the episodes are fixed by ``seed``,
    so successive values are comparable. Its own cumulative time goes to ``monitor_seconds``,
    which :class:`StepLogger` (placed after this callback) leaves out of ``seconds``. It only
    reports: nothing is selected or stopped on it. Pairs are scored as after training
    (``Scorer.from_model``): by the model's learned metric or head, else by the distance it
    trains with (or ``distance``); the attribute ``distance_used`` holds the one the last
    measurement used (None for a learned metric or head).

    Args:
        images, labels, alphabets: the monitor set (held-out classes).
        episodes: episodes per measurement.
        n_way: classes per episode. Defaults to 20.
        shifts: test-time shift averaging, as in :class:`oneshot.inference.Scorer`. Defaults to 0.
        seed: episode seed. Defaults to 0.
        distance: score with this distance instead of the model's own (e.g. a run's
            ``eval_distance``). Defaults to None (the model's).
    """

    def __init__(self, images, labels, alphabets, episodes: int, n_way: int = 20,
                 shifts: int = 0, seed: int = 0,
                 distance: Distance | str | None = None) -> None:  # fmt: skip
        super().__init__()
        self.images, self.labels, self.alphabets = images, labels, alphabets
        self.episodes, self.n_way, self.shifts, self.seed = episodes, n_way, shifts, seed
        self.distance = distance
        self.distance_used = None
        self.seconds = 0.0

    def on_train_begin(self, logs=None):
        self.seconds = 0.0

    def on_epoch_end(self, epoch, logs=None):
        from oneshot.evaluation.episodes import nway_accuracy
        from oneshot.inference import Scorer

        start = time.perf_counter()
        scorer = Scorer.from_model(self.model, distance=self.distance, shifts=self.shifts)
        self.distance_used = None if scorer.uses_learned_metric else scorer.distance
        result = nway_accuracy(
            scorer, scorer.embed(self.images), self.labels, self.n_way, 1, self.episodes,
            alphabets=self.alphabets, within_alphabet=self.alphabets is not None, seed=self.seed,
        )  # fmt: skip
        self.seconds += time.perf_counter() - start
        if logs is not None:
            logs[f"monitor_{self.n_way}way"] = round(float(result.accuracy), 4)
            logs["monitor_seconds"] = round(self.seconds, 2)


def monitor_subset(drawers: np.ndarray, count: int) -> np.ndarray:
    """Indices of the images drawn by the first ``count`` drawers (every class keeps ``count``
    images, so within-alphabet episodes stay possible on a small set)."""
    chosen = np.unique(drawers)[:count]
    return np.flatnonzero(np.isin(drawers, chosen))


class HistoryLogger(keras.callbacks.CSVLogger):
    """``history.csv`` with one column per logged value. (Keras's CSVLogger also adds an empty
    ``val_`` twin of every column when there is no validation data; runs here have none.)"""

    def on_epoch_end(self, epoch, logs=None):
        if self.keys is None and logs:
            self.keys = sorted(logs.keys())
        super().on_epoch_end(epoch, logs)


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
