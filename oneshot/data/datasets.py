"""The real datasets as numpy arrays: MNIST, Omniglot and Lake et al.'s 20 one-shot runs.

Raw files are found and verified by ``oneshot.data.sources``. Omniglot PNGs are decoded once
(at 105x105, strokes bright) and cached as ``.npz`` in ``$ONESHOT_CACHE_DIR`` (default
``~/.cache/oneshot``), keyed by the archive's sha256, the image size, the polarity and
``sources.FORMAT_VERSION``; resized variants are computed from the cached 105x105 arrays and cached too,
so a second load of all Omniglot takes well under a second.

Example:

>>> from oneshot.data import load_omniglot
>>> train = load_omniglot("background", image_size=28)
>>> train.images.shape, train.character_names[train.labels[0]]
((19280, 28, 28), 'Alphabet_of_the_Magi/character01')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from oneshot.checks import check_choice
from oneshot.data import sources
from oneshot.data.decode import (
    cached_variant,
    decode_omniglot_archive,
    decode_runs_archive,
    resize_area,
    transform_images,
)
from oneshot.data.sources import DataError

DATASETS = ("mnist", "omniglot")
# Per dataset: (training split, test split).
SPLITS = {"mnist": ("train", "test"), "omniglot": ("background", "evaluation")}
TRAIN_SPLIT = {name: train for name, (train, _) in SPLITS.items()}
TEST_SPLIT = {name: test for name, (_, test) in SPLITS.items()}
SOURCES = ("files", "tfds")

_TFDS_SPLITS = {"train": "train", "test": "test", "background": "train", "evaluation": "test"}


@dataclass
class LabelledImages:
    """Images with integer class labels, and the class names when the labels stand for names.

    Labels are always int32. Named classes (folders, string labels) are coded: ``labels[i]``
    indexes ``class_names``, so ``class_names[labels[i]]`` is the name of image i's class.
    Every function that takes labels also accepts the names themselves (see
    ``oneshot.data.labels``).

    Attributes:
        images: uint8 array (N, H, W), strokes bright (255) on dark (0) unless asked otherwise;
            (N, H, W, 3) for colour images (``load_image_folder``, ``from_arrays``).
        labels: int32 array (N,), class index of each image.
        class_names: name of each label (keyword only); None when the labels are their own
            names (MNIST digits, integer labels). Omniglot: its ``character_names``.
        files: path of each image relative to its folder (keyword only; ``load_image_folder``),
            else None.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str] | None = field(default=None, kw_only=True)
    files: list[str] | None = field(default=None, kw_only=True)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def label_names(self) -> np.ndarray:
        """The class name of each image (N,): ``class_names[labels]``, or the labels themselves
        when the classes have no names."""
        if self.class_names is None:
            return np.asarray(self.labels)
        return np.asarray(self.class_names)[self.labels]


@dataclass
class OmniglotSet(LabelledImages):
    """An Omniglot split: labels are characters 0..C-1 ordered by (alphabet, character folder).

    Also what ``load_image_folder`` returns for a grouped folder (``<group>/<class>/<image>``):
    the groups are its alphabets.

    Attributes:
        alphabets: int32 array (N,), index into ``alphabet_names``.
        alphabet_names: sorted alphabet folder names, e.g. ``"Greek"``.
        character_names: ``"<alphabet>/<character folder>"`` indexed by label.
        drawers: int32 array (N,), drawer number from ``<id>_<drawer>.png`` (1..20; -1 if unknown).
    """

    alphabets: np.ndarray
    alphabet_names: list[str]
    character_names: list[str]
    drawers: np.ndarray

    def __post_init__(self) -> None:
        if self.class_names is None:
            self.class_names = self.character_names


@dataclass
class LakeRun:
    """One of Lake et al.'s 20-way one-shot runs.

    Attributes:
        name: run folder, e.g. ``"run01"``.
        training_images: uint8 (20, S, S), ``class01`` .. ``class20`` in order.
        test_images: uint8 (20, S, S), ``item01`` .. ``item20`` in order.
        answers: int32 (20,), index into ``training_images`` of each test image's class.
    """

    name: str
    training_images: np.ndarray
    test_images: np.ndarray
    answers: np.ndarray


def _check_image_options(image_size: Any, invert: Any) -> None:
    if image_size is not None and (
        isinstance(image_size, bool)
        or not isinstance(image_size, int | np.integer)
        or image_size < 1
    ):
        raise ValueError(
            "Invalid value for argument `image_size`. Expected None (keep 105x105) or a positive "
            f"int such as 28. Received: image_size={image_size!r}"
        )
    if not isinstance(invert, bool | np.bool_):
        raise ValueError(
            f"Invalid value for argument `invert`. Expected a bool. Received: invert={invert!r}"
        )


def load_mnist(
    split: str = "train",
    data_dir: str | Path | None = None,
    *,
    source: str = "files",
    image_size: int | None = None,
) -> LabelledImages:
    """Load MNIST digits (60,000 train or 10,000 test), uint8 (N, 28, 28), bright strokes.

    Args:
        split: ``"train"`` or ``"test"``. Defaults to ``"train"``.
        data_dir: folder holding ``mnist/mnist.npz``. Defaults to ``$ONESHOT_DATA_DIR``, else the
            Keras cache (downloads when missing).
        source: ``"files"`` (checksummed ``mnist.npz``) or ``"tfds"`` (tensorflow-datasets, needs
            internet on first use). Defaults to ``"files"``.
        image_size: resize the 28x28 digits to this side by area averaging, e.g. 35 to feed a
            network trained on 35x35 Omniglot (Koch's MNIST transfer test). Defaults to None.

    Returns:
        A ``LabelledImages`` with int32 labels 0..9.
    """
    check_choice("split", split, SPLITS["mnist"])
    check_choice("source", source, SOURCES)
    _check_image_options(image_size, True)
    if image_size not in (None, 28):
        digits = load_mnist(split, data_dir, source=source)
        return LabelledImages(resize_area(digits.images, image_size), digits.labels)
    if source == "tfds":
        data = _tfds_load("mnist", split)
        images = np.asarray(data["image"], dtype=np.uint8)
        images = images[..., 0] if images.ndim == 4 else images
        return LabelledImages(images, np.asarray(data["label"], dtype=np.int32))
    path = sources.locate("mnist", data_dir)
    with np.load(path) as npz:
        try:
            images, labels = npz[f"x_{split}"], npz[f"y_{split}"]
        except KeyError as error:
            raise DataError(
                f"{path} has no {error} array (keys: {sorted(npz.files)}); expected the Keras "
                "mnist.npz with x_train, y_train, x_test, y_test."
            ) from None
    return LabelledImages(np.asarray(images, dtype=np.uint8), labels.astype(np.int32))


def load_omniglot(
    split: str = "background",
    image_size: int | None = None,
    invert: bool = True,
    data_dir: str | Path | None = None,
    *,
    source: str = "files",
) -> OmniglotSet:
    """Load an Omniglot split: background (964 characters, 30 alphabets) or evaluation (659, 20).

    Args:
        split: ``"background"`` or ``"evaluation"``. Defaults to ``"background"``.
        image_size: side of the returned images; ``None`` keeps 105x105, an int resizes by area
            averaging (grey levels), e.g. 28, 35 or 52. Defaults to ``None``.
        invert: if True, strokes are bright (255) on dark (0) like MNIST; if False, as in the raw
            PNGs (dark strokes on white). Defaults to ``True``.
        data_dir: folder holding ``omniglot/images_<split>.zip``. Defaults to
            ``$ONESHOT_DATA_DIR``, else the Keras cache (downloads when missing).
        source: ``"files"`` or ``"tfds"`` (tensorflow-datasets ``omniglot`` train/test, needs
            internet on first use; drawers are then -1). Defaults to ``"files"``.

    Returns:
        An ``OmniglotSet`` with 20 drawings per character.
    """
    check_choice("split", split, SPLITS["omniglot"])
    _check_image_options(image_size, invert)
    check_choice("source", source, SOURCES)
    if source == "tfds":
        return _omniglot_from_tfds(_tfds_load("omniglot", split), image_size, invert)
    key = f"omniglot_{split}"
    path = sources.locate(key, data_dir)
    sha = sources.file_digests(path)[0]
    cached = sources.read_cached(sources.cache_path(key, sha, "105"))
    if cached is None:
        cached = decode_omniglot_archive(path)
        sources.write_cached(sources.cache_path(key, sha, "105"), cached)
    images = cached_variant(key, sha, cached, image_size, invert)
    return OmniglotSet(
        images=images,
        labels=cached["labels"],
        alphabets=cached["alphabets"],
        alphabet_names=[str(n) for n in cached["alphabet_names"]],
        character_names=[str(n) for n in cached["character_names"]],
        drawers=cached["drawers"],
    )


def load_lake_runs(
    image_size: int | None = None, invert: bool = True, data_dir: str | Path | None = None
) -> list[LakeRun]:
    """Load Lake et al. (2015)'s 20 within-alphabet 20-way one-shot runs from ``all_runs.zip``.

    Args:
        image_size: as in ``load_omniglot``. Defaults to ``None`` (105x105).
        invert: as in ``load_omniglot``. Defaults to ``True`` (bright strokes).
        data_dir: folder holding ``omniglot/all_runs.zip``. Defaults to ``$ONESHOT_DATA_DIR``,
            else the Keras cache (downloads when missing).

    Returns:
        A list of ``LakeRun``, ``run01`` first.
    """
    _check_image_options(image_size, invert)
    path = sources.locate("lake_runs", data_dir)
    sha = sources.file_digests(path)[0]
    cached = sources.read_cached(sources.cache_path("lake_runs", sha, "105"))
    if cached is None:
        cached = decode_runs_archive(path)
        sources.write_cached(sources.cache_path("lake_runs", sha, "105"), cached)
    images = cached_variant("lake_runs", sha, cached, image_size, invert)
    answers, names = cached["answers"], [str(n) for n in cached["run_names"]]
    ways = answers.shape[1]
    images = images.reshape(len(names), 2 * ways, *images.shape[1:])
    return [
        LakeRun(name, images[r, :ways], images[r, ways:], answers[r])
        for r, name in enumerate(names)
    ]


def load_dataset(name: str, split: str, **kwargs: Any) -> LabelledImages:
    """Load a dataset by name: ``load_dataset("mnist", "test")``, ``("omniglot", "evaluation")``.

    Args:
        name: one of ``DATASETS``.
        split: one of ``SPLITS[name]`` (the first is the training split, the second the test one).
        **kwargs: passed to ``load_mnist`` / ``load_omniglot``.
    """
    check_choice("dataset", name, DATASETS)
    check_choice("split", split, SPLITS[name])
    loader = load_mnist if name == "mnist" else load_omniglot
    return loader(split, **kwargs)


# ----------------------------------------------------------------------------- decoding


def _tfds_load(name: str, split: str) -> dict[str, Any]:
    """Whole tfds split as numpy (``image``, ``label``, ...); Omniglot adds ``alphabet_names``."""
    import tensorflow_datasets as tfds  # late import: only to download, tensorflow-datasets is slow to import

    data, info = tfds.load(name, split=_TFDS_SPLITS[split], batch_size=-1, with_info=True)
    data = dict(tfds.as_numpy(data))
    if name == "omniglot":
        data["alphabet_names"] = list(info.features["alphabet"].names)
    return data


def _omniglot_from_tfds(data: dict[str, Any], image_size: int | None, invert: bool) -> OmniglotSet:
    """tfds omniglot (RGB, dark strokes, global labels) -> ``OmniglotSet`` ordered like files."""
    images = np.asarray(data["image"], dtype=np.uint8)
    images = 255 - (images[..., 0] if images.ndim == 4 else images)
    alphabet = np.asarray(data["alphabet_names"])[np.asarray(data["alphabet"])]
    char = np.asarray(data["alphabet_char_id"], dtype=np.int64)
    order = np.lexsort((char, alphabet))  # stable: by alphabet name, then character
    images, alphabet, char = images[order], alphabet[order], char[order]
    new = np.r_[True, (alphabet[1:] != alphabet[:-1]) | (char[1:] != char[:-1])]
    alphabet_names = sorted(set(alphabet.tolist()))
    return OmniglotSet(
        images=transform_images(images, image_size, invert),
        labels=(np.cumsum(new) - 1).astype(np.int32),
        alphabets=np.searchsorted(alphabet_names, alphabet).astype(np.int32),
        alphabet_names=alphabet_names,
        character_names=[
            f"{a}/character{c + 1:02d}" for a, c in zip(alphabet[new], char[new], strict=True)
        ],
        drawers=np.full(len(images), -1, dtype=np.int32),
    )
