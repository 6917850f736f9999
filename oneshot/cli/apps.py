"""What the application command lines share (``oneshot.cli.index``, ``verify``, ``identify``,
``cluster``, ``novelty``): the model and image arguments, reading a gallery (a folder or an
index file) and queries, and turning the library's ValueErrors into one ``error:`` line.

Queries given as a folder of class folders are labelled by their folder names: classes the
gallery enrolled are *known*, the others *unknown* (never enrolled). Queries given as image
files are unlabelled: the commands then print their answers instead of a metric.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import keras
import numpy as np

from oneshot.applications.index import EmbeddingIndex
from oneshot.applications.inputs import (
    ModelImages,
    embed_images,
    read_image_files,
    read_image_folder,
    scorer_for,
)
from oneshot.errors import UsageError
from oneshot.evaluation.scoring import Scorer
from oneshot.models.identity import ModelIdentity
from oneshot.names import DISTANCES


def load_model(path: Path, distance: str | None = None, needs_distance: bool = True) -> keras.Model:
    """The model at ``path``, compiled (the compiled loss records the distance of some
    models); a UsageError if it records no distance, ``distance`` (``--distance``) is None and
    the command ``needs_distance``."""
    from oneshot.evaluation.scoring import trained_distance
    from oneshot.models.saving import load_model as load

    model = load(path)
    if needs_distance and distance is None and trained_distance(model) is None:
        raise UsageError(
            f"{path}: the model {model.name!r} records no distance (it is not a oneshot training "
            f"model). Pass --distance, one of {', '.join(DISTANCES)}."
        )
    return model


def check_shifts(shifts: int) -> int:
    if shifts < 0:
        raise UsageError(f"--shifts must be >= 0. Received: {shifts}.")
    return shifts


def note(message: str, quiet: bool = False) -> None:
    """A line on stderr saying what was done (resizing, conversion ...)."""
    if not quiet:
        print(f"note: {message}", file=sys.stderr)


def warn(message: str) -> None:
    """A line on stderr saying a result cannot be trusted (shown even with ``--quiet``)."""
    print(f"warning: {message}", file=sys.stderr)


def read_images(
    paths: list[Path], model: ModelIdentity, convert: bool, quiet: bool, argument: str
) -> ModelImages:
    """One folder of class folders, or image files, fitted to ``model``; notes on stderr."""
    if not paths:
        raise UsageError(f"{argument} needs a folder of class folders or image files.")
    if len(paths) == 1 and paths[0].is_dir():
        images = read_image_folder(paths[0], model, convert=convert, verbose=not quiet)
    else:
        folders = [p for p in paths if p.is_dir()]
        if folders:
            raise UsageError(
                f"{argument}: {folders[0]} is a folder among several paths. Pass one folder of "
                "class folders, or image files."
            )
        images = read_image_files(paths, model, convert=convert)
    for message in images.notes:
        note(message, quiet)
    return images


def model_and_images(
    args: argparse.Namespace, paths: list[Path], argument: str
) -> tuple[keras.Model, Scorer, ModelImages, np.ndarray]:
    """The model (``--model``, ``--distance``, ``--shifts``), its scorer, the images at
    ``paths`` fitted to it, and their embeddings (with a progress bar unless ``--quiet``)."""
    check_shifts(args.shifts)
    model = load_model(args.model, args.distance)
    images = read_images(
        paths, ModelIdentity.of(model, args.shifts), args.convert, args.quiet, argument
    )
    scorer = scorer_for(model, args.distance, args.shifts)
    return model, scorer, images, embed_images(scorer, images.images, verbose=not args.quiet)


def gallery_and_queries(
    args: argparse.Namespace,
) -> tuple[EmbeddingIndex, ModelImages, np.ndarray]:
    """The gallery (``--gallery``), the queries (``--queries``) and their embeddings."""
    check_shifts(args.shifts)
    model = load_model(args.model, args.distance)
    gallery = gallery_from(args.gallery, model, args)
    queries = read_images(args.queries, gallery.model, args.convert, args.quiet, "--queries")
    return gallery, queries, embed(model, gallery, queries, args.quiet)


def gallery_from(path: Path, model: keras.Model, args: argparse.Namespace) -> EmbeddingIndex:
    """The gallery: an index file (checked to be ``model``'s) or a folder of class folders,
    embedded now (all its images enrolled, labelled by class name, ids the file paths)."""
    if path.is_file():
        index = EmbeddingIndex.load(path)
        if index.labels is None:
            raise UsageError(
                f"{path} is an index without labels: a gallery needs the class of each item. "
                "Rebuild it with python -m oneshot.index build --images FOLDER_OF_CLASSES."
            )
        check_index_model(index, model, path)
        return index
    index = EmbeddingIndex.for_model(model, distance=args.distance, shifts=args.shifts)
    images = read_images([path], index.model, args.convert, args.quiet, "--gallery")
    embeddings = embed(model, index, images, args.quiet)
    index.add(embeddings, labels=images.labels, ids=images.files)
    return index


def check_index_model(index: EmbeddingIndex, model: keras.Model, path: Path) -> None:
    """A UsageError naming the index file when ``model`` is not the one it was built with."""
    try:
        index.check_model(model)
    except ValueError as error:
        raise UsageError(f"{path}: {error}") from None


def embed(
    model: keras.Model, index: EmbeddingIndex, images: ModelImages, quiet: bool
) -> np.ndarray:
    """Embeddings of ``images`` by ``model`` as ``index`` compares them (its distance and
    shifts), after checking ``model`` is the index's."""
    index.check_model(model)
    scorer = scorer_for(model, index.distance, index.model.shifts)
    return embed_images(scorer, images.images, verbose=not quiet)


def split_known(
    images: ModelImages, gallery: EmbeddingIndex
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(labels, known, unknown)`` of labelled queries: their labels in the gallery's kind
    (class names, or integers for a gallery with integer labels), and the indices of the
    queries of an enrolled class and of the others."""
    labels = images.labels
    if gallery.labels.dtype.kind != "U":
        try:
            labels = labels.astype(np.int64)
        except ValueError:
            raise UsageError(
                "The gallery index has integer labels, but the query class folders are named "
                f"{_some(images.labels)}: name them by the gallery's integers."
            ) from None
    known = np.isin(labels, gallery.labels)
    if not known.any():
        raise UsageError(
            f"No query class is enrolled in the gallery (queries: {_some(labels)}; gallery: "
            f"{_some(gallery.labels)}). Name the query class folders as the gallery's."
        )
    return labels, np.flatnonzero(known), np.flatnonzero(~known)


def _some(names: np.ndarray) -> str:
    unique = list(dict.fromkeys(str(n) for n in names))
    return ", ".join(unique[:4]) + (" ..." if len(unique) > 4 else "")
