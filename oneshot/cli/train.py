"""Command line: train a named experiment, or the recommended recipe on your images, and write
its run folder.

    python -m oneshot.train --experiment mnist-triplet [--out DIR] [--data-dir D] [--steps N]
        [--seed S] [--paper] [--resume] [--strategy none|mirrored|multiworker] [--loop graph|fit]
        [--debug]
    python -m oneshot.train --images DIR [--out OUT] [--image-size S] [--channels 1|3]
        [--validation-classes 5|0.2|cat,dog] [--init-from MODEL] [--steps N] [--resume] ...

Each run of the experiment gets ``OUT/<run>/`` with ``config.json``, ``history.csv``,
``model.keras``, ``metrics.json`` and PNG plots; ``OUT/experiment.json`` records the command.
``--images`` trains ``oneshot.experiments.your_data.recommended_run`` on a folder of class
sub-folders, validated on classes it holds out (there is no test split), from random weights
or, with ``--init-from``, from a trained run's network. Every argument is checked before any
work (a run's ``init_from`` file too: its checksum goes into ``config.json``); user and data
errors are printed as one message (exit status 2), with the traceback only under ``--debug``.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from oneshot.cli.common import (
    EXIT_USAGE,
    UsageError,
    run_command,
    start_tensorflow,
    use_headless_backend,
)
from oneshot.cli.train_args import parse_args
from oneshot.cli.train_images import build_folder_experiment, check_folder_args, describe_split

if TYPE_CHECKING:
    from oneshot.experiments import Experiment


def build_experiment(args: argparse.Namespace) -> Experiment:
    """The experiment a command line asks for: the named one with the runs, steps, learning rate
    and episodes it overrides (the configs a run folder's ``config.json`` records), each run's
    ``init_from`` file checked and its checksum recorded
    (:func:`oneshot.training.pretrained.pinned`)."""
    from oneshot.experiments import get_experiment, how_to_produce
    from oneshot.training.pretrained import InitFromError, pinned

    experiment = get_experiment(args.experiment, paper=args.paper)
    runs = experiment.runs
    if args.runs:
        wanted = args.runs.split(",")
        known = [r.name for r in runs]
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise ValueError(f"unknown run(s) {unknown}; {args.experiment} has {known}")
        runs = tuple(r for r in runs if r.name in wanted)
    overrides = {}
    if args.steps is not None:
        overrides["steps"] = args.steps
    if args.learning_rate is not None:
        overrides["learning_rate"] = args.learning_rate
    if args.precision is not None:
        overrides["precision"] = args.precision
    try:
        runs = tuple(pinned(dataclasses.replace(r, **overrides)) for r in runs)
    except InitFromError as error:  # a pinned start not trained yet: say which command makes it
        missing = [
            Path(r.init_from) for r in runs if r.init_from and not Path(r.init_from).is_file()
        ]
        advice = how_to_produce(missing[0]) if missing else ""
        raise InitFromError(f"{error} {advice}".strip()) from None
    evaluation = experiment.evaluation
    if args.episodes is not None:
        evaluation = dataclasses.replace(evaluation, episodes=args.episodes)
    return dataclasses.replace(experiment, runs=runs, evaluation=evaluation)


def use_threads(threads: int) -> None:
    """Run TensorFlow ops on ``threads`` CPU threads (a UsageError if TensorFlow has already
    started in this process with other settings: they can only be set before)."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        current = tf.config.threading.get_intra_op_parallelism_threads()
        if current != threads:
            raise UsageError(
                f"--threads {threads}: TensorFlow already started in this process with "
                f"{current or 'all'} threads. Pass --threads to a new python -m oneshot.train."
            ) from None


def start_strategy(strategy: str | None) -> None:
    """Before any other TensorFlow operation, like the threads: the logical CPU devices of
    ``$ONESHOT_CPU_DEVICES`` and a multi-worker strategy (which connects to its cluster)."""
    from oneshot.training.distributed import get_strategy, use_logical_cpus

    try:
        use_logical_cpus()
        if strategy == "multiworker":
            get_strategy(strategy)
    except ValueError as err:
        raise UsageError(str(err)) from None


def output_folder(args: argparse.Namespace) -> Path:
    """``--out``, or its default: ``runs/<experiment>`` or ``runs/<images folder name>``."""
    if args.out is not None:
        return args.out
    return Path("runs") / (args.experiment or args.images.resolve().name)


FOLDER_FLAGS = ("image_size", "channels", "validation_classes", "init_from", "augment", "patience")


def check_args(args: argparse.Namespace) -> Experiment | None:
    """Every argument checked before any work: the experiment the command asks for (None for
    ``--images``, built once its folder is read), or a UsageError naming the argument, what was
    expected and what arrived."""
    check_plain_args(args)
    if args.images is not None:
        return None
    try:
        experiment = build_experiment(args)
    except ValueError as err:
        raise UsageError(str(err)) from None
    check_distributable(experiment, args.strategy)
    return experiment


def check_plain_args(args: argparse.Namespace) -> None:
    """The checks of :func:`check_args` that need no experiment built, nor TensorFlow: run
    before TensorFlow is imported, so that such an error answers at once."""
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be >= 1. Received: {args.threads}")
    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps must be >= 1. Received: {args.steps}")
    if args.learning_rate is not None and not args.learning_rate > 0:  # also refuses NaN
        raise UsageError(f"--learning-rate must be > 0. Received: {args.learning_rate}")
    if args.episodes is not None and args.episodes < 1:
        raise UsageError(f"--episodes must be >= 1. Received: {args.episodes}")
    if args.resume and args.overwrite:
        raise UsageError("--resume and --overwrite exclude each other: pass one of them.")
    check_strategy_args(args)
    if args.data_dir is not None and not args.data_dir.is_dir():
        raise UsageError(
            f"--data-dir {args.data_dir} is not a folder. Pass a folder laid out like "
            "mnist/mnist.npz, omniglot/*.zip (check it with python -m oneshot.data --check)."
        )
    out = output_folder(args)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file. Pass a folder.")
    if args.images is not None:
        check_folder_args(args)
        return
    for name in FOLDER_FLAGS:
        if getattr(args, name) is not None:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} applies to --images only. Received it with --experiment.")


def check_strategy_args(args: argparse.Namespace) -> None:
    """``--no-global-mining`` needs a strategy (``TF_CONFIG`` is checked when the multi-worker
    strategy starts, :func:`start_strategy`)."""
    if args.no_global_mining and args.strategy == "none":
        raise UsageError(
            "--no-global-mining applies to --strategy mirrored or multiworker only (one "
            "process on one device always mines the whole batch)."
        )


def check_distributable(experiment: Experiment, strategy: str) -> None:
    """Refuse, before any work, runs the distributed step cannot train: hard-batch sampling
    mines with the model inside the input pipeline, which is not replicated."""
    if strategy == "none":
        return
    offline = [r.name for r in experiment.runs if getattr(r, "sampler", None) == "hard_batch"]
    if offline:
        raise UsageError(
            f"--strategy {strategy}: runs {offline} sample hard batches with the model in the "
            "input pipeline, which is not supported under a strategy yet. Train them without "
            "--strategy, or choose online-mining runs (e.g. --experiment omniglot-batch-hard)."
        )


def main(argv: list[str] | None = None) -> int:
    use_headless_backend()
    args = parse_args(argv)
    try:
        check_plain_args(args)  # before TensorFlow: an argument error answers at once
        start_tensorflow(args.debug)
        # threads before any op: TensorFlow fixes them at its first op or variable
        if args.threads is not None:
            use_threads(args.threads)
        start_strategy(args.strategy)
    except UsageError as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return run_command(lambda: _train(args, argv), debug=args.debug)
    except KeyboardInterrupt:
        if args.debug:
            raise
        out = output_folder(args)
        print(
            f"\ninterrupted: the last completed chunk is kept; continue with the same command "
            f"and --resume (run folder {out}).",
            file=sys.stderr,
        )
        return 130


def _train(args: argparse.Namespace, argv: list[str] | None) -> int:
    experiment = check_args(args)
    out = output_folder(args)
    data = None
    if experiment is None:
        experiment, data = build_folder_experiment(args)
        print(describe_split(data.train, data.test))

    from oneshot.training.runner import run_experiment  # heavy imports

    command = "python -m oneshot.train " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    summary = run_experiment(
        experiment,
        out,
        data_dir=args.data_dir,
        seed=args.seed,
        resume=args.resume,
        overwrite=args.overwrite,
        strategy=args.strategy,
        evaluate=not args.no_eval,
        command=command,
        data=data,
        global_mining=not args.no_global_mining,
        loop=args.loop,
    )
    if "worker" in summary:  # a non-chief worker: the chief writes and evaluates
        print(f"{summary['worker']}: trained {', '.join(summary['runs']) or 'nothing'}; the "
              f"chief writes {out}")  # fmt: skip
        return 0
    for name, entry in summary["runs"].items():
        if name in {r.name for r in experiment.runs}:
            print(steps_line(name, entry, out))
    if not args.no_eval:
        from oneshot.runs import metrics_table

        print(metrics_table([out / r.name for r in experiment.runs], percent=True))
        print_held_out(summary, experiment)
    print(f"run folder: {out}\nsummary: {out / 'summary.json'}")
    return 0


def steps_line(name: str, entry: dict, out: Path) -> str:
    """What a run trained: the steps it trained (of those asked, after an early stop), the
    time and the folder."""
    steps = f"{entry['steps']} steps"
    if entry["steps"] < entry.get("steps_asked", entry["steps"]):
        steps = (f"{entry['steps']} of {entry['steps_asked']} steps (stopped early: the held-out "
                 "accuracy stopped improving)")  # fmt: skip
    return f"{name}: {steps} in {entry['train_seconds']:.0f} s of training, in {out / name}"


def print_held_out(summary: dict, experiment: Experiment) -> None:
    """The held-out comparison of each run that holds out classes, its warning on stderr, and
    for a folder the reminder that there is no test split."""
    from oneshot.training.baselines import comparison_line

    for config in experiment.runs:
        report = summary["runs"].get(config.name, {}).get("metrics", {}).get("heldout")
        if report is None:
            continue
        print(f"{config.name}: {comparison_line(report)}")
        if report["warning"]:
            print(f"warning: {config.name}: {report['warning']}", file=sys.stderr)
        if config.dataset == "folder":
            print(
                "note: a folder has no separate test split: these numbers are on its "
                f"{report['protocol']['classes']} held-out classes, which also chose the kept "
                "checkpoint, so they are optimistic; test on images of new classes to be sure."
            )


if __name__ == "__main__":
    sys.exit(main())
