"""Archive decoding and resizing behind ``oneshot.data.datasets``: Omniglot and Lake-run
PNGs out of their zip files (strokes bright, 105x105), drawer numbers and run answer keys, and
the area resampling (each output pixel the mean of the input area it covers) that every
smaller image size is computed with, cached per size.
"""

from __future__ import annotations

import io
import re
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from oneshot.data import sources
from oneshot.data.sources import DataError

OMNIGLOT_SIZE = 105
_RUN_LABEL = re.compile(r"(?:^|/)test/item(\d+)\.png\s+(?:\S*/)?training/class(\d+)\.png$")


def _decode_png(data: bytes, name: str) -> np.ndarray:
    """One PNG -> uint8 (105, 105), strokes 255 on background 0."""
    with Image.open(io.BytesIO(data)) as image:
        if image.size != (OMNIGLOT_SIZE, OMNIGLOT_SIZE):
            raise DataError(f"{name} is {image.size}, expected 105x105 Omniglot drawings.")
        if image.mode == "1":  # the usual case: True = white paper
            return np.where(np.asarray(image), 0, 255).astype(np.uint8)
        return 255 - np.asarray(image.convert("L"), dtype=np.uint8)


def _decode_members(archive: zipfile.ZipFile, names: list[str], label: str) -> np.ndarray:
    """Decode ``names`` from an open zip into uint8 (N, 105, 105), with a progress line."""
    out = np.empty((len(names), OMNIGLOT_SIZE, OMNIGLOT_SIZE), dtype=np.uint8)
    for i, name in enumerate(names):
        out[i] = _decode_png(archive.read(name), name)
        if i % 500 == 0 or i == len(names) - 1:
            print(f"\rDecoding {label}: {i + 1}/{len(names)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return out


def decode_omniglot_archive(path: Path) -> dict[str, np.ndarray]:
    """Decode an Omniglot zip: ``<top>/<alphabet>/<character>/<id>_<drawer>.png``."""
    entries = []
    for name in _zip_names(path):
        parts = name.split("/")
        if name.endswith(".png") and len(parts) == 4 and parts[0] != "__MACOSX":
            entries.append((parts[1], parts[2], parts[3], name))
    if not entries:
        raise DataError(f"{path} holds no <alphabet>/<character>/<id>_<drawer>.png drawings.")
    entries.sort()
    alphabet_names = sorted({e[0] for e in entries})
    character_names = sorted({f"{e[0]}/{e[1]}" for e in entries})
    label_of = {c: i for i, c in enumerate(character_names)}
    alphabet_of = {a: i for i, a in enumerate(alphabet_names)}
    with zipfile.ZipFile(path) as archive:
        images = _decode_members(archive, [e[3] for e in entries], path.name)
    return {
        "images": images,
        "labels": np.array([label_of[f"{a}/{c}"] for a, c, _, _ in entries], dtype=np.int32),
        "alphabets": np.array([alphabet_of[a] for a, _, _, _ in entries], dtype=np.int32),
        "drawers": np.array([_drawer(f) for _, _, f, _ in entries], dtype=np.int32),
        "alphabet_names": np.array(alphabet_names),
        "character_names": np.array(character_names),
    }


def _drawer(filename: str) -> int:
    match = re.fullmatch(r"\d+_(\d+)\.png", filename)
    return int(match.group(1)) if match else -1


def _zip_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except zipfile.BadZipFile as error:
        raise DataError(f"{path} is not a readable zip ({error}); delete it and retry.") from None


def decode_runs_archive(path: Path) -> dict[str, np.ndarray]:
    """Decode ``all_runs.zip``: per run, training classNN, test itemNN and the answer key."""
    names = set(_zip_names(path))
    run_names = sorted({n.split("/")[0] for n in names if re.match(r"run\d+/", n)})
    if not run_names:
        raise DataError(f"{path} holds no runNN/ folders.")
    members, answers = [], []
    with zipfile.ZipFile(path) as archive:
        for run in run_names:
            training = sorted(n for n in names if re.fullmatch(rf"{run}/training/class\d+\.png", n))
            test = sorted(n for n in names if re.fullmatch(rf"{run}/test/item\d+\.png", n))
            if not training or len(training) != len(test):
                raise DataError(
                    f"{path}: {run} has {len(training)} training and {len(test)} test images; "
                    "expected the same positive number."
                )
            key = archive.read(f"{run}/class_labels.txt").decode().split("\n")
            answers.append(_parse_answers(key, len(test), f"{path.name}:{run}/class_labels.txt"))
            members += training + test
        images = _decode_members(archive, members, path.name)
    return {"images": images, "answers": np.stack(answers), "run_names": np.array(run_names)}


def _parse_answers(lines: list[str], ways: int, where: str) -> np.ndarray:
    """Lines ``[runNN/]test/itemNN.png [runNN/]training/classNN.png`` -> answer per item."""
    answers = np.full(ways, -1, dtype=np.int32)
    for line in filter(None, (raw.strip() for raw in lines)):
        match = _RUN_LABEL.search(line)
        if match is None:
            raise DataError(f"{where}: cannot parse line {line!r}.")
        item, cls = int(match.group(1)) - 1, int(match.group(2)) - 1
        if not (0 <= item < ways and 0 <= cls < ways) or answers[item] != -1:
            raise DataError(f"{where}: out-of-range or repeated entry {line!r}.")
        answers[item] = cls
    if (answers < 0).any():
        raise DataError(f"{where}: no answer for items {np.flatnonzero(answers < 0) + 1}.")
    return answers


# ----------------------------------------------------------------------------- resizing


def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix averaging the input pixels each output pixel covers (rows sum to 1)."""
    scale = n_in / n_out
    starts = np.arange(n_out)[:, None] * scale
    pixels = np.arange(n_in)[None, :]
    overlap = np.minimum(starts + scale, pixels + 1) - np.maximum(starts, pixels)
    return (np.clip(overlap, 0.0, None) / scale).astype(np.float32)


def resize_area(images: np.ndarray, size: int | tuple[int, int], chunk: int = 2048) -> np.ndarray:
    """Resize uint8 images by area averaging: ``W_h @ image @ W_w.T`` per channel.

    Args:
        images: uint8 (N, H, W) grey or (N, H, W, C) with channels last.
        size: the output side (square) or ``(height, width)``.
        chunk: images per matrix product (bounds the float32 working memory). Defaults to 2048.

    Returns:
        uint8 (N, height, width) or (N, height, width, C).
    """
    height, width = (size, size) if np.ndim(size) == 0 else size
    if images.ndim == 4:  # channels last -> one grey image per channel, and back
        n, h, w, c = images.shape
        grey = np.moveaxis(images, -1, 1).reshape(n * c, h, w)
        out = resize_area(grey, (height, width), chunk)
        return np.ascontiguousarray(np.moveaxis(out.reshape(n, c, height, width), 1, -1))
    rows = _area_weights(images.shape[1], height)
    cols = _area_weights(images.shape[2], width).T
    out = np.empty((len(images), height, width), dtype=np.uint8)
    for start in range(0, len(images), chunk):
        block = rows @ images[start : start + chunk].astype(np.float32) @ cols
        out[start : start + chunk] = np.clip(np.rint(block), 0, 255)
    return out


def cached_variant(
    key: str, sha: str, base: dict[str, np.ndarray], image_size: int | None, invert: bool
) -> np.ndarray:
    """The requested size/polarity from the bright-stroke 105x105 ``base["images"]``, cached."""
    images = base["images"]
    if image_size is None or image_size == images.shape[-1]:
        return transform_images(images, None, invert)
    path = sources.cache_path(key, sha, f"{image_size}-{'inv' if invert else 'raw'}")
    cached = sources.read_cached(path)
    if cached is not None:
        return cached["images"]
    resized = transform_images(images, image_size, invert)
    sources.write_cached(path, {"images": resized})
    return resized


def transform_images(images: np.ndarray, image_size: int | None, invert: bool) -> np.ndarray:
    """Bright-stroke uint8 (N, H, W) -> requested polarity, then area-resized if asked."""
    images = images if invert else 255 - images
    if image_size is None or image_size == images.shape[-1]:
        return images
    return resize_area(images, image_size)


# ----------------------------------------------------------------------------- tensorflow-datasets
