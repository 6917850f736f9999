"""What distances, miners and reducers share: small immutable objects defined by their config.

:class:`Piece` gives them equality, hashing, ``repr`` and ``from_config`` from ``get_config``;
:func:`resolve` turns what a user may pass for one (the object, a short name, a Keras config
dict, or None for the default) into the object, with one error message shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import keras

T = TypeVar("T", bound="Piece")


def register(cls: type) -> type:
    """Register a class with Keras serialization under the "oneshot" package."""
    return keras.saving.register_keras_serializable(package="oneshot")(cls)


class Piece:
    """Base of the small serializable pieces: defined entirely by :meth:`get_config`."""

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls: type[T], config: dict[str, Any]) -> T:
        return cls(**config)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def resolve(
    value: Any,
    base: type[T],
    names: Mapping[str, Callable[[], T]],
    argument: str,
    default: Callable[[], T] | None = None,
) -> T:
    """``value`` as an instance of ``base``: the object itself, ``names[value]()`` for a short
    name, the object a Keras config dict describes, or ``default()`` for None (when given)."""
    if value is None and default is not None:
        return default()
    if isinstance(value, base):
        return value
    kind = f"{base.__module__.rsplit('.', 1)[0]}.{base.__name__}"
    if isinstance(value, dict):
        try:
            obj = keras.saving.deserialize_keras_object(value)
        except (TypeError, ValueError, KeyError) as error:
            raise ValueError(
                f"Invalid value for argument `{argument}`. Expected the Keras config of a "
                f"{kind}. Received: {argument}={value!r} ({error})"
            ) from error
        if isinstance(obj, base):
            return obj
    if isinstance(value, str) and value in names:
        return names[value]()
    raise ValueError(
        f"Invalid value for argument `{argument}`. Expected a {kind} or one of "
        f"{tuple(names)}. Received: {argument}={value!r}"
    )
