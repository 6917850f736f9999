"""Keras callbacks for training runs: step/time columns in the log, NaN stop with a clear message,
and the resume point of an interrupted run."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np

from oneshot.data.datasets import LabelledImages
from oneshot.errors import UsageError
from oneshot.evaluation.episodes import nway_accuracy
from oneshot.evaluation.scoring import Scorer

if TYPE_CHECKING:
    from oneshot.distances import Distance
    from oneshot.training.configs import RunConfig

BACKUP_DIR = "backup"
BEST_WEIGHTS = "best.weights.h5"  # in BACKUP_DIR: the best chunk's weights (oneshot.training.best)
START_WEIGHTS = "start.weights.h5"  # in BACKUP_DIR: the start, when KeepBest may keep it
MONITOR_WAYS = 20  # N of the monitor's N-way episodes (fewer when the held-out set is smaller)
MONITOR_IMAGES_PER_CLASS = 100  # images per class of a monitor set without drawers


class TrainingDivergedError(UsageError, RuntimeError):
    """Raised after training stopped on a NaN or infinite loss."""


class StepLogger(keras.callbacks.Callback):
    """Adds ``step``, ``learning_rate`` and cumulative ``seconds`` to each epoch's logs.

    One Keras epoch is ``steps_per_epoch`` optimisation steps, so ``history.csv`` (written by a
    CSVLogger placed *after* this callback) can be plotted against steps. ``seconds`` continues
    across resumes from ``elapsed_before``. With ``total_steps``, the step of the last epoch is
    capped at it (a last chunk shorter than ``steps_per_epoch``).
    """

    def __init__(self, steps_per_epoch: int, elapsed_before: float = 0.0,
                 total_steps: int | None = None) -> None:  # fmt: skip
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.elapsed_before = elapsed_before
        self.total_steps = total_steps
        self._start = 0.0

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        step = (epoch + 1) * self.steps_per_epoch
        logs["step"] = step if self.total_steps is None else min(step, self.total_steps)
        # time spent by an EpisodeMonitor (placed before this callback) is not training time
        spent = time.perf_counter() - self._start - logs.get("monitor_seconds", 0.0)
        logs["seconds"] = round(self.elapsed_before + spent, 2)
        optimizer = self.model.optimizer
        if optimizer is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))


class EpisodeMonitor(keras.callbacks.Callback):
    """Logs ``monitor_<N>way`` (:attr:`key`): N-way 1-shot accuracy (within alphabet when
    ``alphabets`` are given) on held-out images after every epoch (log chunk), so history.csv
    shows accuracy against training time.

    The monitor set is small (a few drawers or images per class, :func:`monitor_indices`) and
    the episodes are fixed by ``seed``, so successive values are comparable. Its own cumulative
    time goes to ``monitor_seconds``, which :class:`StepLogger` (placed after this callback)
    leaves out of ``seconds``. It only reports; a run with ``keep_best`` keeps the best chunk by
    it (:class:`oneshot.training.best.KeepBest`). Pairs are scored as after training
    (``Scorer.from_model``): by the model's learned metric or head, else by the distance it
    trains with (or ``distance``); the attribute ``distance_used`` holds the one the last
    measurement used (None for a learned metric or head).

    Args:
        images, labels, alphabets: the monitor set (held-out classes); ``alphabets`` None for
            episodes across all classes.
        episodes: episodes per measurement.
        n_way: classes per episode. Defaults to 20.
        shifts: test-time shift averaging, as in :class:`oneshot.evaluation.scoring.Scorer`. Defaults to 0.
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

    @property
    def key(self) -> str:
        """The column it logs: ``monitor_<N>way``."""
        return f"monitor_{self.n_way}way"

    def on_train_begin(self, logs=None):
        self.seconds = 0.0

    def measure(self, model: keras.Model) -> float:
        """The monitored accuracy of ``model`` (rounded as logged), e.g. of the weights before
        the first step."""
        start = time.perf_counter()
        scorer = Scorer.from_model(model, distance=self.distance, shifts=self.shifts)
        self.distance_used = None if scorer.uses_learned_metric else scorer.distance
        result = nway_accuracy(
            scorer, scorer.embed(self.images), self.labels, self.n_way, 1, self.episodes,
            alphabets=self.alphabets, within_alphabet=self.alphabets is not None, seed=self.seed,
        )  # fmt: skip
        self.seconds += time.perf_counter() - start
        return round(float(result.accuracy), 4)

    def on_epoch_end(self, epoch, logs=None):
        accuracy = self.measure(self.model)
        if logs is not None:
            logs[self.key] = accuracy
            logs["monitor_seconds"] = round(self.seconds, 2)


def run_monitor(config: RunConfig, test: LabelledImages, seed: int) -> list[EpisodeMonitor]:
    """The run's EpisodeMonitor on a small part of ``test`` (its ``RunData.monitor``), if it
    asks for one: 1-shot episodes, 20-way within-alphabet on Omniglot, fewer ways on fewer
    classes (:func:`episode_task`)."""
    if not config.monitor_episodes:
        return []
    keep = monitor_indices(test, config.monitor_drawers, seed)
    labels, groups = test.labels[keep], getattr(test, "alphabets", None)
    groups = None if groups is None else groups[keep]
    n_way, within = episode_task(labels, groups)
    return [
        EpisodeMonitor(
            test.images[keep], labels, groups if within else None, config.monitor_episodes,
            n_way=n_way, shifts=config.test_shifts, seed=seed, distance=config.eval_distance,
        )
    ]  # fmt: skip


def monitor_subset(drawers: np.ndarray, count: int) -> np.ndarray:
    """Indices of the images drawn by the first ``count`` drawers (every class keeps ``count``
    images, so within-alphabet episodes stay possible on a small set)."""
    chosen = np.unique(drawers)[:count]
    return np.flatnonzero(np.isin(drawers, chosen))


def monitor_indices(data: LabelledImages, drawers: int, seed: int = 0) -> np.ndarray:
    """The images a monitor measures on, few enough to embed every chunk: those of the first
    ``drawers`` drawers of every class (Omniglot), else up to ``MONITOR_IMAGES_PER_CLASS``
    images per class drawn with ``seed``, sorted."""
    known = getattr(data, "drawers", None)
    if known is not None and np.all(known >= 0):
        return monitor_subset(known, drawers)
    rng = np.random.default_rng(seed)
    chosen = [
        rng.permutation(np.flatnonzero(data.labels == c))[:MONITOR_IMAGES_PER_CLASS]
        for c in np.unique(data.labels)
    ]
    return np.sort(np.concatenate(chosen))


def episode_task(
    labels: np.ndarray, groups: np.ndarray | None = None, max_way: int = MONITOR_WAYS
) -> tuple[int, bool]:
    """``(n_way, within_group)`` of the 1-shot episodes on a held-out set: N is ``max_way`` or,
    on a smaller set, its number of classes with two images (a support and a query); within
    one group when the set has groups and one of them has N such classes."""
    classes, counts = np.unique(labels, return_counts=True)
    usable = classes[counts >= 2]
    n_way = min(max_way, len(usable))
    if n_way < 2:
        raise ValueError(
            f"Invalid value for argument `labels`. Expected at least 2 classes with 2 or more "
            f"images for one-shot episodes. Received {len(usable)} such classes."
        )
    if groups is None:
        return n_way, False
    first = np.array([groups[np.flatnonzero(labels == c)[0]] for c in usable])
    return n_way, bool(np.unique(first, return_counts=True)[1].max() >= n_way)


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
        """Raise :class:`TrainingDivergedError` naming the last good checkpoint in ``out_dir``
        (kept: :class:`RunCheckpoint` does not save a diverged chunk), if the loss diverged."""
        if self.bad_step is None:
            return
        advice = (
            f"The loss became NaN or infinite at step {self.bad_step}; training stopped. "
            "Lower the learning rate (--learning-rate) or check the margins of the loss, and "
            "start again with --overwrite."
        )
        checkpoint = read_checkpoint(out_dir)
        if checkpoint is None:
            advice += " No chunk finished before it, so there is no checkpoint to keep."
        else:
            advice += (
                f" The last good checkpoint (weights and optimizer state after step "
                f"{checkpoint['step']}) is kept in {checkpoint['path']}; --resume continues "
                "from it with the same settings."
            )
        raise TrainingDivergedError(advice)


CHECKPOINT_FILE = "training_metadata.json"


def read_checkpoint(out_dir: Path) -> dict | None:
    """The last checkpoint of an interrupted run in ``out_dir``: ``epoch`` (chunks done),
    ``step`` (training steps done, which is also the number of batches the sampler produced),
    ``weights`` (file name) and ``path`` (the weights file); None if there is none."""
    backup = Path(out_dir) / BACKUP_DIR
    meta = backup / CHECKPOINT_FILE
    if not meta.exists():
        return None
    state = json.loads(meta.read_text())
    if "weights" not in state:  # written by keras.callbacks.BackupAndRestore (oneshot 0.2)
        state["weights"] = "latest.weights.h5"
    state["path"] = backup / state["weights"]
    if not state["path"].exists():
        return None
    return state


def completed_epochs(out_dir: Path) -> int:
    """Epochs finished by an interrupted run in ``out_dir`` (0 if there is nothing to resume)."""
    checkpoint = read_checkpoint(out_dir)
    return 0 if checkpoint is None else int(checkpoint["epoch"])


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class RunCheckpoint(keras.callbacks.Callback):
    """Saves the weights and the optimizer state after every chunk (Keras epoch) into
    ``backup/``, so that an interrupted run continues exactly where it stopped.

    Each checkpoint is a new weights file ``epoch-NNNNNN.weights.h5``; then
    ``training_metadata.json`` is replaced atomically to name it, with the chunk and the step;
    then the older weights file is deleted. A process killed at any point thus leaves a complete
    checkpoint. The sampler's state is the step: the training input is rebuilt from the run's
    seed and fast-forwarded by that many batches (:func:`oneshot.training.setup.build_dataset`).
    A chunk that ended on a NaN/inf loss (``stop_on_nan``) is not saved: the last good
    checkpoint stays.

    Place it after the callbacks that write ``history.csv``: a process killed between the two
    then leaves a history row past the checkpoint, which the resume drops.
    """

    def __init__(self, out_dir: Path, log_every: int, steps: int,
                 stop_on_nan: StopOnNaN | None = None) -> None:  # fmt: skip
        super().__init__()
        self.backup = Path(out_dir) / BACKUP_DIR
        self.log_every, self.steps, self.stop_on_nan = log_every, steps, stop_on_nan

    def on_epoch_end(self, epoch, logs=None):
        if self.stop_on_nan is not None and self.stop_on_nan.bad_step is not None:
            return
        self.backup.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{epoch + 1:06d}.weights.h5"
        self.model.save_weights(self.backup / name, overwrite=True)
        step = min((epoch + 1) * self.log_every, self.steps)
        state = {"epoch": epoch + 1, "step": step, "weights": name}
        write_atomic(self.backup / CHECKPOINT_FILE, json.dumps(state))
        for old in self.backup.glob("*.weights.h5"):
            if old.name not in (name, BEST_WEIGHTS, START_WEIGHTS):
                old.unlink()


def restore_checkpoint(model: keras.Model, checkpoint: dict) -> None:
    """Load a :class:`RunCheckpoint` (weights and optimizer state) into the built ``model``."""
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(checkpoint["path"])
