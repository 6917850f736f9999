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
import json
import shlex
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from oneshot.checks import MIN_IMAGE_SIZE
from oneshot.cli.common import (
    EXIT_USAGE,
    CommandParser,
    UsageError,
    add_debug_flag,
    as_flags,
    run_command,
    start_tensorflow,
    use_headless_backend,
)

if TYPE_CHECKING:
    from oneshot.data.datasets import LabelledImages
    from oneshot.data.splits import ClassSpec
    from oneshot.experiments import Experiment
    from oneshot.training.setup import RunData


CATALOGUE = Path(__file__).parents[1] / "experiments" / "catalogue.json"


def experiment_catalogue() -> dict[str, str]:
    """Every named experiment's one-line summary, read from ``oneshot/experiments/
    catalogue.json`` (``oneshot.experiments.write_catalogue`` writes it from the experiments
    themselves), so that ``--help`` lists them without building them: building imports
    TensorFlow."""
    return json.loads(CATALOGUE.read_text())


def describe_catalogue() -> str:
    """One line per named experiment, for ``--help``."""
    catalogue = experiment_catalogue()
    width = max(len(n) for n in catalogue)
    return "\n".join(f"  {n:<{width}}  {summary}" for n, summary in catalogue.items())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = CommandParser(
        prog="python -m oneshot.train",
        description="Train a named one-shot experiment and write its results.",
        epilog="Experiments:\n" + describe_catalogue(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--experiment",
        choices=tuple(experiment_catalogue()),
        metavar="NAME",
        help="which experiment to run (listed below)",
    )
    source.add_argument(
        "--images",
        type=Path,
        metavar="DIR",
        help="train the recommended recipe on your images: a folder with one sub-folder of "
        "images per class (or <group>/<class>/<image>); some classes are held out to validate",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: runs/<experiment>, or runs/<folder name> with --images)",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        metavar="S",
        help="--images: resize every image to SxS (default: their own size, square and equal)",
    )
    parser.add_argument(
        "--channels",
        type=int,
        choices=(1, 3),
        default=None,
        help="--images: 1 grey, 3 colour (default: as the files are)",
    )
    parser.add_argument(
        "--validation-classes",
        default=None,
        metavar="SPEC",
        help="--images: classes held out to validate: a count (5), a fraction (0.2) or "
        "comma-separated class names (cat,dog) (default: a fifth, at least 5 up to half)",
    )
    parser.add_argument(
        "--init-from",
        type=Path,
        default=None,
        metavar="MODEL",
        help="--images: start from the network of this model.keras (a run's model, same "
        "architecture; e.g. --image-size 35 for an omniglot-best model) instead of random "
        "weights; its 'untrained' baseline is then that network. A lower --learning-rate "
        "(e.g. 1e-4) keeps more of what it learned",
    )
    parser.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="--images: small random rotations, shears, scalings and shifts of the training "
        "images, borders filled black (default on; --no-augment for photos whose borders are "
        "not dark)",
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=None,
        metavar="N",
        help="--images: stop after N chunks of 100 steps without a better held-out accuracy "
        "(default 3; 0 trains every step, still keeping the best chunk)",
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
    parser.add_argument(
        "--precision",
        choices=("float32", "mixed_bfloat16"),
        default=None,
        help="train the embedding network in this Keras dtype policy (default: the run's, "
        "float32); mixed_bfloat16 computes in bfloat16 (faster on CPUs with AVX-512 BF16), the "
        "saved model and the evaluation stay float32",
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
        help="tf.distribute strategy (default none): mirrored (the devices of this machine; "
        "$ONESHOT_CPU_DEVICES=N splits the CPU into N) or multiworker (one process per worker, "
        "each with its TF_CONFIG; see the README's 'More than one machine')",
    )
    parser.add_argument(
        "--loop",
        choices=("graph", "fit"),
        default="graph",
        help="how a run without --strategy trains (default graph): a chunk of steps per graph "
        "call, or Keras's model.fit; both give the same loss curve and weights bit for bit",
    )
    parser.add_argument(
        "--no-global-mining",
        action="store_true",
        help="under a strategy, mine each replica's slice of the batch instead of the whole "
        "global batch (default: gather the embeddings of all replicas before mining)",
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


SHOWN_TRAINING = 10  # training class names printed before training
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


def check_folder_args(args: argparse.Namespace) -> None:
    """The arguments of ``--images``, checked before its folder is read."""
    if not args.images.is_dir():
        what = "does not exist" if not args.images.exists() else "is a file"
        raise UsageError(
            f"--images {args.images} {what}. Pass a folder with one sub-folder of images per class."
        )
    for flag, value in (("--paper", args.paper), ("--runs", args.runs)):
        if value:
            raise UsageError(f"{flag} applies to --experiment only. Received it with --images.")
    if args.image_size is not None and args.image_size < MIN_IMAGE_SIZE:
        raise UsageError(
            f"--image-size must be >= {MIN_IMAGE_SIZE} (the network halves the image four "
            f"times). Received: {args.image_size}"
        )
    if args.validation_classes is not None:
        class_spec(args.validation_classes)
    if args.patience is not None and args.patience < 0:
        raise UsageError(
            f"--patience must be >= 0 (0 trains every step). Received: {args.patience}"
        )
    if args.init_from is not None and not args.init_from.is_file():
        what = "does not exist" if not args.init_from.exists() else "is a folder"
        raise UsageError(
            f"--init-from {args.init_from} {what}. Pass the model.keras of a trained run, e.g. "
            "results/mnist-best/batch-hard/model.keras."
        )


def class_spec(text: str) -> ClassSpec:
    """``--validation-classes``: a count (``5``), a fraction (``0.2``) or class names
    (``cat,dog``); a UsageError for a number that is neither."""
    from oneshot.data.splits import check_class_spec

    if "," in text:
        return tuple(name.strip() for name in text.split(",") if name.strip())
    try:
        number = float(text)
    except ValueError:
        return (text,)
    value = int(number) if number.is_integer() and number >= 1 else number
    try:
        return check_class_spec(value)
    except ValueError:
        raise UsageError(
            "--validation-classes must be a count of classes (>= 1), a fraction (0 < f < 1) or "
            f"comma-separated class names. Received: {text}"
        ) from None


FOLDER_ARGUMENTS = {"image_size": "--image-size", "channels": "--channels"}  # as flags


def read_folder(args: argparse.Namespace) -> LabelledImages:
    """``--images`` at ``--image-size`` and ``--channels``. Without ``--image-size``, images
    that are not square, or smaller than the network takes, are resized to squares of their
    longer side (at least ``MIN_IMAGE_SIZE``); a note on stderr names the size chosen and, for
    images stretched to another aspect ratio, says that it changed. The library's advice
    (``channels=1``) is given as flags (``--channels 1``)."""
    from oneshot.data import DataError, load_image_folder
    from oneshot.data.folders import AspectRatioWarning

    size = args.image_size
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AspectRatioWarning)
        try:
            data = load_image_folder(args.images, image_size=size, channels=args.channels)
            height, width = data.images.shape[1:3]
            if size is None and (height != width or height < MIN_IMAGE_SIZE):
                size = max(height, width, MIN_IMAGE_SIZE)
                data = load_image_folder(args.images, image_size=size, channels=args.channels)
        except DataError as err:
            message = as_flags(str(err), FOLDER_ARGUMENTS)
            raise UsageError(f"--images {args.images}: {message}") from None
    stretched = [w for w in caught if issubclass(w.category, AspectRatioWarning)]
    for warning in caught:
        if warning not in stretched:
            warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                   warning.lineno)  # fmt: skip
    chosen = f" (--image-size {size})" if size != args.image_size else ""
    for warning in stretched:
        print(f"note: {warning.message}{chosen}", file=sys.stderr)
    if chosen and not stretched:
        print(f"note: --images {args.images}: the {width}x{height} images are resized to "
              f"{size}x{size}{chosen}", file=sys.stderr)  # fmt: skip
    return data


def split_folder_classes(
    args: argparse.Namespace, data: LabelledImages
) -> tuple[LabelledImages, LabelledImages]:
    """``(train, held_out)`` classes of the folder, or a UsageError that says what to pass or
    exactly how many class folders to add. Validation needs 2 held-out classes with 2 images
    (a 2-way one-shot episode) and training 2 other classes."""
    from oneshot.data.splits import class_names, hold_out_classes
    from oneshot.experiments.your_data import default_validation_classes

    names = class_names(data)
    total = len(names)
    counts = np.bincount(data.labels, minlength=total)
    usable = int(np.sum(counts >= 2))
    needed = 4  # 2 to train on, 2 held out
    if usable < needed:
        missing = needed - usable
        raise UsageError(
            f"--images {args.images} has {total} classes ({usable} with 2 or more images): "
            f"training needs 2 classes and validation 2 others it never trains on (2-way "
            f"one-shot episodes). Add {missing} more class folder{'s' * (missing > 1)} with at "
            "least 2 images each (6 or more classes give episodes wider than 2-way)."
        )
    given = args.validation_classes
    spec = default_validation_classes(total) if given is None else class_spec(given)
    shown = given if given is not None else f"{spec} (the default)"
    try:
        return hold_out_classes(data, spec)
    except ValueError as err:
        reason = str(err)
        if "unknown class" in reason:
            reason = reason[reason.index("Received unknown") :].replace("Received u", "u")
        elif "for training" in reason:
            reason = f"it leaves fewer than 2 of the {total} classes to train on"
        elif "held-out classes with 2 or more" in reason:
            reason = "validation needs at least 2 held-out classes with 2 or more images"
        raise UsageError(
            f"--images {args.images} has {total} classes: --validation-classes {shown} cannot "
            f"be held out: {reason}"
        ) from None


def build_folder_experiment(args: argparse.Namespace) -> tuple[Experiment, RunData]:
    """Read ``--images``, hold out its validation classes and fit the recommended recipe to
    the rest (from ``--init-from``'s network if given): ``(experiment, data)``, the held-out
    classes monitored and evaluated on alike (a folder has no test split), or a
    UsageError/DataError naming what is wrong (nothing is written).

    The held-out classes are recorded by name (``validation_classes`` in ``config.json``),
    whether ``--validation-classes`` gave names, a count or a fraction."""
    from oneshot.data.fingerprint import fingerprint
    from oneshot.experiments.your_data import folder_experiment, recommended_run
    from oneshot.training.pretrained import pinned
    from oneshot.training.setup import RunData

    data = read_folder(args)
    train, held = split_folder_classes(args, data)
    overrides = {
        "steps": args.steps,
        "learning_rate": args.learning_rate,
        "augment": args.augment,
        "patience": args.patience,
        "precision": args.precision,
    }
    if args.init_from is not None:
        overrides["init_from"] = str(args.init_from.resolve())
    try:
        run = recommended_run(
            np.bincount(train.labels), image_size=data.images.shape[1],
            validation_classes=tuple(held.class_names),
            channels=3 if data.images.ndim == 4 else 1, dataset="folder",
            folder=str(args.images.resolve()), folder_checksum=fingerprint(data),
            **{k: v for k, v in overrides.items() if v is not None},
        )  # fmt: skip
    except ValueError as err:
        raise UsageError(f"--images {args.images}: {err}") from None
    try:
        run = pinned(run)
    except ValueError as err:
        raise UsageError(f"--init-from {args.init_from}: {err}") from None
    return folder_experiment(run, args.episodes), RunData(train, held, held)


def describe_split(train: LabelledImages, held: LabelledImages) -> str:
    """The line that names the held-out classes before training."""
    return (
        f"validation: {len(held.class_names)} held-out classes ({', '.join(held.class_names)}), "
        f"never trained on; training on the other {len(train.class_names)} "
        f"({', '.join(train.class_names[:SHOWN_TRAINING])}"
        f"{' ...' if len(train.class_names) > SHOWN_TRAINING else ''})"
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
