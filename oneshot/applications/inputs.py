"""A user's image files and folders fitted to a trained network's input, then embedded.

The tasks take images as they come (any size, grey or colour, PNG, JPEG ...) and give the
network what it was trained on. What is done is said (:attr:`ModelImages.notes`), what cannot
be done well is refused with the file's name and what to do:

- size: resized to the network's (height, width) by area averaging
  (``oneshot.data.resize_area``, the resampling of the built-in sets). An image whose aspect
  ratio is more than twice off the network's would be squashed: refused (crop it first).
- colour: a colour image for a grey network (or grey for a colour one) is refused unless
  ``convert=True`` (colour to grey by luma, as ``oneshot.data.to_grayscale``; grey to colour by
  repeating the channel). A photo is often colour even when it shows a grey drawing.
- folders: one sub-folder per class, read by ``oneshot.data.load_image_folder`` (its checks:
  empty class folders, a single class, unreadable files ...); the labels are the class names.

:func:`embed_images` embeds in chunks with a progress bar on stderr for large sets.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
from PIL import Image

from oneshot.data.decode import resize_area
from oneshot.data.folders import COLOUR_MODES, load_image_folder, read_image
from oneshot.data.preprocess import to_grayscale
from oneshot.data.sources import DataError
from oneshot.distances import Distance, get_distance
from oneshot.evaluation.scoring import Scorer, trained_distance
from oneshot.models.identity import ModelIdentity, embedding_network

MAX_ASPECT_CHANGE = 2.0  # resizing may stretch an image by at most this factor
EMBED_CHUNK = 256  # images per embedding call when a progress bar is shown


@dataclasses.dataclass(frozen=True)
class ModelImages:
    """Images ready for a network, with where they came from.

    Attributes:
        images: uint8 (N, H, W) grey or (N, H, W, 3) colour, at the network's size.
        files: each image's path (a folder's files as ``folder / <class> / <name>``).
        labels: (N,) class names (str) of a folder's images; None for single files.
        notes: what was done to fit them (resizing, colour conversion), one sentence each.
    """

    images: np.ndarray
    files: list[str]
    labels: np.ndarray | None = None
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.files)


def network_shape(model: ModelIdentity) -> tuple[int | None, int | None, int]:
    """``(height, width, channels)`` a network takes (None for a free height or width)."""
    shape = tuple(model.input_shape)
    if len(shape) != 3 or shape[2] not in (1, 3):
        raise ValueError(
            f"Invalid value for argument `model`. Expected a network for (height, width, 1 or "
            f"3) images. Received: model {model.short()} with input shape {shape}"
        )
    return shape[0], shape[1], int(shape[2])


def read_image_files(
    paths: Sequence[str | Path], model: ModelIdentity, convert: bool = False
) -> ModelImages:
    """Read single image files and fit them to ``model``'s input (see the module docstring).

    Args:
        paths: the image files.
        model: the identity of the network that will embed them (``ModelIdentity.of(model)``
            or an index's ``model``).
        convert: convert colour to grey (or grey to colour) to fit the network instead of
            refusing. Defaults to False.

    Raises:
        DataError: naming the file: missing, a folder, unreadable, of the wrong colour kind,
            or too far from the network's aspect ratio.
    """
    height, width, channels = network_shape(model)
    if not len(paths):
        raise DataError("Invalid value for argument `paths`. Expected image files. Received none.")
    images, colours = [], []
    for path in map(Path, paths):
        if not path.exists():
            kind = "folder or image file" if not path.suffix else "image file"
            raise DataError(f"No such {kind}: {path}. Check the path.")
        if path.is_dir():
            raise DataError(
                f"{path} is a folder. Expected an image file (a folder of class folders is read "
                "with load_image_folder, or --images on the command line)."
            )
        image, colour = read_image(path)
        images.append(image)
        colours.append(colour)
    return _fit(images, colours, [str(p) for p in paths], (height, width, channels), convert)


def read_image_folder(
    path: str | Path, model: ModelIdentity, convert: bool = False, verbose: bool = True
) -> ModelImages:
    """Read a folder of class sub-folders (``oneshot.data.load_image_folder``) fitted to
    ``model``'s input; the labels are the class names (``"<group>/<class>"`` when grouped).

    Args:
        path: the folder.
        model: the identity of the network that will embed them.
        convert: convert colour to grey (or grey to colour) to fit the network instead of
            refusing. Defaults to False.
        verbose: a progress bar (on stderr) when reading is slow. Defaults to True.

    Raises:
        DataError: naming the folder or file (see ``load_image_folder``, and the colour and
            aspect checks of the module docstring).
    """
    height, width, channels = network_shape(model)
    root = Path(path)
    size = (height, width) if height is not None and width is not None else None
    with contextlib.redirect_stdout(sys.stderr):  # Keras's progress bar writes to stdout
        data = load_image_folder(root, image_size=size, channels=channels, verbose=verbose)
    files = [str(root / name) for name in data.files]
    sizes, colours = [], []
    for name in files:  # the headers only: each file's size and colour kind before fitting
        with Image.open(name) as image:
            sizes.append(image.size[::-1])
            colours.append(image.mode in COLOUR_MODES)
    notes = _check_files(files, sizes, colours, (height, width, channels), convert)
    names = np.array(data.class_names, dtype=str)[data.labels]
    return ModelImages(data.images, files, names, notes)


def _fit(
    images: list[np.ndarray],
    colours: list[bool],
    files: list[str],
    shape: tuple[int | None, int | None, int],
    convert: bool,
) -> ModelImages:
    """Convert and resize decoded images to ``shape`` (checks first: nothing is half done)."""
    height, width, channels = shape
    notes = _check_files(files, [i.shape[:2] for i in images], colours, shape, convert)
    out = []
    for image, colour in zip(images, colours, strict=True):
        if channels == 1 and colour:
            image = to_grayscale(image[None])[0]
        elif channels == 3 and not colour:
            image = np.repeat(image[..., None], 3, axis=-1)
        target = (height or image.shape[0], width or image.shape[1])
        if image.shape[:2] != target:
            image = resize_area(image[None], target)[0]
        out.append(image)
    if len({i.shape for i in out}) > 1:
        raise DataError(
            f"The images differ in size (e.g. {files[0]} is {_hw(out[0].shape)}) and the network "
            "takes any size: resize them to one size first."
        )
    return ModelImages(np.stack(out), files, None, notes)


def _check_files(
    files: list[str],
    sizes: list[tuple[int, int]],
    colours: list[bool],
    shape: tuple[int | None, int | None, int],
    convert: bool,
) -> tuple[str, ...]:
    """Refuse a colour kind or an aspect ratio the network cannot take (naming the first such
    file); return the notes saying what fitting will do."""
    height, width, channels = shape
    want_colour = channels == 3
    wrong = [f for f, c in zip(files, colours, strict=True) if c != want_colour]
    kind, other = ("colour", "grey") if want_colour else ("grey", "colour")
    if wrong and not convert:
        how = "by luma (ITU-R BT.601)" if not want_colour else "by repeating the grey channel"
        raise DataError(
            f"{wrong[0]} is a {other} image, but the network takes {kind} images "
            f"({height}x{width}x{channels}){f' ({len(wrong)} such files)' if len(wrong) > 1 else ''}. "
            f"Convert it to {kind} yourself, or pass --convert (convert=True) to convert it "
            f"{how}."
        )
    notes = [f"converted {len(wrong)} {other} images to {kind}"] if wrong else []
    if height is None or width is None:
        return tuple(notes)
    resized = [(f, s) for f, s in zip(files, sizes, strict=True) if tuple(s) != (height, width)]
    for name, (h, w) in resized:
        change = (h / w) / (height / width)
        if not 1 / MAX_ASPECT_CHANGE <= change <= MAX_ASPECT_CHANGE:
            raise DataError(
                f"{name} is {_hw((h, w))} (width x height), too far from the network's "
                f"{_hw((height, width))} shape: resizing would stretch it {max(change, 1 / change):.1f} "
                f"times. Crop it around the object to about the {_hw((height, width))} proportions "
                "first."
            )
    if resized:
        seen = sorted({_hw(s) for _, s in resized})
        listed = ", ".join(seen[:3]) + (" ..." if len(seen) > 3 else "")
        notes.append(
            f"resized {len(resized)} of {len(files)} images ({listed}) to {_hw((height, width))} "
            "by area averaging"
        )
    return tuple(notes)


def _hw(shape: Sequence[int]) -> str:
    """``"WxH"`` of an (H, W, ...) shape."""
    return f"{shape[1]}x{shape[0]}"


def scorer_for(model: keras.Model, distance: Distance | str | None, shifts: int = 0) -> Scorer:
    """A Scorer of ``model``'s embedding network with ``distance`` (None: the model's own;
    a ValueError if it records none)."""
    if distance is None:
        distance = trained_distance(model)
        if distance is None:
            raise ValueError(
                f"Model {model.name!r} records no distance (it is not a oneshot training model, "
                "or was loaded with compile=False). Pass `distance=`, e.g. distance='euclidean'."
            )
    return Scorer(embedding_network(model), get_distance(distance), shifts=shifts)


def embed_images(
    scorer: Scorer, images: np.ndarray, verbose: bool = True, chunk: int = EMBED_CHUNK
) -> np.ndarray:
    """``scorer.embed(images)``, in chunks with a progress bar on stderr when ``verbose`` and
    there is more than one chunk (large folders take minutes on a CPU)."""
    if not verbose or len(images) <= chunk:
        return scorer.embed(images)
    import keras  # late import: this module is read before TensorFlow starts (command lines)

    print(f"Embedding {len(images)} images", file=sys.stderr)
    with contextlib.redirect_stdout(sys.stderr):
        bar = keras.utils.Progbar(len(images), unit_name="image")
        parts = []
        for start in range(0, len(images), chunk):
            parts.append(scorer.embed(images[start : start + chunk]))
            bar.update(min(start + chunk, len(images)))
    return np.concatenate(parts)
