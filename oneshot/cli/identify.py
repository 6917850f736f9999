"""Command line: which enrolled class is each query? Closed-set rank-1, and open-set DIR at a
false-accept rate when some queries are of classes never enrolled.

    python -m oneshot.identify --model M --gallery GALLERY --queries QUERY_DIR [--far 0.01]
    python -m oneshot.identify --model M --gallery GALLERY --queries IMG [IMG ...] [--threshold T]

``GALLERY`` is a folder of class folders (every image enrolled, e.g. one per class) or an index
file from ``python -m oneshot.index build``. A query folder of class folders is an evaluation:
its classes that the gallery enrolled are *known*, the others *unknown*. It prints the rank-1
rate of the known queries (closed set); with unknown queries of at least two classes, the open
set too: half of the unknown classes and half of the known queries (seeded) calibrate the
reject threshold at ``--far``, the other halves measure the detection-and-identification rate
(DIR: known queries accepted and identified correctly) and the false-accept rate (FPIR: unknown
queries accepted). See ``oneshot.applications.identify``.

Query image files are identified one by one (class, distance, nearest enrolled file); with
``--threshold`` a query farther than it is ``unknown``.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from oneshot.cli.common import (
    CommandParser,
    UsageError,
    add_debug_flag,
    add_gallery_arguments,
    add_quiet_argument,
    run_app,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = CommandParser(
        prog="python -m oneshot.identify",
        description="Identify query images against an enrolled gallery: rank-1 (closed set) "
        "and DIR at a false-accept rate (open set) for a query folder of class folders; the "
        "class of each query image file.",
    )
    add_gallery_arguments(
        parser, "a folder of class folders (evaluation) or image files (identified one by one)"
    )
    parser.add_argument(
        "--far", type=float, default=1e-2,
        help="open set: the false-accept rate of the reject threshold (default 0.01)",
    )  # fmt: skip
    parser.add_argument(
        "--threshold", type=float, default=None,
        help="image files: call a query farther than this from every enrolled image unknown",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the open-set halves")
    add_quiet_argument(parser)
    add_debug_flag(parser)
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    from oneshot.applications import (
        calibrate_reject_threshold,
        class_split,
        identify,
        open_set,
    )
    from oneshot.cli.apps import gallery_and_queries, note, split_known

    if not 0.0 < args.far < 1.0:
        raise UsageError(f"--far must be a rate in (0, 1), e.g. 0.01. Received: {args.far}.")
    gallery, queries, embeddings = gallery_and_queries(args)
    if queries.labels is None:
        found = identify(gallery, embeddings)
        for q, name in enumerate(queries.files):
            distance = found.distances[q]
            unknown = args.threshold is not None and distance > args.threshold
            label = "unknown" if unknown else found.labels[q]
            print(f"{name}  {label}  {distance:.4f}  {found.ids[q]}")
        return 0
    labels, known, unknown = split_known(queries, gallery)
    closed = identify(gallery, embeddings[known], labels[known])
    enrolled = len(np.unique(gallery.labels))
    print(
        f"closed set: rank-1 {closed.rank1:.4f} ({len(known)} queries of known classes, "
        f"gallery of {len(gallery)} images of {enrolled} classes)"
    )
    unknown_classes = np.unique(labels[unknown])
    if len(unknown_classes) < 2:
        note(
            "open set skipped: it needs query folders of at least two classes the gallery did "
            f"not enroll (found {len(unknown_classes)}): half calibrate the reject threshold, "
            "half measure it",
            args.quiet,
        )
        return 0
    rng = np.random.default_rng(args.seed)
    mixed = rng.permutation(known)
    known_cal, known_test = mixed[: len(mixed) // 2], mixed[len(mixed) // 2 :]
    if not len(known_cal):
        raise UsageError("--queries: the open set needs at least two queries of known classes.")
    cal, test = class_split(labels[unknown], 0.5, args.seed)
    calibration = calibrate_reject_threshold(
        gallery, embeddings[known_cal], embeddings[unknown[cal]], args.far
    )
    if not calibration.resolved:
        note(
            f"{calibration.different_pairs} unknown calibration queries cannot measure a FAR of "
            f"{args.far:g} (it needs at least {int(np.ceil(1 / args.far))}): add unknown-class "
            "queries for a trustworthy threshold",
            args.quiet,
        )
    result = open_set(
        gallery, embeddings[known_test], labels[known_test], embeddings[unknown[test]], calibration
    )
    print(
        f"open set: DIR {result.dir:.4f} at FAR {args.far:g} (threshold {result.threshold:.6g}; "
        f"measured FPIR {result.fpir:.4f}; rank-1 of the same queries {result.rank1:.4f})"
    )
    print(
        f"  calibrated on {len(known_cal)} known and {len(cal)} unknown queries "
        f"({len(np.unique(labels[unknown[cal]]))} classes), measured on {len(known_test)} known "
        f"and {len(test)} unknown ({len(np.unique(labels[unknown[test]]))} classes)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_app(lambda: run(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
