"""Keep the best checkpoint by held-out-class accuracy, and stop when it no longer improves.

Training longer is not always better for one-shot learning: on few classes a network can fit
its training classes and lose what transfers to new ones (see the warning of
:mod:`oneshot.training.baselines`). :class:`KeepBest` watches the accuracy an
:class:`~oneshot.training.callbacks.EpisodeMonitor` measures on held-out *training-set*
classes after every chunk, saves the weights whenever it improves, and the runner restores
them at the end, so ``model.keras`` is the best chunk's model, not the last one's.

Its state (``backup/best.json``, ``backup/best.weights.h5``) survives an interruption:
``--resume`` continues with the best so far, exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import keras

from oneshot.training.callbacks import (
    BACKUP_DIR,
    BEST_WEIGHTS,
    START_WEIGHTS,
    StopOnNaN,
    write_atomic,
)

BEST_STATE = "best.json"
BEST_STEP = "best_step"  # the history.csv column: the step of the best chunk so far


class KeepBest(keras.callbacks.Callback):
    """Saves the weights of the chunk (Keras epoch) with the highest ``logs[key]``.

    Place it after the monitor that logs ``key`` and before the callbacks that write
    ``history.csv`` and the run checkpoint. It adds ``best_step`` to the logs. Ties keep the
    earlier chunk (fewer steps). With ``patience``, training stops after that many chunks
    without improvement. :meth:`offer_start` makes the weights before the first step a
    candidate too (step 0): then nothing is kept that does not beat the start. Call :meth:`restore` after the last ``fit`` to load the best weights
    (not at the end of each ``fit``: a run may train in several).

    Args:
        run_dir: the run folder; the state goes to its ``backup/``.
        key: the logged value to maximise, e.g. ``"monitor_20way"``.
        log_every: steps per chunk.
        steps: the run's total steps (the last chunk may be shorter).
        patience: chunks without improvement before stopping; 0 never stops. Defaults to 0.
        stop_on_nan: a chunk that ended on a NaN loss is never kept. Defaults to None.
    """

    def __init__(self, run_dir: Path, key: str, log_every: int, steps: int, patience: int = 0,
                 stop_on_nan: StopOnNaN | None = None) -> None:  # fmt: skip
        super().__init__()
        self.backup = Path(run_dir) / BACKUP_DIR
        self.key, self.log_every, self.steps = key, log_every, steps
        self.patience, self.stop_on_nan = patience, stop_on_nan
        self.state: dict[str, Any] = self._fresh()

    def _fresh(self) -> dict[str, Any]:
        return {"key": self.key, "value": None, "epoch": 0, "step": 0, "last_epoch": 0,
                "stopped": False}  # fmt: skip

    @property
    def best_step(self) -> int | None:
        """The step of the best chunk so far (None before the first)."""
        return self.state["step"] if self.state["value"] is not None else None

    @property
    def stopped(self) -> bool:
        """Whether patience ran out (the run should not train further)."""
        return bool(self.state["stopped"])

    def resume(self, done_epochs: int) -> None:
        """Continue from the state saved in ``backup/`` by the same run, which had completed
        ``done_epochs`` chunks. A state written for a later chunk (a process killed between
        this callback and the run checkpoint) is rolled back: its stop is decided again, and a
        best found in that chunk is forgotten (the chunk is trained again and, the resume being
        exact, found again)."""
        path = self.backup / BEST_STATE
        state = json.loads(path.read_text()) if path.exists() else None
        if state is None or state.get("key") != self.key:
            self.state = self._fresh()
            return
        if state["last_epoch"] > done_epochs:
            state.update(last_epoch=done_epochs, stopped=False)
        kept = self.backup / (START_WEIGHTS if state["epoch"] == 0 else BEST_WEIGHTS)
        if state["epoch"] > done_epochs or not kept.exists():
            start = state.get("start") if (self.backup / START_WEIGHTS).exists() else None
            state.update(value=start, epoch=0, step=0)
        self.state = state

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        if self.stop_on_nan is not None and self.stop_on_nan.bad_step is not None:
            return
        if self.key not in logs:
            raise ValueError(
                f"KeepBest watches `{self.key}`, which no callback before it logged. Place the "
                "EpisodeMonitor that logs it before KeepBest."
            )
        value, done = float(logs[self.key]), epoch + 1
        if self.state["value"] is None or value > self.state["value"]:
            self._save_weights(self.model)
            step = min(done * self.log_every, self.steps)
            self.state.update(value=value, epoch=done, step=step)
        self.state["last_epoch"] = done
        if self.patience and done - self.state["epoch"] >= self.patience:
            self.state["stopped"] = True
            self.model.stop_training = True
        logs[BEST_STEP] = self.state["step"]
        self.backup.mkdir(parents=True, exist_ok=True)
        write_atomic(self.backup / BEST_STATE, json.dumps(self.state))

    def offer_start(self, model: keras.Model, value: float) -> None:
        """Make ``model``'s weights before the first step a candidate, monitored at ``value``
        (step 0): a chunk is then kept only if it beats the start, and patience counts from
        it, so a run that learns nothing useful for new classes stops early and keeps its
        start. Call it once, before the first chunk of a new run (a resumed run has it in
        ``backup/best.json`` as ``start``)."""
        self._save_weights(model, START_WEIGHTS)
        self.state.update(value=value, epoch=0, step=0, start=value)
        write_atomic(self.backup / BEST_STATE, json.dumps(self.state))

    @property
    def start_value(self) -> float | None:
        """The start's monitored accuracy, if :meth:`offer_start` made it a candidate."""
        return self.state.get("start")

    def _save_weights(self, model: keras.Model, name: str = BEST_WEIGHTS) -> None:
        self.backup.mkdir(parents=True, exist_ok=True)
        partial = self.backup / ("partial-" + name)
        model.save_weights(partial, overwrite=True)
        os.replace(partial, self.backup / name)

    def restore(self, model: keras.Model) -> int | None:
        """Load the best chunk's weights into ``model``; its step, or None if none was kept."""
        if self.best_step is None:
            return None
        kept = START_WEIGHTS if self.state["epoch"] == 0 else BEST_WEIGHTS
        with warnings.catch_warnings():  # the start was saved before the optimizer was built
            warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
            model.load_weights(self.backup / kept)
        return self.best_step
