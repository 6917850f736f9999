"""Your own images in: a folder with one sub-folder per class, read into a ``LabelledImages``.

Layout (the rule :func:`load_image_folder` applies, by the depth of the image files):

- flat: ``path/<class>/<image>``: one sub-folder per class;
- grouped: ``path/<group>/<class>/<image>``, like Omniglot's ``alphabet/character/*.png``:
  classes grouped by a folder above them (alphabets, families, sources ...). The result is an
  ``OmniglotSet`` whose ``alphabets`` are the groups, for within-group episodes and batches.

Every image must sit at the same depth; hidden files and folders (``.name``, ``__MACOSX``) and
files that are not images (by extension, e.g. ``.txt``) are skipped. Images are any file Pillow
reads (PNG, JPEG, BMP, GIF, TIFF ...), 8 bits per channel, grey or colour, of any size.

Classes are ordered by folder name (groups first), images by file name, so a folder always
gives the same arrays. Class names are kept: ``labels`` are int32 indices into
``class_names`` (``"<group>/<class>"`` when grouped), and ``files`` gives each image's path.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from oneshot.data.datasets import LabelledImages, OmniglotSet
from oneshot.data.decode import resize_area
from oneshot.data.preprocess import to_grayscale
from oneshot.data.sources import DataError

GREY_MODES = ("1", "L", "LA", "La")
COLOUR_MODES = ("RGB", "RGBA", "RGBa", "RGBX", "P", "PA", "CMYK", "YCbCr")
PROGRESS_AFTER = 1.0  # seconds of reading before a progress bar appears
_SKIPPED_FOLDERS = ("__MACOSX",)
_COMMON = (".png", ".jpg", ".jpeg")  # named in messages


class AspectRatioWarning(UserWarning):
    """Images were resized to another aspect ratio (stretched) by ``load_image_folder``."""


def image_suffixes() -> tuple[str, ...]:
    """File extensions read as images: those Pillow can open (``.png``, ``.jpg`` ...)."""
    return tuple(
        sorted(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)
    )


def load_image_folder(
    path: str | Path,
    image_size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    groups: bool | None = None,
    invert: bool = False,
    verbose: bool = True,
) -> LabelledImages:
    """Read a folder of class sub-folders of images (see the module docstring for the layout).

    Args:
        path: the folder.
        image_size: output side (square) or ``(height, width)``; images are resized by area
            averaging, as the built-in sets are (``oneshot.data.decode.resize_area``; other
            aspect ratios are stretched, with an :class:`AspectRatioWarning`). None keeps the size, which must then be the same
            for every image. Defaults to None.
        channels: 1 (grey: colour images converted by their luma, as
            ``oneshot.data.to_grayscale``), 3 (colour: grey images repeated) or None (as the
            files are; all must be grey or all colour). Defaults to None.
        groups: True for ``path/<group>/<class>/<image>``, False for ``path/<class>/<image>``,
            None to tell from the depth of the images. Defaults to None.
        invert: store ``255 - pixel``, e.g. to turn dark strokes on white paper into the bright
            strokes on black of the built-in sets. Defaults to False.
        verbose: show a progress bar when reading takes more than a second. Defaults to True.

    Returns:
        A ``LabelledImages`` (flat layout) or an ``OmniglotSet`` (grouped: ``alphabets`` and
        ``alphabet_names`` are the groups; ``drawers`` are -1). Images uint8 (N, H, W) grey or
        (N, H, W, 3) colour; labels int32 indices into ``class_names``; ``files`` the image
        paths relative to ``path``.

    Raises:
        DataError: naming the folder or file: a missing path, a layout that does not fit,
            an empty class folder, a single class, an unreadable image, or mixed sizes or
            colour kinds that the arguments do not resolve (the message says what to pass).

    Example:
    >>> data = load_image_folder("my_logos", image_size=28, channels=1)
    >>> data.images.shape, data.class_names[data.labels[0]]
    ((120, 28, 28), 'acme')
    """
    size = _check_arguments(image_size, channels, groups, invert)
    root = Path(path)
    if not root.exists():
        raise DataError(
            f"Invalid value for argument `path`. Expected an existing folder. Received: "
            f"path={str(path)!r}, which does not exist."
        )
    if not root.is_dir():
        raise DataError(
            f"Invalid value for argument `path`. Expected a folder with one sub-folder per class. "
            f"Received: path={str(path)!r}, which is a file."
        )
    entries, grouped = _layout(root, groups)
    class_keys = list(dict.fromkeys(parts for parts, _ in entries))
    if len(class_keys) < 2:
        raise DataError(
            f"{root} holds one class ({'/'.join(class_keys[0])!r}): metric learning compares "
            "images of different classes, so it needs at least two class folders."
        )
    code = {key: i for i, key in enumerate(class_keys)}
    labels = np.array([code[parts] for parts, _ in entries], dtype=np.int32)
    files = [Path(*parts, name).as_posix() for parts, name in entries]
    images = _read_all(root, files, size, channels, invert, verbose)
    names = ["/".join(key) for key in class_keys]
    if not grouped:
        return LabelledImages(images, labels, class_names=names, files=files)
    group_names = list(dict.fromkeys(key[0] for key in class_keys))
    group_of = {g: i for i, g in enumerate(group_names)}
    return OmniglotSet(
        images=images,
        labels=labels,
        alphabets=np.array([group_of[parts[0]] for parts, _ in entries], dtype=np.int32),
        alphabet_names=group_names,
        character_names=names,
        drawers=np.full(len(labels), -1, dtype=np.int32),
        files=files,
    )


def _check_arguments(image_size, channels, groups, invert) -> tuple[int, int] | None:
    """The output (height, width) or None; ValueError naming a bad argument."""
    sides = (image_size, image_size) if np.ndim(image_size) == 0 else tuple(image_size)
    if image_size is not None and (
        len(sides) != 2
        or not all(isinstance(s, int | np.integer) and not isinstance(s, bool) for s in sides)
        or min(sides) < 1
    ):
        raise ValueError(
            "Invalid value for argument `image_size`. Expected None (keep the size), a positive "
            f"int such as 28, or (height, width). Received: image_size={image_size!r}"
        )
    if channels not in (None, 1, 3) or isinstance(channels, bool):
        raise ValueError(
            "Invalid value for argument `channels`. Expected None (as the files are), 1 (grey) "
            f"or 3 (colour). Received: channels={channels!r}"
        )
    for name, value, options in (
        ("groups", groups, "None, True or False"),
        ("invert", invert, "a bool"),
    ):
        if not (isinstance(value, bool | np.bool_) or (name == "groups" and value is None)):
            raise ValueError(
                f"Invalid value for argument `{name}`. Expected {options}. Received: "
                f"{name}={value!r}"
            )
    return None if image_size is None else (int(sides[0]), int(sides[1]))


def _hidden(name: str) -> bool:
    return name.startswith(".") or name in _SKIPPED_FOLDERS


def _scan(root: Path) -> tuple[list[tuple[tuple[str, ...], str]], list[tuple[str, ...]]]:
    """Every image file as (folder parts relative to ``root``, file name), and every folder."""
    suffixes = set(image_suffixes())
    entries, folders = [], []

    def refuse(error: OSError) -> None:
        raise DataError(f"Cannot read the folder {error.filename}: {error.strerror}.")

    for folder, subfolders, names in os.walk(root, onerror=refuse):
        subfolders[:] = sorted(d for d in subfolders if not _hidden(d))
        parts = Path(folder).relative_to(root).parts
        folders.append(parts)
        for name in sorted(names):
            if not _hidden(name) and Path(name).suffix.lower() in suffixes:
                entries.append((parts, name))
    return entries, folders


def _layout(root: Path, groups: bool | None) -> tuple[list[tuple[tuple[str, ...], str]], bool]:
    """The image entries (sorted) and whether the layout is grouped; DataError if it fits
    neither ``root/<class>/<image>`` nor ``root/<group>/<class>/<image>``."""
    entries, folders = _scan(root)
    layouts = f"{root}/<class>/<image> or {root}/<group>/<class>/<image>"
    if not entries:
        raise DataError(f"{root} holds no images ({', '.join(_COMMON)} ...). Expected {layouts}.")
    by_depth: dict[int, str] = {}
    for parts, name in entries:
        by_depth.setdefault(len(parts), Path(*parts, name).as_posix())
    if 0 in by_depth:
        raise DataError(
            f"{root} holds images directly (e.g. {by_depth[0]}). Expected one sub-folder per "
            f"class: {layouts}."
        )
    if len(by_depth) > 1:
        examples = ", ".join(f"{f} (depth {d})" for d, f in sorted(by_depth.items()))
        raise DataError(
            f"{root}: images lie at depths {sorted(by_depth)} (e.g. {examples}). Expected every "
            f"image at the same depth: {layouts}."
        )
    depth = next(iter(by_depth))
    if depth > 2:
        raise DataError(
            f"{root}: images lie {depth} folders deep (e.g. {by_depth[depth]}). Expected {layouts}: "
            "pass the folder above the classes (or the groups) as `path`."
        )
    if groups is not None and groups != (depth == 2):
        found = "grouped (<group>/<class>/<image>)" if depth == 2 else "flat (<class>/<image>)"
        raise DataError(
            f"Invalid value for argument `groups`. Received: groups={groups}, but {root} is "
            f"{found}. Pass groups={depth == 2} or None (detect)."
        )
    with_images = {parts for parts, _ in entries}
    for parts in folders:
        if len(parts) == depth and parts not in with_images:
            raise DataError(
                f"Class folder {root / Path(*parts)} holds no images ({', '.join(_COMMON)} ...): "
                "add images or remove the folder."
            )
        if depth == 2 and len(parts) == 1 and not any(p[0] == parts[0] for p in with_images):
            raise DataError(
                f"Group folder {root / parts[0]} holds no class folders with images: add some "
                "or remove the folder."
            )
    return sorted(entries), depth == 2


def _read_all(
    root: Path,
    files: list[str],
    size: tuple[int, int] | None,
    channels: int | None,
    invert: bool,
    verbose: bool,
) -> np.ndarray:
    """Read, convert and resize every file into one uint8 array, with a progress bar when slow."""
    out, first, bar, start, stretched = [], None, None, time.monotonic(), []
    for i, name in enumerate(files):
        image, colour = read_image(root / name)
        if channels is None:
            first = first or (name, colour)
            if colour != first[1]:
                grey, rgb = (first[0], name) if colour else (name, first[0])
                raise DataError(
                    f"{root} mixes grey and colour images (e.g. {grey} is grey, {rgb} colour). "
                    "Pass channels=1 to convert all to grey, or channels=3 for colour."
                )
        elif channels == 1 and colour:
            image = to_grayscale(image[None])[0]
        elif channels == 3 and not colour:
            image = np.repeat(image[..., None], 3, axis=-1)
        if invert:
            image = 255 - image
        if size is not None:
            if image.shape[:2] != size:
                if image.shape[0] * size[1] != image.shape[1] * size[0]:
                    stretched.append(name)
                image = resize_area(image[None], size)[0]
        elif out and image.shape[:2] != out[0].shape[:2]:
            raise DataError(
                f"{root}: images differ in size (e.g. {files[0]} is {_hw(out[0])}, {name} is "
                f"{_hw(image)}). Pass image_size={out[0].shape[0]} (for example) to resize them "
                "all (area averaging)."
            )
        out.append(image)
        if verbose and bar is None and time.monotonic() - start > PROGRESS_AFTER:
            import keras  # late import: this module is read before TensorFlow starts (command lines)

            print(f"Reading {len(files)} images in {root}", file=sys.stderr)
            bar = keras.utils.Progbar(len(files), unit_name="image")
        if bar is not None:
            bar.update(i + 1)
    if stretched:
        example = read_image(root / stretched[0])[0]
        warnings.warn(
            AspectRatioWarning(
                f"{len(stretched)} of {len(files)} images in {root} have another aspect ratio "
                f"than {size[1]}x{size[0]} (e.g. {stretched[0]} is {_hw(example)}): resizing "
                "stretched them, so their aspect ratio changed. Crop or pad them to that shape "
                "first to keep it."
            ),
            stacklevel=3,
        )
    return np.stack(out)


def _hw(image: np.ndarray) -> str:
    return f"{image.shape[1]}x{image.shape[0]}"


def read_image(path: Path) -> tuple[np.ndarray, bool]:
    """One file as uint8 (H, W) grey or (H, W, 3) colour, and whether it is colour (by mode).

    Raises:
        DataError: naming the file, when Pillow cannot read it or its pixels are not 8 bits
            per channel.
    """
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in GREY_MODES:
                return np.asarray(image.convert("L"), dtype=np.uint8), False
            if mode in COLOUR_MODES:
                return np.asarray(image.convert("RGB"), dtype=np.uint8), True
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(
            f"Cannot read the image {path}: {error}. Replace or delete the file."
        ) from None
    raise DataError(
        f"Cannot read the image {path}: its mode {mode!r} is not 8 bits per channel (16-bit or "
        "float pixels). Save it as an 8-bit grey or colour image."
    )
