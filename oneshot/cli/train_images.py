"""``oneshot train --images DIR``: a folder of your images as an experiment. Its arguments are
checked, the folder read, classes held out for validation (named in the summary), and the
recommended recipe built for it."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from oneshot.checks import MIN_IMAGE_SIZE
from oneshot.cli.common import (
    UsageError,
    as_flags,
)
from oneshot.names import AUTO_START, RANDOM_START, SHIPPED_STARTS

if TYPE_CHECKING:
    from oneshot.data.datasets import LabelledImages
    from oneshot.data.splits import ClassSpec
    from oneshot.experiments import Experiment
    from oneshot.training.setup import RunData

SHOWN_TRAINING = 10  # training class names printed before training


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
    start = args.init_from
    if start is not None and start not in (AUTO_START, RANDOM_START, *SHIPPED_STARTS):
        path = Path(start)
        if not path.is_file():
            what = "does not exist" if not path.exists() else "is a folder"
            raise UsageError(
                f"--init-from {start} {what}. Pass auto, random, a shipped start "
                f"({', '.join(SHIPPED_STARTS)}) or the model.keras of a trained run, e.g. "
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
    the rest, from the start ``--init-from`` names (by default the best of every start scored
    on the held-out classes: :mod:`oneshot.training.starts`): ``(experiment, data)``, the
    held-out classes monitored and evaluated on alike (a folder has no test split), or a
    UsageError/DataError naming what is wrong (nothing is written).

    The held-out classes are recorded by name (``validation_classes`` in ``config.json``),
    whether ``--validation-classes`` gave names, a count or a fraction; the starts' scores go
    into the experiment's summary."""
    from oneshot.data import load_image_folder
    from oneshot.data.fingerprint import fingerprint
    from oneshot.experiments.your_data import folder_experiment, folder_recipe
    from oneshot.training.pretrained import pinned
    from oneshot.training.setup import RunData
    from oneshot.training.starts import describe_scores

    data = read_folder(args)
    native = data.images.shape[1]
    sized = {native: (data, *split_folder_classes(args, data))}

    def split_at(size: int | None) -> tuple[LabelledImages, LabelledImages]:
        size = native if size is None else size
        if size not in sized:  # a start of another size: the folder read again at its size
            again = load_image_folder(args.images, image_size=size, channels=args.channels)
            sized[size] = (again, *split_folder_classes(args, again))
        return sized[size][1:]

    overrides = {
        "steps": args.steps,
        "augment": args.augment,
        "patience": args.patience,
        "precision": args.precision,
    }
    start = args.init_from or AUTO_START
    if start not in (AUTO_START, RANDOM_START, *SHIPPED_STARTS):
        overrides["init_from"] = str(Path(start).resolve())
    try:
        run, train, held, scores = folder_recipe(
            split_at, start, args.seed, args.learning_rate, dataset="folder",
            folder=str(args.images.resolve()),
            **{k: v for k, v in overrides.items() if v is not None},
        )  # fmt: skip
    except ValueError as err:
        raise UsageError(f"--images {args.images}: {err}") from None
    note = f" {describe_scores(scores)}." if scores else ""
    if scores:
        print(note.strip(), flush=True)
    run = dataclasses.replace(run, folder_checksum=fingerprint(sized[run.image_size][0]))
    try:
        run = pinned(run)
    except ValueError as err:
        raise UsageError(f"--init-from {args.init_from}: {err}") from None
    experiment = folder_experiment(run, args.episodes)
    experiment = dataclasses.replace(experiment, summary=experiment.summary + note)
    return experiment, RunData(train, held, held)


def describe_split(train: LabelledImages, held: LabelledImages) -> str:
    """The line that names the held-out classes before training."""
    return (
        f"validation: {len(held.class_names)} held-out classes ({', '.join(held.class_names)}), "
        f"never trained on; training on the other {len(train.class_names)} "
        f"({', '.join(train.class_names[:SHOWN_TRAINING])}"
        f"{' ...' if len(train.class_names) > SHOWN_TRAINING else ''})"
    )
