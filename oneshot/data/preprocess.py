"""Turn stored images (uint8, strokes bright) into network input (float32 in [0, 1], channel last)."""

from __future__ import annotations

import numpy as np


def to_model_input(images: np.ndarray) -> np.ndarray:
    """Return ``images`` as float32 (N, H, W, 1) in [0, 1].

    Accepts uint8 (N, H, W) or (N, H, W, 1) in [0, 255], or floats already in [0, 1].
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(
            f"Expected images of shape (N, H, W) or (N, H, W, C). Received shape {images.shape}."
        )
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return images.astype(np.float32, copy=False)
