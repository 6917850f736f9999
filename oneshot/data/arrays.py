"""Your own arrays in: images and labels checked and stored like the built-in sets.

:func:`from_arrays` returns a :class:`LabelledImages` (uint8 images, int32 labels, class names
for string labels), which every sampler, scorer and evaluation function takes. The pixel scale
is never guessed: uint8 is 0-255, floats must be in [0, 1] unless ``value_range`` says
otherwise, so images in [0, 255] stored as floats cannot reach a network unscaled.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from oneshot.data.datasets import LabelledImages
from oneshot.data.labels import check_labels, encode_labels, integer_labels
from oneshot.data.preprocess import check_unit_range


def check_image_stack(images: np.ndarray, argument: str = "images") -> np.ndarray:
    """``images`` as (N, H, W) grey or (N, H, W, 3) colour ((N, H, W, 1) squeezed), N >= 1."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if not (images.ndim == 3 or (images.ndim == 4 and images.shape[-1] == 3)) or not len(images):
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected a non-empty stack of grey "
            "(N, H, W) or (N, H, W, 1), or colour (N, H, W, 3) images. Received shape "
            f"{images.shape}."
        )
    return images


def to_uint8(
    images: np.ndarray, value_range: Sequence[float] | None = None, argument: str = "images"
) -> np.ndarray:
    """Pixel values as uint8 0-255, from uint8, floats in [0, 1], or any ``value_range``.

    Args:
        images: the pixel array.
        value_range: ``(low, high)``, the values that mean black and white, e.g. ``(0, 255)``
            for float or int64 arrays of 0-255 values. None: uint8 is kept, floats must be in
            [0, 1], other integer types are refused (their scale is unknown). Defaults to None.
        argument: the argument name used in error messages. Defaults to ``"images"``.
    """
    images = np.asarray(images)
    if value_range is None:
        if images.dtype == np.uint8:
            return images
        if images.dtype.kind != "f":
            raise ValueError(
                f"Invalid value for argument `{argument}`. Expected uint8, or floats in [0, 1]; "
                f"{images.dtype} pixels need their scale: pass value_range, e.g. "
                "value_range=(0, 255)."
            )
        check_unit_range(images, argument)
        low, high = 0.0, 1.0
    else:
        low, high = _check_value_range(value_range)
        if images.dtype.kind not in "fiub":
            raise ValueError(
                f"Invalid value for argument `{argument}`. Expected numbers. Received dtype "
                f"{images.dtype}."
            )
        seen_low, seen_high = float(np.min(images)), float(np.max(images))
        slack = 1e-6 * (high - low)
        if not (seen_low >= low - slack and seen_high <= high + slack):
            raise ValueError(
                f"Invalid value for argument `value_range`. Expected it to hold every pixel "
                f"value. Received: value_range=({low:g}, {high:g}), pixel values in "
                f"[{seen_low:g}, {seen_high:g}]."
            )
        if images.dtype == np.uint8 and (low, high) == (0.0, 255.0):
            return images
    scaled = (images.astype(np.float64) - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _check_value_range(value_range: Sequence[float]) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError):
        low, high = np.nan, np.nan
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(
            "Invalid value for argument `value_range`. Expected (low, high) with low < high, "
            f"e.g. (0, 255). Received: value_range={value_range!r}"
        )
    return low, high


def from_arrays(
    images: np.ndarray, labels, value_range: Sequence[float] | None = None
) -> LabelledImages:
    """Labelled images from your own arrays, stored like the built-in sets.

    Args:
        images: grey (N, H, W) or (N, H, W, 1), or colour (N, H, W, 3): uint8 0-255, or
            floats in [0, 1], or any numbers with ``value_range``.
        labels: (N,) or (N, 1) class of each image, ints or strings.
        value_range: ``(low, high)`` of the pixel values, rescaled to 0-255 (e.g. ``(0, 255)``
            for float images of 0-255 values). None: uint8 is 0-255, floats must be in [0, 1]
            (others are refused with a message, never rescaled silently). Defaults to None.

    Returns:
        A ``LabelledImages``: uint8 images (N, H, W) or (N, H, W, 3); int32 labels (integer
        labels as given; string labels as indices into ``class_names``, their sorted names).

    Raises:
        ValueError: for a bad shape, a pixel scale that is not stated, labels that do not
            match the images, or a single class (metric learning compares classes).

    Example:
    >>> data = from_arrays(photos.astype("float32"), names, value_range=(0, 255))
    >>> data.class_names[data.labels[0]]
    'cat'
    """
    images = check_image_stack(images)
    labels = check_labels(labels, len(images))
    images = to_uint8(images, value_range)
    if labels.dtype.kind in "iu":
        codes, names = integer_labels(labels), None
    else:
        classes, codes = encode_labels(labels)
        names = [str(c) for c in classes]
    if len(np.unique(codes)) < 2:
        raise ValueError(
            "Invalid value for argument `labels`. Expected at least two classes: metric "
            f"learning compares images of different classes. Received one class, {labels[0]!r}."
        )
    return LabelledImages(images, codes, class_names=names)
