"""Command line: evaluate a saved model on MNIST or Omniglot.

    python -m oneshot.evaluate --model run/model.keras --dataset omniglot --protocol all \\
        [--split evaluation] [--data-dir D] [--image-size S] [--episodes 1000] [--out r.json]

Loads the ``.keras`` model, builds a :class:`oneshot.evaluation.scoring.Scorer` from it (its
"embedding" network and its learned metric or pair head, if any, else the distance the model
was trained with, recorded in the summary as ``"distance"``; a colour network gets the grey
images with their channel repeated into RGB, recorded as ``"input"``), runs the chosen protocols
(``nway``, ``lake``, ``verification``, ``cmc``, ``retrieval`` or ``all``; see
``oneshot.evaluation.report``) and prints a JSON summary, also written to ``--out``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from oneshot.cli.common import (
    CommandParser,
    UsageError,
    add_debug_flag,
    run_command,
    use_headless_backend,
)
from oneshot.names import PROTOCOLS, check_protocols

DATASETS = ("mnist", "omniglot")
TEST_SPLITS = {"mnist": "test", "omniglot": "evaluation"}
SPLITS = {"mnist": ("train", "test"), "omniglot": ("background", "evaluation")}
NATIVE_SIZE = {"mnist": 28, "omniglot": 105}
# modules whose import registers the project's custom layers, losses and models
_CUSTOM_OBJECT_MODULES = (
    "oneshot.models.networks",
    "oneshot.losses",
    "oneshot.models",
    "oneshot.miners",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = CommandParser(
        prog="python -m oneshot.evaluate",
        description="Evaluate a saved oneshot model: one-shot accuracy, Lake's runs, ROC, CMC, MAP@R.",
    )
    parser.add_argument("--model", type=Path, required=True, help="a saved .keras model")
    parser.add_argument("--dataset", choices=DATASETS, required=True, help="mnist or omniglot")
    parser.add_argument(
        "--split",
        default=None,
        help="split to evaluate on (default: the test split: mnist test, omniglot evaluation)",
    )
    parser.add_argument(
        "--protocol",
        nargs="+",
        default=["all"],
        help=f"one or more of {', '.join(PROTOCOLS)}, or all (default)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="data folder (default: $ONESHOT_DATA_DIR / the download cache)",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="resize the images to S x S (must match the model input; e.g. MNIST at 35 for a "
        "network trained on 35x35 Omniglot)",
    )
    parser.add_argument(
        "--episodes", type=int, default=1000, help="episodes per N-way task (default 1000)"
    )
    parser.add_argument(
        "--cmc-trials", type=int, default=10, help="CMC draws averaged (default 10)"
    )
    parser.add_argument(
        "--distance",
        default=None,
        help="distance for embedding models, one of euclidean, squared_euclidean, l1, cosine "
        "(default: the one the model was trained with; needed for a bare embedding network)",
    )
    parser.add_argument(
        "--shifts",
        type=int,
        default=0,
        help="test-time averaging of each embedding over shifts of this many pixels (default 0: off)",
    )
    parser.add_argument(
        "--rotations",
        type=float,
        default=0.0,
        help="test-time averaging of each embedding with copies rotated by +/- this many "
        "degrees (default 0: off)",
    )
    parser.add_argument(
        "--validation-alphabets",
        type=int,
        default=0,
        help="Omniglot background split only: evaluate on the N alphabets a tuning run "
        "(validation_alphabets=N) held out, for choices made without the evaluation set",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of every sampled protocol (default 0)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="also write the JSON summary to this file"
    )
    add_debug_flag(parser)
    return parser.parse_args(argv)


def load_model(path: Path) -> Any:
    """Load a ``.keras`` model, with the project's custom objects registered; a file that is
    not a loadable model is a UsageError saying what the file is."""
    if not path.is_file():
        raise UsageError(
            f"Model file not found: {path}. Pass the model.keras written by python -m oneshot.train."
        )
    for module in _CUSTOM_OBJECT_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:  # a module not written yet: plain Keras models still load
            pass
    from oneshot.models.saving import load_model as load

    return load(path, compile=False)


def model_image_size(scorer: Any) -> int | None:
    """Side of the square images the embedding network expects (None if not fixed)."""
    shape = scorer.embedding_model.input_shape
    shape = shape[0] if isinstance(shape, list) else shape
    return shape[1] if len(shape) >= 3 and shape[1] == shape[2] else None


def _channels(model: Any) -> int | None:
    """Channels of the images ``model`` takes (None if it is not an image network)."""
    shape = getattr(model, "input_shape", None)
    return shape[-1] if isinstance(shape, tuple) and len(shape) == 4 else None


def check_image_size(dataset: str, image_size: int | None, expected: int | None) -> None:
    """Raise a UsageError when the images would not fit the model's input."""
    size = image_size or NATIVE_SIZE[dataset]
    if image_size is not None and image_size < 1:
        raise UsageError(f"--image-size must be >= 1. Received: {image_size}.")
    if expected is not None and size != expected:
        raise UsageError(
            f"The model expects {expected}x{expected} images but the {dataset} images are "
            f"{size}x{size}: pass --image-size {expected}."
        )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Load the model and data, evaluate, return the summary."""
    try:
        protocols = check_protocols(args.protocol)
    except ValueError as error:
        raise UsageError(str(error)) from None
    split = args.split or TEST_SPLITS[args.dataset]
    if split not in SPLITS[args.dataset]:
        raise UsageError(
            f"Unknown split {split!r} for {args.dataset}: expected one of {SPLITS[args.dataset]}."
        )
    if args.episodes < 1:
        raise UsageError(f"--episodes must be >= 1. Received: {args.episodes}.")
    if args.cmc_trials < 1:
        raise UsageError(f"--cmc-trials must be >= 1. Received: {args.cmc_trials}.")
    if args.shifts < 0:
        raise UsageError(f"--shifts must be >= 0. Received: {args.shifts}.")
    if not 0 <= args.rotations < 90:
        raise UsageError(f"--rotations must be degrees in [0, 90). Received: {args.rotations}.")
    if args.validation_alphabets and (args.dataset, split) != ("omniglot", "background"):
        raise UsageError(
            "--validation-alphabets holds out alphabets of the Omniglot background split: pass "
            "--dataset omniglot --split background."
        )
    from oneshot import data
    from oneshot.distances import distance_name
    from oneshot.evaluation.report import evaluate_scorer
    from oneshot.evaluation.scoring import Scorer
    from oneshot.models.networks import grey_to_rgb

    model = load_model(args.model)
    try:
        scorer = Scorer.from_model(
            model, distance=args.distance, shifts=args.shifts, rotations=args.rotations
        )
    except ValueError as error:
        hint = " On the command line: pass --distance NAME." if args.distance is None else ""
        raise UsageError(f"{error}{hint}") from None
    check_image_size(args.dataset, args.image_size, model_image_size(scorer))
    colour = _channels(scorer.embedding_model) == 3
    if colour:  # the datasets are grey: the same pictures with the channel repeated
        scorer.embedding_model = grey_to_rgb(scorer.embedding_model)
    try:
        if args.dataset == "mnist":
            loaded = data.load_mnist(split, data_dir=args.data_dir, image_size=args.image_size)
            alphabets, runs = None, None
        else:
            loaded = data.load_omniglot(split, image_size=args.image_size, data_dir=args.data_dir)
            if args.validation_alphabets:
                from oneshot.data.variants import hold_out_alphabets

                loaded = hold_out_alphabets(loaded, args.validation_alphabets)[1]
                split = f"{split} (validation alphabets)"
            alphabets = loaded.alphabets
            want_runs = "lake" in protocols and not args.validation_alphabets
            runs = (
                data.load_lake_runs(args.image_size, data_dir=args.data_dir) if want_runs else None
            )
    except (data.DataError, ValueError) as error:
        raise UsageError(f"Could not load {args.dataset} {split}: {error}") from None
    report = evaluate_scorer(
        scorer, loaded.images, loaded.labels, args.dataset, split, protocols,
        alphabets=alphabets, lake_runs=runs, episodes=args.episodes,
        cmc_trials=args.cmc_trials, seed=args.seed,
    )  # fmt: skip
    if colour:
        report["input"] = (
            f"grey {args.dataset} images repeated into the 3 channels of a colour network"
        )
    if report.get("distance") is not None:  # the Distance object, as a JSON-ready name
        report["distance"] = distance_name(report["distance"])
    report["test_shifts"], report["test_rotations"] = args.shifts, args.rotations
    return {"model": str(args.model), **report}


def main(argv: list[str] | None = None) -> int:
    use_headless_backend()
    args = parse_args(argv)

    def body() -> int:
        summary = run(args)
        text = json.dumps(summary, indent=2)
        print(text)
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text + "\n")
        return 0

    return run_command(body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
