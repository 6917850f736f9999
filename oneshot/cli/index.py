"""Command line: build an embedding index of your images, search it, and measure its rankings.

    python -m oneshot.index build --model M --images DIR --out INDEX.npz [--backend faiss]
    python -m oneshot.index search --index INDEX.npz --model M --query IMG [IMG ...] \\
        [--top 5] [--plot hits.png]
    python -m oneshot.index evaluate --index INDEX.npz [--top 5]

``build`` reads a folder of class folders (``oneshot.data.load_image_folder``), fits each image
to the model's input (area resizing; colour refused unless ``--convert``), embeds them with a
progress bar and saves an :class:`oneshot.applications.EmbeddingIndex` (labels = class names,
ids = the image files) atomically; an existing file needs ``--overwrite``.
``search`` embeds the query images with the index's model (another model is refused), prints
the ``--top`` nearest items of each (rank, label, distance, file), and with ``--plot`` writes a
PNG strip per query. ``evaluate`` prints precision@k and MAP@R of the index searched with its
own items, leave-one-out (``oneshot.applications.search_quality``).
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = CommandParser(
        prog="python -m oneshot.index",
        description="Build an embedding index of a folder of images, search it with query "
        "images, or measure its precision@k and MAP@R.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    build = commands.add_parser(
        "build", help="embed a folder of class folders and save the index", description=(
            "Embed every image of a folder of class folders (FOLDER/<class>/<image>) and save "
            "the index: labels are the class names, ids the image files."
        ),
    )  # fmt: skip
    add_model_arguments(build)
    build.add_argument("--images", type=Path, required=True, help="a folder of class folders")
    build.add_argument("--out", type=Path, required=True, help="the index file to write (.npz)")
    build.add_argument(
        "--backend", choices=("exact", "faiss"), default="exact", help="search backend "
        "(default exact; faiss needs pip install faiss-cpu)",
    )  # fmt: skip
    build.add_argument(
        "--faiss-index", choices=("flat", "hnsw", "ivf"), default="flat",
        help="FAISS index kind (backend faiss; default flat: exact)",
    )  # fmt: skip
    build.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    add_quiet_argument(build)
    add_debug_flag(build)

    search = commands.add_parser(
        "search", help="the nearest indexed images of query images",
        description="Print the nearest indexed images of each query (rank, label, distance, file).",
    )  # fmt: skip
    search.add_argument("--index", type=Path, required=True, help="an index file (from build)")
    search.add_argument(
        "--model", type=Path, required=True, help="the model the index was built with"
    )
    search.add_argument(
        "--query",
        type=Path,
        nargs="+",
        required=True,
        help="query image files (or one folder of class folders)",
    )
    search.add_argument("--top", type=int, default=5, help="neighbours per query (default 5)")
    search.add_argument(
        "--plot", type=Path, default=None, help="write a PNG strip per query (query + neighbours)"
    )
    add_convert_argument(search)
    add_quiet_argument(search)
    add_debug_flag(search)

    evaluate = commands.add_parser(
        "evaluate", help="precision@k and MAP@R of the index searched with its own items",
        description="precision@k, precision@1, R-precision and MAP@R of the index searched with "
        "each of its items, leave-one-out (items alone in their class are not counted).",
    )  # fmt: skip
    evaluate.add_argument("--index", type=Path, required=True, help="an index file (from build)")
    evaluate.add_argument("--top", type=int, default=5, help="the k of precision@k (default 5)")
    add_debug_flag(evaluate)
    return parser.parse_args(argv)


def build(args: argparse.Namespace) -> int:
    from oneshot.applications import EmbeddingIndex
    from oneshot.applications.files import check_output
    from oneshot.cli.apps import check_shifts, embed, load_model, read_images

    check_output(args.out, args.overwrite, "--overwrite")  # before any work
    check_shifts(args.shifts)
    model = load_model(args.model, args.distance)
    index = EmbeddingIndex.for_model(
        model, args.distance, args.shifts, backend=args.backend, faiss_index=args.faiss_index
    )
    images = read_images([args.images], index.model, args.convert, args.quiet, "--images")
    embeddings = embed(model, index, images, args.quiet)
    files = [str(Path(f).resolve()) for f in images.files]
    index.add(embeddings, labels=images.labels, ids=files)
    index.save(args.out, overwrite=args.overwrite)
    classes = len(set(images.labels.tolist()))
    print(
        f"index: {len(index)} images of {classes} classes, {index.dim}-D embeddings of "
        f"{index.model.short()}, distance {index.distance!r}, backend {index.backend} -> "
        f"{args.out}"
    )
    return 0


def search(args: argparse.Namespace) -> int:
    from oneshot.applications import EmbeddingIndex, plot_hits, read_image_files
    from oneshot.cli.apps import (
        check_index_model,
        embed,
        load_model,
        note,
        read_images,
    )

    if args.top < 1:
        raise UsageError(f"--top must be >= 1. Received: {args.top}.")
    index = EmbeddingIndex.load(args.index)
    if args.plot is not None and index.ids.dtype.kind != "U":
        raise UsageError(
            f"--plot draws the indexed images, but {args.index} has integer ids, not image "
            "files. Build the index with python -m oneshot.index build, or leave out --plot."
        )
    model = load_model(args.model)
    check_index_model(index, model, args.index)  # before reading any image
    queries = read_images(args.query, index.model, args.convert, args.quiet, "--query")
    result = index.search(embed(model, index, queries, args.quiet), k=args.top)
    if args.plot is not None:
        missing = [f for f in dict.fromkeys(result.ids.ravel()) if not Path(f).is_file()]
        if missing:
            raise UsageError(
                f"--plot: the indexed image {missing[0]} is gone ({len(missing)} missing). "
                "Rebuild the index from the images where they are now, or leave out --plot."
            )
        neighbours = read_image_files(list(result.ids.ravel()), index.model, convert=True)
        shape = (*result.ids.shape, *neighbours.images.shape[1:])
        plot_hits(
            queries.images, neighbours.images.reshape(shape), result, args.plot, queries.labels
        )
    for q, name in enumerate(queries.files):
        print(f"query {name}")
        for rank in range(result.k):
            label = "-" if result.labels is None else result.labels[q, rank]
            print(
                f"  {rank + 1:>3}  {label}  {result.distances[q, rank]:.4f}  {result.ids[q, rank]}"
            )
    if args.plot is not None:
        note(f"wrote {args.plot}", args.quiet)
    return 0


def evaluate(args: argparse.Namespace) -> int:
    from oneshot.applications import EmbeddingIndex, search_quality

    if args.top < 1:
        raise UsageError(f"--top must be >= 1. Received: {args.top}.")
    quality = search_quality(EmbeddingIndex.load(args.index), k=args.top)
    print(f"index {args.index}: {quality.queries} items searched with their own, leave-one-out")
    print(f"precision@{quality.k}  {quality.precision_at_k:.4f}")
    print(f"precision@1  {quality.precision_at_1:.4f}")
    print(f"R-precision  {quality.r_precision:.4f}")
    print(f"MAP@R        {quality.map_at_r:.4f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    body = {"build": build, "search": search, "evaluate": evaluate}[args.command]
    return run_app(lambda: body(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
