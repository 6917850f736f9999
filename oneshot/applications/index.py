"""An embedding index: a user's gallery of embeddings with labels and item ids, searched by k-NN.

The layer after evaluation: a trained embedding network is used on a gallery (identify a
query, verify a claim, find near duplicates ...). :class:`EmbeddingIndex` holds the gallery
embeddings (float32 (N, D)), their labels (integers or strings, optional), their item ids
(integers or strings such as file paths), the distance they are compared with, and the identity
of the model that made them, so that queries from another model are refused.

Backends, chosen by argument:

- ``"exact"`` (default): brute force, block by block (:mod:`oneshot.applications.exact`); memory
  O(block) whatever the number of queries; no extra dependency; any ``oneshot.distances``
  distance.
- ``"faiss"``: FAISS (``pip install faiss-cpu``) for large galleries; ``faiss_index="flat"`` is
  exact, ``"hnsw"`` and ``"ivf"`` approximate (:mod:`oneshot.applications.faiss_backend`).
  Euclidean, squared Euclidean, cosine and dot product, on the exact backend's scale.

Results are dissimilarities, smaller = more alike (the convention of ``oneshot.evaluation.scoring``):
``1 - cos`` for cosine, the Euclidean distance itself (not its square) for ``LpDistance()``.

Example:
>>> index = EmbeddingIndex(distance="cosine")
>>> index.add(np.eye(3, dtype=np.float32), labels=["a", "b", "c"], ids=["x.png", "y.png", "z.png"])
>>> result = index.search(np.array([[1.0, 0.1, 0.0]], np.float32), k=2)
>>> result.labels.tolist(), result.ids.tolist()
([['a', 'b']], [['x.png', 'y.png']])
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import keras
import numpy as np

from oneshot.applications.exact import DEFAULT_BLOCK_ELEMENTS, exact_search
from oneshot.applications.faiss_backend import (
    FAISS_INDEXES,
    FaissSearcher,
    check_params,
    faiss_metric,
    import_faiss,
)
from oneshot.applications.storage import IndexFileError, read_index_file, write_index_file
from oneshot.checks import check_choice
from oneshot.data.preprocess import to_model_input
from oneshot.distances import Distance, get_distance
from oneshot.evaluation.scoring import Scorer, trained_distance
from oneshot.models.identity import ModelIdentity, embedding_network
from oneshot.version import __version__

BACKENDS = ("exact", "faiss")
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


class EmbeddingIndex:
    """Gallery embeddings with labels and ids, searched by exact or FAISS k-NN.

    Args:
        distance: a ``oneshot.distances.Distance`` or a legacy name ("euclidean", "cosine",
            ...). Use the distance the model was trained with (:meth:`for_model` reads it).
            Defaults to "euclidean".
        backend: ``"exact"`` or ``"faiss"``. Defaults to ``"exact"``.
        model: the model that makes the embeddings (a keras.Model or its
            :class:`ModelIdentity`), recorded so that queries from another model are refused.
            None for embeddings of unknown origin. Defaults to None.
        faiss_index: ``"flat"`` (exact), ``"hnsw"`` or ``"ivf"`` (approximate); backend
            ``"faiss"`` only. Defaults to ``"flat"``.
        faiss_params: parameters of the FAISS index: ``M``, ``ef_construction``, ``ef_search``
            (hnsw); ``nlist``, ``nprobe`` (ivf). Defaults to None (FAISS_PARAMS' values).
        block_elements: exact backend's working set: distances per block (query rows x gallery
            rows). Memory stays O(block_elements + Q x k) for any Q. Defaults to 2**22.
    """

    def __init__(
        self,
        distance: Distance | str = "euclidean",
        backend: str = "exact",
        *,
        model: keras.Model | ModelIdentity | None = None,
        faiss_index: str = "flat",
        faiss_params: dict[str, int] | None = None,
        block_elements: int = DEFAULT_BLOCK_ELEMENTS,
    ) -> None:
        self.distance = get_distance(distance)
        self.backend = check_choice("backend", backend, BACKENDS)
        self.faiss_index = check_choice("faiss_index", faiss_index, FAISS_INDEXES)
        self.faiss_params = check_params(faiss_index, faiss_params)
        if backend == "faiss":
            faiss_metric(self.distance)  # refuse a distance FAISS cannot compute, now
            import_faiss()  # and say how to install FAISS before any work
        if isinstance(block_elements, bool) or not isinstance(block_elements, int):
            block_elements = -1
        if block_elements < 1:
            raise ValueError(
                "Invalid value for argument `block_elements`. Expected an int >= 1. "
                f"Received: block_elements={block_elements!r}"
            )
        self.block_elements = block_elements
        if model is not None and not isinstance(model, ModelIdentity):
            model = ModelIdentity.of(model)
        self.model: ModelIdentity | None = model
        self._embeddings = np.zeros((0, model.embedding_dim if model else 0), np.float32)
        self._dim: int | None = model.embedding_dim if model else None
        self._labels: np.ndarray | None = None
        self._ids = np.zeros(0, np.int64)
        self._faiss: FaissSearcher | None = None

    @classmethod
    def for_model(
        cls, model: keras.Model, distance: Distance | str | None = None, shifts: int = 0, **kwargs
    ) -> EmbeddingIndex:
        """An empty index for ``model``'s embeddings, with the distance it was trained with
        (``distance`` overrides it; a bare network that records none needs it).

        Args:
            model: a oneshot model or a bare embedding network.
            distance: None for the model's own distance. Defaults to None.
            shifts: test-time shift averaging to embed with (as ``Scorer(shifts=...)``);
                recorded, and used for every query. Defaults to 0.
            **kwargs: the other arguments of :class:`EmbeddingIndex`.
        """
        if distance is None:
            distance = trained_distance(model)
            if distance is None:
                raise ValueError(
                    f"Model {model.name!r} records no distance (it is not a oneshot training "
                    "model, or it scores pairs with a learned head). Pass `distance=`, e.g. "
                    "EmbeddingIndex.for_model(model, distance='euclidean')."
                )
        return cls(distance, model=ModelIdentity.of(model, shifts), **kwargs)

    # --------------------------------------------------------------------------- contents
    def __len__(self) -> int:
        return len(self._ids)

    @property
    def dim(self) -> int | None:
        """Embedding width D (None before the first :meth:`add` of an index without a model)."""
        return self._dim

    @property
    def embeddings(self) -> np.ndarray:
        """The gallery embeddings, float32 (N, D), read-only."""
        return _read_only(self._embeddings)

    @property
    def labels(self) -> np.ndarray | None:
        """Labels (N,), int64 or unicode, read-only; None for an unlabelled index."""
        return None if self._labels is None else _read_only(self._labels)

    @property
    def ids(self) -> np.ndarray:
        """Item ids (N,), int64 or unicode, read-only."""
        return _read_only(self._ids)

    def __repr__(self) -> str:
        model = self.model.short() if self.model else None
        return (
            f"EmbeddingIndex(size={len(self)}, dim={self.dim}, distance={self.distance!r}, "
            f"backend={self.backend!r}, model={model})"
        )

    # --------------------------------------------------------------------------- adding
    def add(
        self,
        embeddings: np.ndarray,
        labels: Any = None,
        ids: Any = None,
    ) -> None:
        """Add gallery items.

        Args:
            embeddings: float (n, D) embeddings, finite; D fixed by the first call (or by the
                model).
            labels: n labels, all integers or all strings; either every call passes labels or
                none does. Defaults to None.
            ids: n item ids, all integers or all strings (e.g. file paths), unique in the index.
                Defaults to None: the running positions ``len(index) .. len(index) + n - 1``
                (integer ids only).
        """
        x = self._check_vectors(embeddings, "embeddings")
        if isinstance(embeddings, np.ndarray) and np.may_share_memory(x, embeddings):
            x = x.copy()  # the index owns its gallery: later changes to the caller's array
        n = len(x)
        if labels is None and self._labels is not None and len(self):
            raise ValueError(
                "Invalid value for argument `labels`. This index is labelled: expected "
                f"{n} labels. Received: labels=None"
            )
        if labels is not None and self._labels is None and len(self):
            raise ValueError(
                "Invalid value for argument `labels`. This index was built without labels. "
                "Received: labels (rebuild the index with labels for every item)"
            )
        new_labels = None if labels is None else _keys(labels, n, "labels", self._labels)
        if ids is None:
            if self._ids.dtype.kind == "U":
                raise ValueError(
                    "Invalid value for argument `ids`. This index has string ids: expected "
                    f"{n} ids. Received: ids=None"
                )
            new_ids = np.arange(len(self), len(self) + n, dtype=np.int64)
        else:
            new_ids = _keys(ids, n, "ids", self._ids if len(self) else None)
        all_ids = np.concatenate([self._ids, new_ids]) if len(self) else new_ids
        _check_unique(all_ids)
        if self.backend == "faiss":
            if self._faiss is None:
                self._faiss = FaissSearcher(
                    self.distance, x.shape[1], self.faiss_index, self.faiss_params
                )
            self._faiss.add(x)
        self._embeddings = np.concatenate([self._embeddings, x]) if len(self) else x
        self._dim = x.shape[1]
        self._ids = all_ids
        if new_labels is not None:
            self._labels = (
                new_labels if self._labels is None else np.concatenate([self._labels, new_labels])
            )

    def add_images(
        self,
        model: keras.Model,
        images: np.ndarray,
        labels: Any = None,
        ids: Any = None,
        batch_size: int = 512,
    ) -> None:
        """Embed ``images`` with ``model`` and :meth:`add` them. The model must be the index's
        (an index without a model and still empty takes this one's identity)."""
        if self.model is not None or len(self):
            self.add(self._embed(model, images, batch_size), labels=labels, ids=ids)
            return
        self.model = ModelIdentity.of(model)  # an empty index adopts the model ...
        self._dim = self.model.embedding_dim
        try:
            self.add(self._embed(model, images, batch_size), labels=labels, ids=ids)
        except BaseException:
            self.model, self._dim = None, None  # ... only once its images are in
            raise

    # --------------------------------------------------------------------------- searching
    def search(
        self, queries: np.ndarray, k: int = 10, exclude: np.ndarray | None = None
    ) -> SearchResult:
        """The ``k`` nearest gallery items of each query embedding.

        Args:
            queries: float (Q, D) embeddings made by the index's model (use
                :meth:`search_images` to have that checked).
            k: neighbours per query, >= 1. A k larger than the index is clipped to its size:
                the result then has ``len(index)`` columns (``len(index) - 1`` with
                ``exclude``). Defaults to 10.
            exclude: (Q,) one gallery row to leave out of each query's neighbours, -1 for
                none: e.g. ``np.arange(len(index))`` to search the index with its own items,
                leave-one-out (the query itself is never its own neighbour). Defaults to None.

        Returns:
            A :class:`SearchResult` of (Q, min(k, N)) arrays, ascending by distance.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(
                f"Invalid value for argument `k`. Expected an int >= 1. Received: k={k!r}"
            )
        if not len(self):
            raise ValueError("This index is empty: add embeddings with index.add(...) first.")
        q = self._check_vectors(queries, "queries")
        skip = None if exclude is None else self._check_exclude(exclude, len(q))
        k = min(int(k), len(self) - (skip is not None))
        if k < 1:
            raise ValueError(
                "Invalid value for argument `exclude`. This index holds one item: with it left "
                "out, no neighbour remains. Add items first."
            )
        fetch = k if skip is None else k + 1  # one more, in case the excluded row is found
        if self.backend == "faiss":
            distances, indices = self._faiss.search(q, fetch)
        else:
            distances, indices = exact_search(
                q, self._embeddings, fetch, self.distance, self.block_elements
            )
        if skip is not None:
            kept = (indices != skip[:, None]) | (skip[:, None] < 0)
            order = np.argsort(~kept, axis=1, kind="stable")[:, :k]  # kept first, order kept
            distances = np.take_along_axis(distances, order, axis=1)
            indices = np.take_along_axis(indices, order, axis=1)
        labels = None if self._labels is None else _gather(self._labels, indices)
        return SearchResult(distances, indices, labels, _gather(self._ids, indices))

    def search_images(
        self, model: keras.Model, images: np.ndarray, k: int = 10, batch_size: int = 512
    ) -> SearchResult:
        """:meth:`search` for images, embedded by ``model`` after checking it is the index's
        model (the same fingerprint); another model is refused with both names."""
        return self.search(self._embed(model, images, batch_size), k=k)

    def check_model(self, model: keras.Model) -> None:
        """Raise a ValueError unless ``model`` is the model this index was built with."""
        if self.model is None:
            raise ValueError(
                "This index records no model (it was built from embeddings of unknown origin), "
                "so it cannot check queries from one. Build it with EmbeddingIndex.for_model("
                "model) or model=..., or search embeddings with index.search."
            )
        self.model.check(ModelIdentity.of(model, self.model.shifts))

    def _embed(self, model: keras.Model, images: np.ndarray, batch_size: int) -> np.ndarray:
        self.check_model(model)
        x = to_model_input(images)
        expected = self.model.input_shape
        if len(expected) != x.ndim - 1 or any(
            e is not None and e != s for e, s in zip(expected, x.shape[1:], strict=False)
        ):
            raise ValueError(
                f"Invalid value for argument `images`. Expected images of shape (N, "
                f"{', '.join(map(str, expected))}) for model {self.model.short()}. Received "
                f"shape {np.shape(images)}"
            )
        scorer = Scorer(
            embedding_network(model), self.distance, batch_size=batch_size, shifts=self.model.shifts
        )
        return scorer.embed(x)

    # --------------------------------------------------------------------------- files
    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the index to one ``.npz`` file, atomically (see
        :mod:`oneshot.applications.storage`); return its path.

        Args:
            path: the file, e.g. ``"gallery.npz"``.
            overwrite: replace an existing file. Defaults to False.
        """
        metadata = {
            "oneshot_version": __version__,
            "distance": keras.saving.serialize_keras_object(self.distance),
            "backend": self.backend,
            "faiss_index": self.faiss_index,
            "faiss_params": self.faiss_params,
            "block_elements": self.block_elements,
            "model": self.model.to_json() if self.model else None,
            "size": len(self),
            "dim": self.dim,
        }
        arrays = {"embeddings": self._embeddings, "ids": self._ids}
        if self._labels is not None:
            arrays["labels"] = self._labels
        if self._faiss is not None and self.faiss_index != "flat":  # costly or random to rebuild
            arrays["faiss"] = self._faiss.to_bytes()
        return write_index_file(path, metadata, arrays, overwrite)

    @classmethod
    def load(cls, path: str | Path, backend: str | None = None) -> EmbeddingIndex:
        """Read an index written by :meth:`save`.

        Args:
            path: the file.
            backend: search with another backend than the saved one (e.g. ``"exact"`` on a
                machine without FAISS). Defaults to None (the saved backend).

        Returns:
            The index; its searches give the saved index's results.
        """
        if backend is not None:
            check_choice("backend", backend, BACKENDS)
        metadata, arrays = read_index_file(path)
        try:
            index = cls(
                metadata["distance"],
                backend=metadata["backend"] if backend is None else backend,
                model=ModelIdentity.from_json(metadata["model"]) if metadata["model"] else None,
                faiss_index=metadata["faiss_index"],
                faiss_params=metadata["faiss_params"],
                block_elements=metadata["block_elements"],
            )
            embeddings, ids = arrays["embeddings"], arrays["ids"]
            labels = arrays.get("labels")
            size, dim = metadata["size"], metadata["dim"]
        except (KeyError, TypeError, ValueError) as error:
            raise IndexFileError(
                f"{path} has damaged index metadata ({error!r}). Rebuild it."
            ) from None
        if (
            embeddings.dtype != np.float32
            or embeddings.ndim != 2
            or len(embeddings) != size
            or (size and embeddings.shape[1] != dim)
            or ids.shape != (size,)
            or (labels is not None and labels.shape != (size,))
        ):
            raise IndexFileError(
                f"{path} has arrays that do not match its metadata (size {size}, dim {dim}; "
                f"embeddings {embeddings.dtype} {embeddings.shape}, ids {ids.shape}). Rebuild it."
            )
        if not size:
            return index
        if "faiss" in arrays and index.backend == "faiss":  # the stored approximate index
            index._faiss = FaissSearcher.from_bytes(
                arrays["faiss"], index.distance, dim, index.faiss_index, index.faiss_params
            )
            index._embeddings, index._dim, index._ids, index._labels = embeddings, dim, ids, labels
            return index
        try:
            index.add(embeddings, labels=labels, ids=ids)
        except ValueError as error:
            raise IndexFileError(f"{path} holds invalid items ({error}). Rebuild it.") from None
        return index

    # --------------------------------------------------------------------------- checks
    def _check_exclude(self, exclude: Any, n: int) -> np.ndarray:
        """``exclude`` as int64 (n,) gallery rows in [-1, len(self)); else a ValueError."""
        rows = np.asarray(exclude)
        if (
            rows.shape != (n,)
            or rows.dtype.kind not in "iu"
            or (n and (rows.min() < -1 or rows.max() >= len(self)))
        ):
            raise ValueError(
                "Invalid value for argument `exclude`. Expected (Q,) integer gallery rows in "
                f"[-1, {len(self)}), one per query (Q={n}). Received: dtype {rows.dtype}, "
                f"shape {rows.shape}"
            )
        return rows.astype(np.int64)

    def _check_vectors(self, values: Any, argument: str) -> np.ndarray:
        """``values`` as float32 (n, D) with the index's D, finite; else a ValueError."""
        x = np.asarray(values)
        if x.ndim != 2 or x.dtype.kind != "f":
            hint = f"; images? {EMBED_FIRST}" if x.ndim in (3, 4) or x.dtype.kind in "iu" else ""
            raise ValueError(
                f"Invalid value for argument `{argument}`. Expected float embeddings of shape "
                f"(n, D). Received: {argument} of dtype {x.dtype} and shape {x.shape}{hint}"
            )
        if self._dim is not None and x.shape[1] != self._dim:
            raise ValueError(
                f"Invalid value for argument `{argument}`. Expected embeddings of width "
                f"D={self._dim} (this index's). Received: shape {x.shape}"
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


def _read_only(values: np.ndarray) -> np.ndarray:
    view = values.view()
    view.flags.writeable = False
    return view


def _keys(values: Any, n: int, argument: str, existing: np.ndarray | None) -> np.ndarray:
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


def _check_unique(ids: np.ndarray) -> None:
    values, counts = np.unique(ids, return_counts=True)
    if len(values) != len(ids):
        repeated = values[counts > 1][:3].tolist()
        raise ValueError(
            "Invalid value for argument `ids`. Expected ids unique in the index. Received: "
            f"{int((counts > 1).sum())} repeated, e.g. {repeated}"
        )


def _gather(values: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``values[indices]``, with -1 (not found) mapped to -1 or ""."""
    out = values[np.maximum(indices, 0)]
    missing = indices < 0
    if missing.any():
        out[missing] = "" if values.dtype.kind == "U" else -1
    return out
