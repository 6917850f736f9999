"""Run an experiment: train each of its runs (resumable), evaluate, write the run folders.

Run folder ``OUT/<run>/``: ``config.json``, ``history.csv`` (one row per ``log_every`` steps:
loss, step, seconds, learning rate), ``model.keras``, ``metrics.json`` and PNG plots; while
training, ``backup/`` holds the last completed chunk so ``--resume`` continues from there.
"""

from __future__ import annotations

import csv
import json
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from oneshot.data.datasets import LabelledImages
from oneshot.experiments import Experiment, RunConfig
from oneshot.training.callbacks import (
    BACKUP_DIR,
    EpisodeMonitor,
    HistoryLogger,
    StepLogger,
    StopOnNaN,
    backup_callback,
    completed_epochs,
    monitor_subset,
)
from oneshot.training.setup import build_dataset, build_model, load_train_and_test

MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"
STRATEGIES = ("none", "mirrored", "multiworker")


class OutputExistsError(RuntimeError):
    """The output folder already holds a run and neither --resume nor --overwrite was given."""


def get_strategy(name: str) -> tf.distribute.Strategy:
    """The tf.distribute strategy called ``name`` (``none`` = the default, single device)."""
    if name not in STRATEGIES:
        raise ValueError(
            f"Invalid value for argument `strategy`. Expected one of {STRATEGIES}. "
            f"Received: strategy={name!r}"
        )
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _check_output(run_dir: Path, resume: bool, overwrite: bool) -> None:
    finished = (run_dir / MODEL_FILE).exists()
    interrupted = (run_dir / BACKUP_DIR).exists()
    if overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
        return
    if resume:
        return
    if finished:
        raise OutputExistsError(
            f"{run_dir} already holds a finished run. Pass --overwrite to train again, "
            "--resume to re-evaluate it, or choose another --out."
        )
    if interrupted:
        raise OutputExistsError(
            f"{run_dir} holds an interrupted run. Pass --resume to continue it, or --overwrite "
            "to start again."
        )


def _elapsed_seconds(history: Path) -> float:
    """Training seconds already spent by an interrupted run (last ``seconds`` in history.csv)."""
    if not history.exists():
        return 0.0
    with history.open() as f:
        rows = list(csv.DictReader(f))
    return float(rows[-1]["seconds"]) if rows and rows[-1].get("seconds") else 0.0


def train_run(
    config: RunConfig,
    run_dir: Path,
    data_dir: str | Path | None = None,
    seed: int = 0,
    resume: bool = False,
    overwrite: bool = False,
    strategy: str = "none",
    extra_callbacks: list[keras.callbacks.Callback] | None = None,
    data: tuple[LabelledImages, LabelledImages] | None = None,
) -> keras.Model:
    """Train one run into ``run_dir`` (resuming if asked) and return the trained model.

    ``data`` is the run's (training, held-out) pair if already loaded
    (:func:`oneshot.training.setup.load_train_and_test`).
    """
    run_dir = Path(run_dir)
    _check_output(run_dir, resume, overwrite)
    run_dir.mkdir(parents=True, exist_ok=True)
    model_path = run_dir / MODEL_FILE
    if resume and model_path.exists():
        return keras.models.load_model(model_path)
    (run_dir / "config.json").write_text(json.dumps({**config.to_dict(), "seed": seed}, indent=2))

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()  # same seed, same loss curve on CPU
    train, test = data or load_train_and_test(config, data_dir)
    with get_strategy(strategy).scope():
        model = build_model(config)
    start_epoch = completed_epochs(run_dir) if resume else 0
    # A resumed run draws a fresh, still deterministic, stream from where it stopped.
    dataset = build_dataset(config, model, train, seed=seed + 7919 * start_epoch)
    stop_on_nan = StopOnNaN(config.log_every)
    history = run_dir / HISTORY_FILE
    callbacks = [
        backup_callback(run_dir),
        stop_on_nan,
        *_monitor(config, test, seed),
        StepLogger(config.log_every, _elapsed_seconds(history) if start_epoch else 0.0),
        HistoryLogger(str(history), append=start_epoch > 0),
        *(extra_callbacks or []),
    ]
    model.fit(
        dataset,
        epochs=config.epochs,
        steps_per_epoch=config.log_every,
        callbacks=callbacks,
        verbose=2,
        shuffle=False,  # the samplers already draw at random
    )
    stop_on_nan.raise_if_diverged(run_dir)
    model.save(model_path)
    return model


def _monitor(config: RunConfig, test: LabelledImages, seed: int) -> list[EpisodeMonitor]:
    """The run's EpisodeMonitor on a few drawers of its held-out set, if it asks for one."""
    drawers = getattr(test, "drawers", None)
    if not config.monitor_episodes or drawers is None:
        return []
    keep = monitor_subset(drawers, config.monitor_drawers)
    return [
        EpisodeMonitor(
            test.images[keep], test.labels[keep], test.alphabets[keep],
            config.monitor_episodes, shifts=config.test_shifts, seed=seed,
            distance=config.eval_distance,
        )
    ]  # fmt: skip


def run_experiment(
    experiment: Experiment,
    out: Path,
    data_dir: str | Path | None = None,
    seed: int = 0,
    resume: bool = False,
    overwrite: bool = False,
    strategy: str = "none",
    evaluate: bool = True,
    command: str = "",
) -> dict[str, Any]:
    """Train (and evaluate) every run of ``experiment`` under ``out``; return the summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    record = {
        **experiment.to_dict(),
        "command": command,
        "commands": {r.name: command for r in experiment.runs},
        "seed": seed,
        "strategy": strategy,
        "machine": f"{platform.machine()}, {len(tf.config.list_physical_devices('CPU'))} CPU device(s)",
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    _write_merged(out / "experiment.json", record)
    summary: dict[str, Any] = {"experiment": experiment.name, "out": str(out), "runs": {}}
    for config in experiment.runs:
        run_dir = out / config.name
        started = time.perf_counter()
        data = load_train_and_test(config, data_dir)
        model = train_run(config, run_dir, data_dir, seed, resume, overwrite, strategy, data=data)
        train_seconds = _elapsed_seconds(run_dir / HISTORY_FILE)
        entry: dict[str, Any] = {"train_seconds": train_seconds, "steps": config.steps}
        if evaluate:
            from oneshot.training.assess import assess_run  # evaluation + plots

            entry["metrics"] = assess_run(
                model, config, experiment.evaluation, data[1], run_dir, data_dir, seed
            )
        entry["wall_seconds"] = round(time.perf_counter() - started, 1)
        summary["runs"][config.name] = entry
    if evaluate and len(experiment.runs) > 1:
        from oneshot.compare import compare_runs

        compare_runs([out / r.name for r in experiment.runs], out / "comparison.png")
    return _write_merged(out / "summary.json", summary)


def _write_merged(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Write ``record`` to ``path``, keeping the other runs a previous ``--runs`` call of the
    same experiment wrote there (runs of one experiment may train in separate processes)."""
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("name", old.get("experiment")) == record.get("name", record.get("experiment")):
            record = dict(record)
            for key in ("runs", "commands"):
                if key not in record:
                    continue
                if isinstance(record[key], dict):
                    record[key] = {**old.get(key, {}), **record[key]}
                else:  # a list of run configs
                    mine = {r["name"] for r in record[key]}
                    record[key] = [r for r in old.get(key, []) if r["name"] not in mine] + record[
                        key
                    ]
    path.write_text(json.dumps(record, indent=2))
    return record
