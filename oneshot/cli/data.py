"""The data from the command line.

``python -m oneshot.data --check [--data-dir D] [--cold]`` verifies every raw file's checksum,
loads every dataset, and prints counts, shapes and load times (first load, then the cached one).
``--cold`` uses a fresh, temporary decoded cache so the first load includes decoding the PNGs.

``python -m oneshot.data --export DIR --dataset mnist --split test --per-class 30`` writes a
built-in set as a folder of class folders of PNG files, to stand in for your own images.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from oneshot.cli.common import CommandParser
from oneshot.data import sources
from oneshot.data.datasets import (
    DATASETS,
    SPLITS,
    load_dataset,
    load_lake_runs,
    load_mnist,
    load_omniglot,
)
from oneshot.data.export import export_image_folder, first_per_class
from oneshot.data.sources import DataError


def _timed(load):
    start = time.perf_counter()
    result = load()
    return result, time.perf_counter() - start


def check(data_dir: str | None = None) -> None:
    """Verify and load everything, printing a short report to stdout."""
    root, _ = sources.data_root(data_dir)
    print(f"data folder: {root}\ndecoded cache: {sources.decoded_cache_dir()}\n")
    print("checksums")
    for key, spec in sources.FILES.items():
        path = sources.locate(key, data_dir)
        origin = sources.verify(path, key)
        print(f"  ok  {spec.relpath:32s} sha256 {sources.file_digests(path)[0]} ({origin})")

    print("\nmnist")
    for split in ("train", "test"):
        data, seconds = _timed(lambda s=split: load_mnist(s, data_dir))
        print(
            f"  {split:10s} {len(data):6d} images {data.images.shape} {data.images.dtype}, "
            f"{len(set(data.labels.tolist()))} classes, {seconds:.2f}s"
        )

    print("\nomniglot (105x105)")
    totals = [0.0, 0.0]
    for split in ("background", "evaluation"):
        data, first = _timed(lambda s=split: load_omniglot(s, data_dir=data_dir))
        _, second = _timed(lambda s=split: load_omniglot(s, data_dir=data_dir))
        totals[0] += first
        totals[1] += second
        per_class = sorted(set(np.bincount(data.labels).tolist()))
        print(
            f"  {split:10s} {len(data):6d} images {data.images.shape} {data.images.dtype}, "
            f"{len(data.character_names)} characters x {per_class} drawings, "
            f"{len(data.alphabet_names)} alphabets; first {first:.2f}s, second {second:.2f}s"
        )
    print(f"  all omniglot: first load {totals[0]:.2f}s, second (cached) load {totals[1]:.2f}s")

    print("\nlake runs")
    runs, seconds = _timed(lambda: load_lake_runs(data_dir=data_dir))
    print(
        f"  {len(runs)} runs ({runs[0].name}..{runs[-1].name}), training "
        f"{runs[0].training_images.shape}, test {runs[0].test_images.shape}, {seconds:.2f}s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(prog="python -m oneshot.data", description=__doc__)
    parser.add_argument("--check", action="store_true", help="verify and load every dataset")
    parser.add_argument(
        "--data-dir", help=f"folder with mnist/ and omniglot/ (default: ${sources.ENV_DATA_DIR})"
    )
    parser.add_argument(
        "--cold", action="store_true", help="use a fresh temporary decoded cache (time decoding)"
    )
    parser.add_argument(
        "--export", type=Path, metavar="DIR", help="write --dataset/--split as PNG class folders"
    )
    parser.add_argument("--dataset", choices=DATASETS, default="mnist", help="(default mnist)")
    parser.add_argument(
        "--split", help="(default: the test split: mnist test, omniglot evaluation)"
    )
    parser.add_argument(
        "--per-class", type=int, default=None, help="the first N images of each class (default all)"
    )
    parser.add_argument(
        "--image-size", type=int, default=None, help="resize (default: the set's own size)"
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    args = parser.parse_args(argv)
    if args.export is not None:
        return _run(lambda: export(args), args.debug)
    if not args.check:
        parser.print_help()
        return 0
    cold_dir = tempfile.mkdtemp(prefix="oneshot-cache-") if args.cold else None
    if cold_dir:
        os.environ[sources.ENV_CACHE_DIR] = cold_dir
    try:
        return _run(lambda: check(args.data_dir), args.debug)
    finally:
        if cold_dir:
            shutil.rmtree(cold_dir, ignore_errors=True)


def export(args: argparse.Namespace) -> None:
    """``--export``: load the set, keep ``--per-class`` images of each class, write PNGs."""
    split = args.split or SPLITS[args.dataset][1]
    if args.per_class is not None and args.per_class < 1:
        raise ValueError(f"--per-class must be at least 1. Received: --per-class {args.per_class}")
    if args.export.exists():
        raise FileExistsError(f"{args.export} already exists. Choose a new folder or delete it.")
    data = load_dataset(args.dataset, split, image_size=args.image_size, data_dir=args.data_dir)
    if args.per_class is not None:
        data = first_per_class(data, args.per_class)
    export_image_folder(data, args.export)
    classes = len(np.unique(data.labels))
    print(f"{args.export}: {len(data)} images of {classes} classes ({args.dataset} {split})")


def _run(work, debug: bool) -> int:
    """Run ``work``; a bad input is one ``error:`` line and status 2 (``--debug``: traceback)."""
    try:
        work()
    except (DataError, FileExistsError, ValueError) as error:
        if debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
