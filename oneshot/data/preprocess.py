"""Turn stored images (uint8, strokes bright) into network input (float32 in [0, 1], channel last).

The networks expect values in [0, 1]. uint8 images are divided by 255; float images must
already be in [0, 1]. Float images in [0, 255] are refused, never passed on unscaled: a network
fed them sees values 255 times too large and gives no error, only useless embeddings.
"""

from __future__ import annotations

import numpy as np

# Luma weights of ITU-R BT.601 (the ones Pillow's ``convert("L")`` uses).
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_TOLERANCE = 1e-6  # floats a rounding error outside [0, 1] are accepted


def check_unit_range(images: np.ndarray, argument: str = "images") -> None:
    """Raise a ValueError if float (or non-uint8 integer) ``images`` leave [0, 1].

    uint8 images pass (they are divided by 255 later); the message says how to rescale.
    """
    images = np.asarray(images)
    if images.dtype == np.uint8 or images.size == 0:
        return
    low, high = float(np.min(images)), float(np.max(images))
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected finite pixel values. "
            f"Received {images.dtype} values with NaN or infinity."
        )
    if low < -_TOLERANCE or high > 1.0 + _TOLERANCE:
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected uint8 in [0, 255] or floats "
            f"in [0, 1]. Received {images.dtype} values in [{low:g}, {high:g}]: divide them by "
            "255 if they are 0-255 pixel values, or state their range with "
            "oneshot.data.from_arrays(images, labels, value_range=(0, 255))."
        )


def to_model_input(images: np.ndarray) -> np.ndarray:
    """Return ``images`` as float32 (N, H, W, C) in [0, 1].

    Accepts uint8 (N, H, W), (N, H, W, 1) or (N, H, W, 3) in [0, 255], or floats already in
    [0, 1]; grey (N, H, W) gets a channel axis, colour keeps its 3 channels.

    Raises:
        ValueError: for another shape, or float values outside [0, 1] (e.g. 0-255 floats:
            divide them by 255, or use ``oneshot.data.from_arrays(..., value_range=(0, 255))``).
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(
            "Invalid value for argument `images`. Expected shape (N, H, W) or (N, H, W, C). "
            f"Received shape {images.shape}."
        )
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    check_unit_range(images)
    return images.astype(np.float32, copy=False)


def to_grayscale(images: np.ndarray) -> np.ndarray:
    """uint8 colour images (N, H, W, 3) -> grey (N, H, W) by their luma (ITU-R BT.601).

    Grey images, (N, H, W) or (N, H, W, 1), are returned as (N, H, W) unchanged. For a
    network built for grey images (``input_shape=(H, W, 1)``).
    """
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        return images[..., 0]
    if images.ndim == 3:
        return images
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(
            "Invalid value for argument `images`. Expected uint8 (N, H, W, 3) colour or "
            f"(N, H, W) grey images. Received shape {images.shape}, dtype {images.dtype}."
        )
    return np.clip(np.rint(images.astype(np.float32) @ _LUMA), 0, 255).astype(np.uint8)
