"""Argument checks shared by every module, with one error message shape (as in Keras):
"Invalid value for argument `x`. Expected one of (...). Received: x=..."."""

from __future__ import annotations

from typing import Any


def check_choice(argument: str, value: Any, options: tuple) -> Any:
    """Return ``value`` if it is one of ``options``, else raise a ValueError naming them."""
    if value not in options:
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected one of {options}. "
            f"Received: {argument}={value!r}"
        )
    return value
