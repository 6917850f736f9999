"""Run an experiment: train each of its runs (resumable), evaluate, write the run folders.

Run folder ``OUT/<run>/``: ``config.json``, ``history.csv`` (one row per ``log_every`` steps:
loss, step, seconds, learning rate), ``model.keras``, ``metrics.json`` and PNG plots; while
training, ``backup/`` holds the last completed chunk so ``--resume`` continues from there.

A run folder is written only by its own run:

- every folder is checked before anything is written, so a refused run changes nothing;
- ``--resume`` with settings that differ from the stored run is refused, naming them;
- a lock (``.lock``, :mod:`oneshot.training.lock`) makes a second run into a folder fail at once;
- resume is exact: the checkpoint holds the weights, the optimizer state and the step, and the
  training input is rebuilt from the seed and fast-forwarded by the batches already consumed,
  so an interrupted and resumed run has the loss curve and final weights of an uninterrupted
  one (bit for bit with op determinism, which training turns on; not with a tf.distribute
  strategy, whose input pipeline reads ahead).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from oneshot.cli import UsageError
from oneshot.data.datasets import LabelledImages
from oneshot.experiments import Experiment, RunConfig
from oneshot.models import saveable_model
from oneshot.runs import HISTORY_FILE, MODEL_FILE
from oneshot.training.callbacks import (
    BACKUP_DIR,
    EpisodeMonitor,
    HistoryLogger,
    RunCheckpoint,
    StepLogger,
    StopOnNaN,
    monitor_subset,
    read_checkpoint,
    restore_checkpoint,
)
from oneshot.training.lock import LOCK_FILE, FolderLock
from oneshot.training.setup import build_dataset, build_model, load_train_and_test

STRATEGIES = ("none", "mirrored", "multiworker")


class OutputExistsError(UsageError, RuntimeError):
    """The output folder already holds a run and neither --resume nor --overwrite was given,
    or ``--resume`` asks for settings other than the stored run's."""


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


def run_state(run_dir: Path) -> str:
    """``"finished"`` (a model), ``"interrupted"`` (a config, history or checkpoint but no
    model) or ``"absent"`` (nothing of a run; a stale ``.lock`` does not count)."""
    run_dir = Path(run_dir)
    if (run_dir / MODEL_FILE).exists():
        return "finished"
    if any((run_dir / name).exists() for name in ("config.json", HISTORY_FILE, BACKUP_DIR)):
        return "interrupted"
    return "absent"


def _normalised(values: Any) -> Any:
    return json.loads(json.dumps(values))


def _stored_config(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "config.json"
    if not path.exists():
        return None
    stored = json.loads(path.read_text())
    with contextlib.suppress(ValueError, TypeError, KeyError):  # oneshot 0.1 configs
        stored = {**RunConfig.from_dict(stored).to_dict(), "seed": stored.get("seed")}
    return _normalised(stored)


def settings_differences(stored: dict[str, Any], asked: dict[str, Any]) -> list[str]:
    """``"key: stored X, asked Y"`` for every key whose values differ (missing = None)."""
    keys = list(dict.fromkeys([*stored, *asked]))
    return [
        f"{k}: the run has {stored.get(k)!r}, this command asks for {asked.get(k)!r}"
        for k in keys
        if stored.get(k) != asked.get(k)
    ]


def check_run(
    config: RunConfig,
    run_dir: Path,
    seed: int = 0,
    resume: bool = False,
    overwrite: bool = False,
    record: dict[str, Any] | None = None,
) -> str:
    """What training ``config`` into ``run_dir`` will do, checked without writing anything:
    ``"new"``, ``"overwrite"``, ``"resume"`` or ``"finished"`` (resume of a finished run:
    load and re-evaluate).

    Args:
        config, run_dir, seed, resume, overwrite: as for :func:`train_run`.
        record: experiment-level settings to compare on resume (e.g. the evaluation and the
            strategy), against ``OUT/experiment.json``. Defaults to None.

    Raises:
        RunLockedError: another process is training into the folder.
        OutputExistsError: the folder holds a run and neither ``resume`` nor ``overwrite`` is
            set, or ``resume`` asks for settings that differ from the stored run (named).
    """
    run_dir = Path(run_dir)
    FolderLock.check_free(run_dir)  # a run in progress: say so, whatever the folder holds
    state = run_state(run_dir)
    if state == "absent":
        return "new"
    if overwrite:
        return "overwrite"
    if not resume:
        if state == "finished":
            raise OutputExistsError(
                f"{run_dir} already holds a finished run. Pass --overwrite to train again, "
                "--resume to re-evaluate it, or choose another --out."
            )
        raise OutputExistsError(
            f"{run_dir} holds an interrupted run. Pass --resume to continue it, or --overwrite "
            "to start again."
        )
    differences = []
    stored = _stored_config(run_dir)
    if stored is not None:
        differences += settings_differences(stored, _normalised({**config.to_dict(), "seed": seed}))
    experiment_file = run_dir.parent / "experiment.json"
    if record and experiment_file.exists():
        old = json.loads(experiment_file.read_text())
        differences += settings_differences(
            {k: old.get(k) for k in record if k in old},
            _normalised({k: v for k, v in record.items() if k in old}),
        )
    if differences:
        raise OutputExistsError(
            f"--resume asks for other settings than the run in {run_dir} was started with: "
            + "; ".join(differences)
            + ". Resume with the run's settings, or pass --overwrite (or another --out) to "
            "train with the new ones."
        )
    return "finished" if state == "finished" else "resume"


def _elapsed_seconds(history: Path) -> float:
    """Training seconds already spent by an interrupted run (last ``seconds`` in history.csv)."""
    if not history.exists():
        return 0.0
    with history.open() as f:
        rows = list(csv.DictReader(f))
    return float(rows[-1]["seconds"]) if rows and rows[-1].get("seconds") else 0.0


def _truncate_history(history: Path, steps_done: int) -> None:
    """Keep the rows of ``history.csv`` up to ``steps_done`` (a process killed after writing a
    row but before its checkpoint leaves one row too many); no rows: remove the file."""
    if not history.exists():
        return
    with history.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows or "step" not in rows[0]:
        history.unlink()
        return
    column = rows[0].index("step")
    kept = [r for r in rows[1:] if r and float(r[column]) <= steps_done]
    if not kept:
        history.unlink()
        return
    if len(kept) != len(rows) - 1:
        with history.open("w", newline="") as f:
            csv.writer(f).writerows([rows[0], *kept])


def _clear_run_folder(run_dir: Path) -> None:
    """Remove everything in ``run_dir`` but its lock (``--overwrite``)."""
    for path in run_dir.iterdir():
        if path.name == LOCK_FILE:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


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

    The folder is checked first (:func:`check_run`: nothing is written if the run is refused)
    and locked while training (a second run into it fails at once). ``data`` is the run's
    (training, held-out) pair if already loaded
    (:func:`oneshot.training.setup.load_train_and_test`).
    """
    run_dir = Path(run_dir)
    check_run(config, run_dir, seed, resume, overwrite)
    with FolderLock(run_dir):
        return _train_locked(
            config, run_dir, data_dir, seed, resume, overwrite, strategy, extra_callbacks, data
        )


def _train_locked(config, run_dir, data_dir, seed, resume, overwrite, strategy,
                  extra_callbacks, data) -> keras.Model:  # fmt: skip
    from oneshot.saving import load_model

    model_path = run_dir / MODEL_FILE
    if resume and not overwrite and model_path.exists():
        return load_model(model_path)
    train, test = data or load_train_and_test(config, data_dir)  # a data error changes nothing
    if overwrite or not resume:  # a new folder, or --overwrite
        _clear_run_folder(run_dir)
        resume = False
    if not (run_dir / "config.json").exists():
        (run_dir / "config.json").write_text(
            json.dumps({**config.to_dict(), "seed": seed}, indent=2)
        )

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()  # same seed, same loss curve on CPU
    with get_strategy(strategy).scope():
        model = build_model(config, train)
    checkpoint = read_checkpoint(run_dir) if resume else None
    done_epochs, done_steps = (0, 0) if checkpoint is None else (
        int(checkpoint["epoch"]), int(checkpoint["step"]))  # fmt: skip
    if checkpoint is not None:
        restore_checkpoint(model, checkpoint)  # before the input: hard batches are mined with it
    history = run_dir / HISTORY_FILE
    _truncate_history(history, done_steps)

    # Chunks of log_every steps, then a shorter last one: exactly config.steps steps.
    full, rest = divmod(config.steps, config.log_every)
    phases = [(done_epochs, full, config.log_every)] if done_epochs < full else []
    if rest and done_epochs <= full:
        phases.append((full, full + 1, rest))
    for first, last, chunk in phases:
        # the input continues where the previous chunk stopped (same seed, fast-forwarded)
        dataset = build_dataset(config, model, train, seed=seed, skip=first * config.log_every)
        stop_on_nan = StopOnNaN(config.log_every)
        callbacks = [
            stop_on_nan,
            *_monitor(config, test, seed),
            StepLogger(config.log_every, _elapsed_seconds(history), total_steps=config.steps),
            HistoryLogger(str(history), append=history.exists()),
            RunCheckpoint(run_dir, config.log_every, config.steps, stop_on_nan),
            *(extra_callbacks or []),
        ]
        model.fit(
            dataset,
            initial_epoch=first,
            epochs=last,
            steps_per_epoch=chunk,
            callbacks=callbacks,
            verbose=2,
            shuffle=False,  # the samplers already draw at random
        )
        stop_on_nan.raise_if_diverged(run_dir)
    partial = run_dir / ("partial-" + MODEL_FILE)
    saveable_model(model).save(partial)  # without a loss's class weights (build_online)
    os.replace(partial, model_path)
    shutil.rmtree(run_dir / BACKUP_DIR, ignore_errors=True)
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
    """Train (and evaluate) every run of ``experiment`` under ``out``; return the summary.

    Every run folder is checked (:func:`check_run`) and locked, and the first run's data is
    loaded, before anything is written: a refused run, a folder in use or missing data leave
    the disk as it was.
    """
    out = Path(out)
    settings = {"strategy": strategy}
    if evaluate:
        settings["evaluation"] = experiment.to_dict()["evaluation"]
    states = {
        c.name: check_run(c, out / c.name, seed, resume, overwrite, settings)
        for c in experiment.runs
    }
    with contextlib.ExitStack() as locks:
        for config in experiment.runs:
            locks.enter_context(FolderLock(out / config.name))
        first = load_train_and_test(experiment.runs[0], data_dir)
        record = {
            **experiment.to_dict(),
            "command": command,
            "commands": {r.name: command for r in experiment.runs},
            "seed": seed,
            "strategy": strategy,
            "machine": f"{platform.machine()}, "
            f"{len(tf.config.list_physical_devices('CPU'))} CPU device(s)",
            "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
        }
        _write_merged(out / "experiment.json", record)
        summary: dict[str, Any] = {"experiment": experiment.name, "out": str(out), "runs": {}}
        for i, config in enumerate(experiment.runs):
            run_dir = out / config.name
            started = time.perf_counter()
            data = first if i == 0 else load_train_and_test(config, data_dir)
            model = _train_locked(
                config, run_dir, data_dir, seed, states[config.name] in ("resume", "finished"),
                states[config.name] == "overwrite", strategy, None, data,
            )  # fmt: skip
            train_seconds = _elapsed_seconds(run_dir / HISTORY_FILE)
            entry: dict[str, Any] = {
                "run_dir": str(run_dir),
                "train_seconds": train_seconds,
                "steps": config.steps,
            }
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
    same experiment wrote there (runs of one experiment may train in separate processes, so the
    read-merge-write holds the lock of the experiment folder)."""
    with FolderLock(path.parent, blocking=True, what="experiment folder"):
        return _merge_into(path, record)


def _merge_into(path: Path, record: dict[str, Any]) -> dict[str, Any]:
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
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, path)
    return record
