"""Argument checks shared by every module, with one error message shape (as in Keras):
"Invalid value for argument `x`. Expected one of (...). Received: x=..."."""

from __future__ import annotations

from numbers import Real
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


def check_number(
    argument: str, value: Any, allow_none: bool = False, minimum: float | None = 0.0
) -> float | None:
    """``value`` as a float if it is a real number ``>= minimum`` (or None when allowed)."""
    if value is None and allow_none:
        return None
    ok = isinstance(value, Real) and not isinstance(value, bool) and np.isfinite(value)
    if not ok or (minimum is not None and value < minimum):
        expected = "a finite number" + (f" >= {minimum}" if minimum is not None else "")
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected {expected}"
            f"{' or None' if allow_none else ''}. Received: {argument}={value!r}"
        )
    return float(value)


def check_positive(argument: str, value: Any) -> float:
    """``value`` as a float if it is a finite number > 0 (scales, temperatures), else a
    ValueError naming the argument."""
    value = check_number(argument, value, minimum=0.0)
    if value <= 0:
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected a finite number > 0. "
            f"Received: {argument}={value!r}"
        )
    return value


def check_count(argument: str, value: Any, minimum: int) -> int:
    """``value`` as an int if it is an integer >= ``minimum``, else a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected an integer >= {minimum}. "
            f"Received: {argument}={value!r}"
        )
    return int(value)
