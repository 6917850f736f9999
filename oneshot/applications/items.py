"""The items of an embedding index: embeddings and queries checked, their labels and ids
(integers or strings, checked), the rows a search returns (:class:`SearchResult`) and the
gathering of their labels and ids."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

EMBED_FIRST = (
    "embed them first (index.search_images(model, images), or Scorer(model).embed(images))"
)


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """The k nearest gallery items of each query, ascending by distance (ties: smaller index).

    Attributes:
        distances: float32 (Q, k) dissimilarities, smaller = more alike.
        indices: int64 (Q, k) rows of the gallery (insertion order).
        labels: (Q, k) labels of those rows (int64 or unicode), or None for an unlabelled index.
        ids: (Q, k) item ids of those rows (int64 or unicode).

    An approximate FAISS index may find fewer than k neighbours: the missing slots hold index
    -1, distance ``inf``, and label / id -1 (integers) or ``""`` (strings).
    """

    distances: np.ndarray
    indices: np.ndarray
    labels: np.ndarray | None
    ids: np.ndarray

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])

    def __len__(self) -> int:
        return int(self.indices.shape[0])


def read_only(values: np.ndarray) -> np.ndarray:
    view = values.view()
    view.flags.writeable = False
    return view


def item_keys(values: Any, n: int, argument: str, existing: np.ndarray | None) -> np.ndarray:
    """Labels or ids as int64 or unicode (n,); refuses other kinds, a wrong length, and a kind
    that differs from the ``existing`` ones."""
    array = np.asarray(values)
    if array.dtype.kind == "O":
        kinds = {type(v) for v in array.ravel()}
        if kinds and all(issubclass(t, str) for t in kinds):
            array = array.astype(str)
        elif kinds and all(issubclass(t, (int, np.integer)) and t is not bool for t in kinds):
            array = array.astype(np.int64)
    if array.dtype.kind == "S":
        array = array.astype(str)
    if array.dtype.kind not in "iuU" or array.ndim != 1:
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected a 1-D sequence of integers or "
            f"of strings. Received: {argument} of dtype {array.dtype} and shape {array.shape}"
        )
    if len(array) != n:
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected one per embedding ({n}). "
            f"Received: {len(array)}"
        )
    array = array.astype(np.int64) if array.dtype.kind in "iu" else array
    if existing is not None and (existing.dtype.kind == "U") != (array.dtype.kind == "U"):
        kind = "strings" if existing.dtype.kind == "U" else "integers"
        raise ValueError(
            f"Invalid value for argument `{argument}`. This index's {argument} are {kind}. "
            f"Received: {argument} of dtype {array.dtype}"
        )
    return array


def check_unique(ids: np.ndarray) -> None:
    values, counts = np.unique(ids, return_counts=True)
    if len(values) != len(ids):
        repeated = values[counts > 1][:3].tolist()
        raise ValueError(
            "Invalid value for argument `ids`. Expected ids unique in the index. Received: "
            f"{int((counts > 1).sum())} repeated, e.g. {repeated}"
        )


def gather_items(values: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``values[indices]``, with -1 (not found) mapped to -1 or ""."""
    out = values[np.maximum(indices, 0)]
    missing = indices < 0
    if missing.any():
        out[missing] = "" if values.dtype.kind == "U" else -1
    return out


def check_exclude(exclude: Any, n: int, size: int) -> np.ndarray:
    """``exclude`` as int64 (n,) gallery rows in [-1, size); else a ValueError."""
    rows = np.asarray(exclude)
    if (
        rows.shape != (n,)
        or rows.dtype.kind not in "iu"
        or (n and (rows.min() < -1 or rows.max() >= size))
    ):
        raise ValueError(
            "Invalid value for argument `exclude`. Expected (Q,) integer gallery rows in "
            f"[-1, {size}), one per query (Q={n}). Received: dtype {rows.dtype}, "
            f"shape {rows.shape}"
        )
    return rows.astype(np.int64)


def check_vectors(values: Any, argument: str, dim: int | None) -> np.ndarray:
    """``values`` as float32 (n, D), finite, with D = ``dim`` when given; else a ValueError."""
    x = np.asarray(values)
    if x.ndim != 2 or x.dtype.kind != "f":
        hint = f"; images? {EMBED_FIRST}" if x.ndim in (3, 4) or x.dtype.kind in "iu" else ""
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected float embeddings of shape "
            f"(n, D). Received: {argument} of dtype {x.dtype} and shape {x.shape}{hint}"
        )
    if dim is not None and x.shape[1] != dim:
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected embeddings of width "
            f"D={dim} (this index's). Received: shape {x.shape}"
        )
    if not len(x) or not x.shape[1]:
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected at least one embedding of "
            f"width >= 1. Received: shape {x.shape}"
        )
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected finite values. Received: "
            f"{len(bad)} rows with NaN or inf (first: row {bad[0]})"
        )
    return np.ascontiguousarray(x, np.float32)


def check_image_shape(
    x: np.ndarray, expected: Sequence[int | None], model: str, received: tuple[int, ...]
) -> None:
    """A ValueError unless images ``x`` (N, H, W, C) have the ``expected`` (H, W, C) of the
    index's ``model`` (``received``: the shape the user passed, for the message)."""
    if len(expected) != x.ndim - 1 or any(
        e is not None and e != s for e, s in zip(expected, x.shape[1:], strict=False)
    ):
        raise ValueError(
            f"Invalid value for argument `images`. Expected images of shape (N, "
            f"{', '.join(map(str, expected))}) for model {model}. Received shape {received}"
        )
