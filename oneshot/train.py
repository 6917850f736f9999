"""Command line: train a named experiment and write its run folder.

    python -m oneshot.train --experiment mnist-triplet [--out DIR] [--data-dir D] [--steps N]
        [--seed S] [--paper] [--resume] [--strategy none|mirrored|multiworker] [--debug]

Each run of the experiment gets ``OUT/<run>/`` with ``config.json``, ``history.csv``,
``model.keras``, ``metrics.json`` and PNG plots; ``OUT/experiment.json`` records the command.
Every argument is checked before any work; user and data errors are printed as one message
(exit status 2), with the traceback only under ``--debug``.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

from oneshot.cli import UsageError, add_debug_flag, run_command, use_headless_backend
from oneshot.experiments import EXPERIMENTS, Experiment, describe_experiments, get_experiment


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m oneshot.train",
        description="Train a named one-shot experiment and write its results.",
        epilog="Experiments:\n" + describe_experiments(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--experiment",
        required=True,
        choices=tuple(EXPERIMENTS),
        metavar="NAME",
        help="which experiment to run (listed below)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default: runs/<experiment>)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="offline data folder (default: $ONESHOT_DATA_DIR, then the Keras cache)",
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="override the number of training steps"
    )
    parser.add_argument(
        "--learning-rate", type=float, default=None, help="override the learning rate"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--paper",
        action="store_true",
        help="published networks, input sizes and iteration counts (hours on CPU)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run in --out where it stopped",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start again even if --out already holds a finished run",
    )
    parser.add_argument(
        "--runs",
        default=None,
        help="comma-separated subset of the experiment's runs (e.g. triplet)",
    )
    parser.add_argument(
        "--strategy",
        choices=("none", "mirrored", "multiworker"),
        default="none",
        help="tf.distribute strategy (default none)",
    )
    parser.add_argument(
        "--episodes", type=int, default=None, help="override the number of evaluation episodes"
    )
    parser.add_argument("--no-eval", action="store_true", help="train only; skip the evaluation")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for TensorFlow ops (default: all cores); e.g. 1 to train two runs "
        "side by side on a 2-core machine",
    )
    add_debug_flag(parser)
    return parser.parse_args(argv)


def build_experiment(args: argparse.Namespace) -> Experiment:
    """The experiment a command line asks for: the named one with the runs, steps, learning rate
    and episodes it overrides (the configs a run folder's ``config.json`` records)."""
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
    runs = tuple(dataclasses.replace(r, **overrides) for r in runs)
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


def check_args(args: argparse.Namespace) -> Experiment:
    """Every argument checked before any work: the experiment the command asks for, or a
    UsageError naming the argument, what was expected and what arrived."""
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
    if args.data_dir is not None and not args.data_dir.is_dir():
        raise UsageError(
            f"--data-dir {args.data_dir} is not a folder. Pass a folder laid out like "
            "mnist/mnist.npz, omniglot/*.zip (check it with python -m oneshot.data --check)."
        )
    out = args.out or Path("runs") / args.experiment
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file. Pass a folder.")
    try:
        return build_experiment(args)
    except ValueError as err:
        raise UsageError(str(err)) from None


def main(argv: list[str] | None = None) -> int:
    use_headless_backend()
    # threads first: TensorFlow fixes them at its first op or variable, and building the
    # experiments (parse_args lists them all in --help) may create one (a seeded miner)
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--threads", type=int)
    threads = early.parse_known_args(argv)[0].threads
    if threads is not None and threads >= 1:
        try:
            use_threads(threads)
        except UsageError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    args = parse_args(argv)
    try:
        return run_command(lambda: _train(args, argv), debug=args.debug)
    except KeyboardInterrupt:
        if args.debug:
            raise
        out = args.out or Path("runs") / args.experiment
        print(
            f"\ninterrupted: the last completed chunk is kept; continue with the same command "
            f"and --resume (run folder {out}).",
            file=sys.stderr,
        )
        return 130


def _train(args: argparse.Namespace, argv: list[str] | None) -> int:
    experiment = check_args(args)
    out = args.out or Path("runs") / args.experiment

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
    )
    for name, entry in summary["runs"].items():
        if name in {r.name for r in experiment.runs}:
            print(
                f"{name}: {entry['steps']} steps in {entry['train_seconds']:.0f} s of training, "
                f"in {out / name}"
            )
    if not args.no_eval:
        from oneshot.runs import metrics_table

        print(metrics_table([out / r.name for r in experiment.runs], percent=True))
    print(f"run folder: {out}\nsummary: {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
