"""Which model made an embedding: a fingerprint of the embedding network, so that an index (or
any stored set of embeddings) can refuse embeddings from another model.

Embeddings of two different networks live in different spaces: comparing them gives numbers
that look fine and mean nothing. :class:`ModelIdentity` records the network's name, a sha256 over
its input shape, output width and every weight (the BatchNormalization statistics included,
since they change the output), and the test-time shift averaging used to embed. The name is
shown in messages but is not part of the fingerprint: a renamed copy embeds identically.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import keras
import numpy as np

from oneshot.models.layers import EMBEDDING_NAME as EMBEDDING_LAYER

FINGERPRINT_PREFIX = "sha256:"


def embedding_network(model: keras.Model) -> keras.Model:
    """The network that makes the embeddings: a oneshot model's ``"embedding"`` layer, else
    ``model`` itself (a bare embedding network), as :meth:`oneshot.evaluation.scoring.Scorer.from_model`
    reads it."""
    if not isinstance(model, keras.Model):
        raise ValueError(
            "Invalid value for argument `model`. Expected a keras.Model (a oneshot model or an "
            f"embedding network). Received: model of type {type(model).__name__}"
        )
    names = {layer.name for layer in model.layers}
    return model.get_layer(EMBEDDING_LAYER) if EMBEDDING_LAYER in names else model


def _shape(shape: Any) -> list[int | None]:
    if isinstance(shape, list):  # several inputs: not an embedding network
        raise ValueError(
            "Invalid value for argument `model`. Expected an embedding network with one input. "
            f"Received a model with input shapes {shape}"
        )
    return [None if n is None else int(n) for n in shape]


def model_fingerprint(model: keras.Model) -> str:
    """``"sha256:<hex>"`` over the embedding network's input shape, output shape and weights.

    The same weights give the same fingerprint in any process (saved and reloaded, or inside a
    training model: a oneshot model and its ``"embedding"`` layer agree); one changed weight
    changes it. Each weight contributes its shape, dtype and bytes, in the network's order.

    Args:
        model: a oneshot model or a bare embedding network.

    Returns:
        The fingerprint string.
    """
    network = embedding_network(model)
    digest = hashlib.sha256()
    digest.update(repr((_shape(network.input_shape), _shape(network.output_shape))).encode())
    for weight in network.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
        digest.update(f"{value.shape}{value.dtype.str}".encode())
        digest.update(value.tobytes())
    return FINGERPRINT_PREFIX + digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class ModelIdentity:
    """What made a set of embeddings: the network's name, fingerprint and embedding recipe.

    Args:
        name: the embedding network's name (messages only).
        fingerprint: :func:`model_fingerprint` of the network.
        input_shape: the network's input shape without the batch axis, e.g. ``(28, 28, 1)``.
        embedding_dim: the width D of its embeddings.
        shifts: test-time shift averaging used to embed (``Scorer(shifts=...)``). Defaults to 0.
    """

    name: str
    fingerprint: str
    input_shape: tuple[int | None, ...]
    embedding_dim: int
    shifts: int = 0

    @classmethod
    def of(cls, model: keras.Model, shifts: int = 0) -> ModelIdentity:
        """The identity of ``model`` (a oneshot model or a bare embedding network)."""
        network = embedding_network(model)
        output = _shape(network.output_shape)
        if len(output) != 2 or output[1] is None:
            raise ValueError(
                "Invalid value for argument `model`. Expected an embedding network with output "
                f"shape (None, D). Received: model {network.name!r} with output shape "
                f"{network.output_shape}"
            )
        return cls(
            name=str(network.name),
            fingerprint=model_fingerprint(network),
            input_shape=tuple(_shape(network.input_shape)[1:]),
            embedding_dim=int(output[1]),
            shifts=int(shifts),
        )

    def short(self) -> str:
        """``'name' (sha256:0123456789ab, shifts=1)`` for messages."""
        shifts = f", shifts={self.shifts}" if self.shifts else ""
        return f"{self.name!r} ({self.fingerprint[: len(FINGERPRINT_PREFIX) + 12]}{shifts})"

    def matches(self, other: ModelIdentity) -> bool:
        """True when embeddings made by ``other`` are comparable with ours (same fingerprint
        and the same shift averaging; the name does not matter)."""
        return (self.fingerprint, self.shifts) == (other.fingerprint, other.shifts)

    def check(self, other: ModelIdentity, what: str = "this index") -> None:
        """Raise a ValueError naming both models unless ``other`` :meth:`matches` us."""
        if not self.matches(other):
            raise ValueError(
                f"The query model {other.short()} is not the model {what} was built with "
                f"{self.short()}: embeddings of different models are not comparable. Query "
                "with the model the index was built with, or rebuild the index with this one."
            )

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "input_shape": list(self.input_shape)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelIdentity:
        return cls(**{**data, "input_shape": tuple(data["input_shape"])})
