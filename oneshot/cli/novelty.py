"""Command line: are query images of classes never enrolled? Novelty scores and their AUROC.

    python -m oneshot.novelty --model M --gallery GALLERY --queries QUERY_DIR
    python -m oneshot.novelty --model M --gallery GALLERY --queries IMG [IMG ...]

``GALLERY`` is a folder of class folders (every image enrolled) or an index file from
``python -m oneshot.index build``. A query's novelty score is its distance to the nearest
enrolled image, of any class (``oneshot.applications.novelty``). A query folder of class
folders is an evaluation: its classes the gallery enrolled are *seen*, the others *unseen*; it
prints the AUROC of unseen against seen queries (0.5: chance, 1: every unseen query scores
above every seen one). Query image files get their scores printed (and the nearest file).
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
        prog="python -m oneshot.novelty",
        description="Novelty detection: the distance of each query to the nearest enrolled "
        "image; for a query folder of class folders, the AUROC of unseen-class queries against "
        "seen-class ones.",
    )
    add_gallery_arguments(
        parser, "a folder of class folders (seen and unseen classes: AUROC) or image files (scores)"
    )
    add_quiet_argument(parser)
    add_debug_flag(parser)
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    from oneshot.applications import identify, novelty
    from oneshot.cli.apps import gallery_and_queries, split_known

    gallery, queries, embeddings = gallery_and_queries(args)
    if queries.labels is None:
        nearest = identify(gallery, embeddings)
        for q, name in enumerate(queries.files):
            print(f"{name}  {nearest.distances[q]:.4f}  {nearest.ids[q]}")
        return 0
    labels, seen, unseen = split_known(queries, gallery)
    if not len(unseen):
        raise UsageError(
            f"--queries: every query class is enrolled in the gallery ({len(np.unique(labels))} "
            "classes). Add query class folders the gallery does not have (unseen classes)."
        )
    result = novelty(gallery, embeddings[seen], embeddings[unseen])
    print(
        f"novelty AUROC {result.auroc:.4f} ({len(unseen)} queries of "
        f"{len(np.unique(labels[unseen]))} unseen classes against {len(seen)} of "
        f"{len(np.unique(labels[seen]))} seen classes; score: distance to the nearest of "
        f"{len(gallery)} enrolled images)"
    )
    print(
        f"median score: seen {np.median(result.seen_scores):.4f}, unseen "
        f"{np.median(result.unseen_scores):.4f}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_app(lambda: run(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
