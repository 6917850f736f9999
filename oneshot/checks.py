"""Argument checks shared by every module, with one error message shape (as in Keras):
"Invalid value for argument `x`. Expected one of (...). Received: x=..."."""

from __future__ import annotations

from typing import Any

import numpy as np

MIN_IMAGE_SIZE = 16  # conv4's four 2x2 poolings need 16 pixels a side


def check_choice(argument: str, value: Any, options: tuple) -> Any:
    """Return ``value`` if it is one of ``options``, else raise a ValueError naming them."""
    if value not in options:
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected one of {options}. "
            f"Received: {argument}={value!r}"
        )
    return value


def check_embeddings(embeddings: Any, argument: str = "embeddings") -> Any:
    """Return ``embeddings`` if it is a float (N, D) matrix, else raise a ValueError that says
    what arrived (images, integers) and what to do.

    Only dtype and shape are read (no pass over the values), so the check is free.
    """
    shape = getattr(embeddings, "shape", None)
    dtype = getattr(embeddings, "dtype", None)
    if shape is None or dtype is None:  # a list
        embeddings = np.asarray(embeddings)
        shape, dtype = embeddings.shape, embeddings.dtype
    shape, dtype = tuple(shape), np.dtype(getattr(dtype, "as_numpy_dtype", dtype))
    if len(shape) in (3, 4) or (len(shape) == 2 and dtype == np.uint8):
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected embeddings (N, D) float; got "
            f"images of shape {shape} ({dtype}): embed them first with Scorer.embed(images)."
        )
    if len(shape) != 2 or dtype.kind != "f":
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected embeddings (N, D) float "
            f"(from Scorer.embed). Received shape {shape}, dtype {dtype}."
        )
    return embeddings
