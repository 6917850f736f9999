"""The arguments of ``oneshot train`` (``python -m oneshot.train``): the parser, and the
catalogue of named experiments its ``--help`` lists without importing TensorFlow."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from oneshot.cli.common import (
    CommandParser,
    add_debug_flag,
)

if TYPE_CHECKING:
    pass


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
        default=None,
        metavar="START",
        help="--images: where training starts. auto (default): score every start on the "
        "held-out classes before training and take the best; random: the network's random "
        "weights; omniglot or mnist: a network that ships with oneshot (trained on Omniglot's "
        "background characters, or on MNIST's ten digits; images are resized to its size); "
        "or the model.keras of a run (same architecture and --image-size). A pretrained start "
        "trains at --learning-rate 1e-4 unless given, and the run keeps it unless training "
        "beats it on the held-out classes",
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
