"""Smoke check of the data: ``python -m oneshot.data --check [--data-dir D] [--cold]``.

Verifies every raw file's checksum, loads every dataset, and prints counts, shapes and load times
(first load, then the cached one). ``--cold`` uses a fresh, temporary decoded cache so the first
load includes decoding the PNGs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

from oneshot.data import sources
from oneshot.data.datasets import load_lake_runs, load_mnist, load_omniglot
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
    parser = argparse.ArgumentParser(prog="python -m oneshot.data", description=__doc__)
    parser.add_argument("--check", action="store_true", help="verify and load every dataset")
    parser.add_argument(
        "--data-dir", help=f"folder with mnist/ and omniglot/ (default: ${sources.ENV_DATA_DIR})"
    )
    parser.add_argument(
        "--cold", action="store_true", help="use a fresh temporary decoded cache (time decoding)"
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    args = parser.parse_args(argv)
    if not args.check:
        parser.print_help()
        return 0
    cold_dir = tempfile.mkdtemp(prefix="oneshot-cache-") if args.cold else None
    if cold_dir:
        os.environ[sources.ENV_CACHE_DIR] = cold_dir
    try:
        check(args.data_dir)
    except DataError as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        if cold_dir:
            shutil.rmtree(cold_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
