"""Command line: group images by their embeddings (k-means, agglomerative) and score the
groups against the class folders with NMI and AMI.

    python -m oneshot.cluster --model M --images DIR [--method kmeans agglomerative] \\
        [--clusters N] [--linkage ward] [--out clusters.csv]
    python -m oneshot.cluster --model M --images IMG [IMG ...] --clusters N --out clusters.csv

A folder of class folders is an evaluation: the number of clusters defaults to the number of
classes, and NMI and AMI compare the clusters with the classes
(``oneshot.applications.cluster``). Image files (e.g. ``photos/*.png``) are unlabelled: pass
``--clusters``. ``--out`` writes a CSV (file, class, one column of clusters per method),
atomically.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from oneshot.cli.common import (
    CommandParser,
    UsageError,
    add_debug_flag,
    add_model_arguments,
    add_quiet_argument,
    run_app,
)
from oneshot.names import CLUSTER_METHODS, LINKAGES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = CommandParser(
        prog="python -m oneshot.cluster",
        description="Cluster images by their embeddings (scikit-learn k-means or agglomerative) "
        "and, for a folder of class folders, print NMI and AMI against the classes.",
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--images", type=Path, nargs="+", required=True,
        help="a folder of class folders (scored) or image files (unlabelled: pass --clusters)",
    )  # fmt: skip
    parser.add_argument(
        "--method", nargs="+", choices=CLUSTER_METHODS, default=list(CLUSTER_METHODS),
        help="one or both of kmeans, agglomerative (default both)",
    )  # fmt: skip
    parser.add_argument(
        "--clusters", type=int, default=None,
        help="number of clusters (default: the number of class folders)",
    )  # fmt: skip
    parser.add_argument(
        "--linkage", choices=LINKAGES, default="ward",
        help="agglomerative linkage (default ward; the others use the model's distance)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="write the clusters as CSV")
    parser.add_argument("--seed", type=int, default=0, help="k-means initialisation (default 0)")
    add_quiet_argument(parser)
    add_debug_flag(parser)
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    from oneshot.applications import atomic_write, cluster
    from oneshot.applications.files import check_output
    from oneshot.cli.apps import model_and_images, note

    if args.out is not None:
        check_output(args.out, overwrite=True)  # a folder is refused before any work
    labelled = len(args.images) == 1 and args.images[0].is_dir()
    if not labelled and args.clusters is None:
        raise UsageError(
            "--clusters is needed for image files (no class folders to count). Pass e.g. "
            "--clusters 10, or a folder of class folders."
        )
    if args.clusters is not None and args.clusters < 2:
        raise UsageError(f"--clusters must be at least 2. Received: --clusters {args.clusters}")
    _, scorer, images, embeddings = model_and_images(args, args.images, "--images")
    methods = list(dict.fromkeys(args.method))
    results = [
        cluster(
            embeddings, images.labels, args.clusters, method, scorer.distance, args.linkage,
            args.seed,
        )
        for method in methods
    ]  # fmt: skip
    for result in results:
        scores = "" if result.nmi is None else f": NMI {result.nmi:.4f}, AMI {result.ami:.4f}"
        print(f"{result.method}, {result.n_clusters} clusters of {len(images)} images{scores}")
    if args.out is not None:

        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="") as handle:
                table = csv.writer(handle)
                table.writerow(["file", "class", *methods])
                for i, name in enumerate(images.files):
                    label = "" if images.labels is None else images.labels[i]
                    table.writerow([name, label, *(r.assignments[i] for r in results)])

        atomic_write(args.out, write)
        note(f"wrote {args.out}", args.quiet)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_app(lambda: run(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
