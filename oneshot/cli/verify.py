"""Command line: are two images of the same class? Calibrate a model's threshold once, then
verify pairs.

    python -m oneshot.verify calibrate --model M --images HELD_OUT_DIR [--far 1e-3] [--out V]
    python -m oneshot.verify --model M IMG1 IMG2 [--verifier V]     (or: verify check ...)

``calibrate`` embeds a held-out folder of class folders (classes the model did not train on,
like the ones it will verify), forms its same-class and different-class pairs (all of them up
to 3,000 images, else 100,000 balanced pairs of each kind), sets the largest distance threshold
whose false-accept rate on them is <= ``--far`` and saves it with the distance and the model's
identity beside the model (``model.keras`` -> ``model.verify.json``; ``--out`` elsewhere;
an existing file needs ``--overwrite``). It prints the FAR and the true-accept rate (TAR) on
those pairs. The check prints ``same`` or ``different`` with the distance and the threshold;
a verifier calibrated for another model is refused.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from oneshot.cli.common import (
    CommandParser,
    UsageError,
    add_convert_argument,
    add_debug_flag,
    add_model_arguments,
    add_quiet_argument,
    run_app,
)

PROG = "python -m oneshot.verify"
USAGE = f"""
  {PROG} calibrate --model M --images HELD_OUT_DIR [--far 1e-3] [--out V]
  {PROG} [check] --model M IMG1 IMG2 [--verifier V]"""


def calibrate_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog=f"{PROG} calibrate",
        description="Calibrate the same/different threshold of a model at a false-accept rate, "
        "on the pairs of a held-out folder of class folders, and save it beside the model.",
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--images", type=Path, required=True, help="held-out folder of class folders"
    )
    parser.add_argument(
        "--far", type=float, default=1e-3, help="target false-accept rate (default 1e-3)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="the verifier file (default: beside the model, "
        "model.keras -> model.verify.json)",
    )  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace an existing verifier")
    parser.add_argument("--seed", type=int, default=0, help="seed of sampled pairs (default 0)")
    add_quiet_argument(parser)
    add_debug_flag(parser)
    return parser


def check_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog=PROG,
        usage=USAGE,
        description="Same or different? Compare the distance between two images with the "
        "model's calibrated threshold (calibrate it first: verify calibrate --help).",
    )
    parser.add_argument("images", type=Path, nargs=2, metavar="IMG", help="two image files")
    parser.add_argument("--model", type=Path, required=True, help="a trained .keras model")
    parser.add_argument(
        "--verifier", type=Path, default=None, help="the verifier file (default: beside the "
        "model, model.verify.json)",
    )  # fmt: skip
    add_convert_argument(parser)
    add_quiet_argument(parser)
    add_debug_flag(parser)
    return parser


def calibrate(args: argparse.Namespace) -> int:
    from oneshot.applications import Verifier, verifier_path
    from oneshot.applications.files import check_output
    from oneshot.cli.apps import model_and_images, warn

    out = args.out or verifier_path(args.model)
    check_output(out, args.overwrite, "--overwrite")  # before any work
    if not 0.0 < args.far < 1.0:
        raise UsageError(f"--far must be a rate in (0, 1), e.g. 1e-3. Received: {args.far}.")
    model, scorer, images, embeddings = model_and_images(args, [args.images], "--images")
    verifier = Verifier.calibrate(
        model, images.images, images.labels, far=args.far, distance=scorer.distance,
        shifts=args.shifts, seed=args.seed, embeddings=embeddings,
    )  # fmt: skip
    verifier.save(out, overwrite=args.overwrite)
    c = verifier.calibration
    print(f"threshold {c.threshold:.6g}: distance <= threshold means same, at FAR <= {args.far:g}")
    print(
        f"on the calibration pairs: FAR {c.far:.4g}, TAR {c.tar:.4f}, AUC {c.auc:.4f} "
        f"({c.same_pairs} same-class, {c.different_pairs} different-class pairs)"
    )
    for problem in c.problems():
        warn(problem)
    print(f"verifier -> {out}")
    return 0


def check(args: argparse.Namespace) -> int:
    from oneshot.applications import Verifier, verifier_path
    from oneshot.cli.apps import load_model, read_images
    from oneshot.models.saving import check_model_file

    check_model_file(args.model)  # a wrong --model is named first, not as a missing verifier
    path = args.verifier or verifier_path(args.model)
    if not path.is_file():
        raise UsageError(
            f"No verifier at {path}. Calibrate one first: {PROG} calibrate --model "
            f"{args.model} --images HELD_OUT_DIR (or pass --verifier)."
        )
    model = load_model(args.model, needs_distance=False)  # the verifier holds it
    verifier = Verifier.load(path, model)  # another model's verifier is refused
    pair = read_images(list(args.images), verifier.model, args.convert, args.quiet, "IMG")
    answer = verifier.verify(model, pair.images[0], pair.images[1])
    word, sign = ("same", "<=") if answer.same else ("different", ">")
    print(f"{word} (distance {answer.distance:.6g} {sign} threshold {answer.threshold:.6g})")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["calibrate"]:
        args = calibrate_parser().parse_args(argv[1:])
        return run_app(lambda: calibrate(args), debug=args.debug)
    args = check_parser().parse_args(argv[1:] if argv[:1] == ["check"] else argv)
    return run_app(lambda: check(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
