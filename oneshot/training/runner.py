"""Run an experiment: train each of its runs (resumable), evaluate, write the run folders.

The files of a run folder are :mod:`oneshot.training.files`'s; while training, ``backup/``
holds the last completed chunk, from which ``--resume`` continues.

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
import dataclasses
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from oneshot.data.datasets import LabelledImages
from oneshot.models.builders import saveable_model
from oneshot.models.saving import load_model
from oneshot.training.assess import assess_run, compare_runs
from oneshot.training.baselines import load_untrained, save_untrained
from oneshot.training.best import KeepBest
from oneshot.training.callbacks import (
    BACKUP_DIR,
    HistoryLogger,
    RunCheckpoint,
    StepLogger,
    StopOnNaN,
    read_checkpoint,
    restore_checkpoint,
    run_monitor,
)
from oneshot.training.configs import RunConfig
from oneshot.training.distributed import (
    check_batch_split,
    fit_distributed,
    get_strategy,
    is_chief,
    strategy_name,
    task_name,
    training_record,
    wait_for_all,
    weights_fingerprint,
)
from oneshot.training.experiment import Experiment
from oneshot.training.files import (
    EXPERIMENT_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    MODEL_FILE,
    write_experiment_record,
)
from oneshot.training.folders import (
    check_run,
    clear_run_folder,
    elapsed_seconds,
    run_state,
    steps_trained,
    truncate_history,
)
from oneshot.training.lock import FolderLock
from oneshot.training.loop import check_loop, fit_loop
from oneshot.training.pretrained import pinned
from oneshot.training.setup import (
    RunData,
    as_run_data,
    build_dataset,
    build_model,
    in_float32,
    load_train_and_test,
)

__all__ = ["run_experiment", "train_run"]


def _resolve(strategy: str | tf.distribute.Strategy) -> tuple[str, tf.distribute.Strategy]:
    if isinstance(strategy, str):
        return strategy, get_strategy(strategy)
    return strategy_name(strategy), strategy


def train_run(
    config: RunConfig,
    run_dir: Path,
    data_dir: str | Path | None = None,
    seed: int = 0,
    resume: bool = False,
    overwrite: bool = False,
    strategy: str | tf.distribute.Strategy = "none",
    extra_callbacks: list[keras.callbacks.Callback] | None = None,
    data: RunData | tuple[LabelledImages, LabelledImages] | None = None,
    global_mining: bool = True,
    loop: str = "graph",
) -> keras.Model:
    """Train one run into ``run_dir`` (resuming if asked) and return the trained model.

    The folder is checked first (:func:`check_run`: nothing is written if the run is refused)
    and locked while training (a second run into it fails at once). A run with ``init_from``
    records the file's checksum (:func:`oneshot.training.pretrained.pinned`). ``data`` is the
    run's :class:`~oneshot.training.setup.RunData` if already loaded
    (:func:`oneshot.training.setup.load_train_and_test`), or a (training, held-out) pair
    monitored and evaluated on alike.

    ``strategy``: a name of :data:`STRATEGIES` or a ``tf.distribute.Strategy``; under one, the
    run trains with :func:`oneshot.training.distributed.fit_distributed` and, with
    ``global_mining``, an online loss mines the global batch. Use :func:`run_experiment` for
    several worker processes (it gives the non-chief workers a private folder). Without one,
    ``loop`` (:data:`LOOPS`) says how it trains: ``"graph"``
    (:func:`oneshot.training.loop.fit_loop`) or ``"fit"`` (``model.fit``), to the same numbers.
    """
    run_dir = Path(run_dir)
    check_loop(loop)
    config = pinned(config)
    name, strategy = _resolve(strategy)
    training = training_record(name, global_mining)
    check_run(config, run_dir, seed, resume, overwrite, training=training)
    with FolderLock(run_dir):
        return _train_locked(
            config, run_dir, data_dir, seed, resume, overwrite, strategy, extra_callbacks, data,
            training, loop,
        )  # fmt: skip


def _train_locked(config, run_dir, data_dir, seed, resume, overwrite, strategy,
                  extra_callbacks, data, training, loop="graph") -> keras.Model:  # fmt: skip

    model_path = run_dir / MODEL_FILE
    if resume and not overwrite and model_path.exists():
        return load_model(model_path)
    # a data error changes nothing
    train, _, monitored = as_run_data(data or load_train_and_test(config, data_dir))
    if overwrite or not resume:  # a new folder, or --overwrite
        clear_run_folder(run_dir)
        resume = False
    if not (run_dir / "config.json").exists():
        (run_dir / "config.json").write_text(
            json.dumps({**config.to_dict(), "seed": seed, **training}, indent=2)
        )

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()  # same seed, same loss curve on CPU
    distributed = bool(training)
    global_mining = distributed and training["strategy"]["global_mining"]
    with strategy.scope():
        model = build_model(config, train, global_mining=global_mining)
    if config.held_out:  # the untrained baseline: the weights before any step (or init_from's)
        save_untrained(model, run_dir)
    checkpoint = read_checkpoint(run_dir) if resume else None
    done_epochs, done_steps = (0, 0) if checkpoint is None else (
        int(checkpoint["epoch"]), int(checkpoint["step"]))  # fmt: skip
    if checkpoint is not None:
        with strategy.scope():  # it builds the optimizer's variables
            restore_checkpoint(model, checkpoint)  # before the input: hard batches mine with it
    history = run_dir / HISTORY_FILE
    truncate_history(history, done_steps)
    monitor = run_monitor(config, monitored, seed)
    keeper = None
    if config.keep_best:  # the config ensures a monitor on held-out classes
        keeper = KeepBest(run_dir, monitor[0].key, config.log_every, config.steps, config.patience)
        keeper.resume(done_epochs)
        if config.keep_start and done_epochs == 0 and keeper.start_value is None:
            keeper.offer_start(model, monitor[0].measure(model))
            print(f"start: {monitor[0].key} {keeper.start_value:.1%} before the first step; "
                  "a checkpoint is kept only if it beats it", flush=True)  # fmt: skip

    # Chunks of log_every steps, then a shorter last one: exactly config.steps steps.
    full, rest = divmod(config.steps, config.log_every)
    phases = [(done_epochs, full, config.log_every)] if done_epochs < full else []
    if rest and done_epochs <= full:
        phases.append((full, full + 1, rest))
    for first, last, chunk in phases:
        if keeper is not None and keeper.stopped:  # patience ran out (maybe before a resume)
            break
        # the input continues where the previous chunk stopped (same seed, fast-forwarded)
        dataset = build_dataset(config, model, train, seed=seed, skip=first * config.log_every)
        stop_on_nan = StopOnNaN(config.log_every)
        if keeper is not None:
            keeper.stop_on_nan = stop_on_nan
        callbacks = [
            stop_on_nan,
            *monitor,
            *([keeper] if keeper is not None else []),
            StepLogger(config.log_every, elapsed_seconds(history), total_steps=config.steps),
            HistoryLogger(str(history), append=history.exists()),
            RunCheckpoint(run_dir, config.log_every, config.steps, stop_on_nan),
            *(extra_callbacks or []),
        ]
        if distributed:  # Keras's fit fails under a multi-worker strategy
            fit_distributed(
                model, strategy, dataset, initial_epoch=first, epochs=last,
                steps_per_epoch=chunk, callbacks=callbacks, verbose=2,
            )  # fmt: skip
        elif loop == "graph":
            fit_loop(
                model, dataset, initial_epoch=first, epochs=last, steps_per_epoch=chunk,
                callbacks=callbacks, verbose=2,
            )  # fmt: skip
        else:
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
    if keeper is not None:
        keeper.restore(model)  # the best chunk's weights, not the last one's
    model = in_float32(model, config, train)  # a mixed-precision run is saved in float32
    partial = run_dir / ("partial-" + MODEL_FILE)
    saveable_model(model).save(partial)  # without a loss's class weights (build_online)
    os.replace(partial, model_path)
    shutil.rmtree(run_dir / BACKUP_DIR, ignore_errors=True)
    return model


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
    data: RunData | tuple[LabelledImages, LabelledImages] | None = None,
    global_mining: bool = True,
    loop: str = "graph",
) -> dict[str, Any]:
    """Train (and evaluate) every run of ``experiment`` under ``out``; return the summary.

    Every run's ``init_from`` file is checked and its checksum recorded
    (:func:`oneshot.training.pretrained.pinned`), every run folder is checked
    (:func:`check_run`) and locked, and the first run's data is loaded, before anything is
    written: a refused run, a folder in use or missing data leave the disk as it was. ``data``:
    the first run's :class:`~oneshot.training.setup.RunData` if already loaded
    (:func:`oneshot.training.setup.load_train_and_test`), or a (training, held-out) pair.

    A run that holds out classes is evaluated on ``RunData.test``: for MNIST the test split's
    images of those classes, not the training-split images its monitor chose the checkpoint on.

    Without a strategy, ``loop`` says how the runs train (:func:`train_run`). Under a
    ``strategy`` (:mod:`oneshot.training.distributed`) every run trains with the
    distributed step, and only the chief writes ``out``: another worker trains in a private
    temporary folder (from the chief's checkpoint on resume), evaluates nothing, prints its
    weights' fingerprint and returns ``{"worker": ..., "runs": {name: {"weights": ...}}}``.
    """
    out = Path(out)
    check_loop(loop)
    experiment = dataclasses.replace(experiment, runs=tuple(pinned(c) for c in experiment.runs))
    training = training_record(strategy, global_mining)
    distribution = get_strategy(strategy)  # once per process (a multi-worker one cannot twice)
    if training:
        check_batch_split(experiment.runs, distribution.num_replicas_in_sync, global_mining)
    if not is_chief(distribution):
        return _train_as_worker(experiment, out, data_dir, seed, resume, overwrite,
                                distribution, training, data)  # fmt: skip
    settings = {"strategy": strategy}
    if evaluate:
        settings["evaluation"] = experiment.to_dict()["evaluation"]
    states = {
        c.name: check_run(c, out / c.name, seed, resume, overwrite, settings, training)
        for c in experiment.runs
    }
    with contextlib.ExitStack() as locks:
        for config in experiment.runs:
            locks.enter_context(FolderLock(out / config.name))
        first = as_run_data(data or load_train_and_test(experiment.runs[0], data_dir))
        record = {
            **experiment.to_dict(),
            "command": command,
            "commands": {r.name: command for r in experiment.runs},
            "seed": seed,
            "strategy": strategy,
            **({"replicas": distribution.num_replicas_in_sync} if training else {}),
            "machine": f"{platform.machine()}, "
            f"{len(tf.config.list_physical_devices('CPU'))} CPU device(s)",
            "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
        }
        recorded = write_experiment_record(out / EXPERIMENT_FILE, record)
        summary: dict[str, Any] = {"experiment": experiment.name, "out": str(out), "runs": {}}
        summary_file, merged = out / "summary.json", summary
        for i, config in enumerate(experiment.runs):
            run_dir = out / config.name
            started = time.perf_counter()
            data = first if i == 0 else load_train_and_test(config, data_dir)
            model = _train_locked(
                config, run_dir, data_dir, seed, states[config.name] in ("resume", "finished"),
                states[config.name] == "overwrite", distribution, None, data, training, loop,
            )  # fmt: skip
            if training:
                print(f"{task_name(distribution)}: {config.name} weights "
                      f"{weights_fingerprint(model)}", flush=True)  # fmt: skip
            train_seconds = elapsed_seconds(run_dir / HISTORY_FILE)
            trained = steps_trained(run_dir / HISTORY_FILE)
            entry: dict[str, Any] = {
                "run_dir": str(run_dir),
                "train_seconds": train_seconds,
                "steps": config.steps if trained is None else trained,  # fewer after a stop
                "steps_asked": config.steps,
            }
            if evaluate:
                untrained = None
                if config.held_out:
                    float32 = dataclasses.replace(config, precision="float32")  # as saved
                    untrained = load_untrained(build_model(float32, data.train), run_dir)
                entry["metrics"] = assess_run(
                    model, config, experiment.evaluation, data.test, run_dir, data_dir, seed,
                    untrained=untrained,
                )  # fmt: skip
            entry["wall_seconds"] = round(time.perf_counter() - started, 1)
            summary["runs"][config.name] = entry
            # after every run, so that an interrupted experiment keeps the runs it finished
            merged = write_experiment_record(
                summary_file, {**summary, "runs": {config.name: entry}}
            )
        names = [r["name"] for r in recorded.get("runs", [])]  # also earlier --runs calls'
        finished = [out / name for name in names if (out / name / METRICS_FILE).exists()]
        if evaluate and len(finished) > 1:
            compare_runs(finished, out / "comparison.png")
    wait_for_all(distribution)  # the other workers wait for the evaluation
    return merged


def _train_as_worker(experiment, out, data_dir, seed, resume, overwrite, strategy, training,
                     data) -> dict[str, Any]:  # fmt: skip
    """A non-chief worker's share of :func:`run_experiment`: the same training steps (the
    collectives need every worker), written into a private folder that is deleted afterwards.
    A finished run is skipped (the chief only re-evaluates it); a resumed one starts from the
    chief's checkpoint (``backup/``, on storage all workers see)."""
    task = task_name(strategy)
    private = Path(tempfile.mkdtemp(prefix=f"oneshot-{task.replace(' ', '')}-"))
    runs: dict[str, Any] = {}
    try:
        for i, config in enumerate(experiment.runs):
            shared, mine = out / config.name, private / config.name
            state = run_state(shared)
            continuing = resume and not overwrite and state != "absent"
            if continuing and state == "finished":
                continue
            mine.mkdir(parents=True)
            if continuing:
                for name in ("config.json", BACKUP_DIR):
                    source = shared / name
                    if source.is_dir():
                        shutil.copytree(source, mine / name)
                    elif source.exists():
                        shutil.copy2(source, mine / name)
            run_data = (data if i == 0 else None) or load_train_and_test(config, data_dir)
            model = _train_locked(config, mine, data_dir, seed, continuing, False, strategy,
                                  None, run_data, training)  # fmt: skip
            runs[config.name] = {"weights": weights_fingerprint(model)}
            print(f"{task}: {config.name} weights {runs[config.name]['weights']}", flush=True)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    wait_for_all(strategy)  # until the chief has evaluated
    return {"experiment": experiment.name, "worker": task, "out": str(out), "runs": runs}
