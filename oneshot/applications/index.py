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

from pathlib import Path
from typing import Any

import keras
import numpy as np

from oneshot.applications.exact import (
    DEFAULT_BLOCK_ELEMENTS,
    check_block_elements,
    exact_search,
)
from oneshot.applications.faiss_backend import (
    FAISS_INDEXES,
    FaissSearcher,
    check_params,
    faiss_metric,
    import_faiss,
)
from oneshot.applications.items import (
    SearchResult,
    check_exclude,
    check_image_shape,
    check_unique,
    check_vectors,
    gather_items,
    item_keys,
    read_only,
)
from oneshot.applications.storage import (
    IndexFileError,
    check_index_arrays,
    read_index_file,
    write_index_file,
)
from oneshot.checks import check_choice
from oneshot.data.preprocess import to_model_input
from oneshot.distances import Distance, get_distance
from oneshot.evaluation.scoring import Scorer, trained_distance
from oneshot.models.identity import ModelIdentity, embedding_network
from oneshot.version import __version__

BACKENDS = ("exact", "faiss")


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
        self.block_elements = check_block_elements(block_elements)
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
        return read_only(self._embeddings)

    @property
    def labels(self) -> np.ndarray | None:
        """Labels (N,), int64 or unicode, read-only; None for an unlabelled index."""
        return None if self._labels is None else read_only(self._labels)

    @property
    def ids(self) -> np.ndarray:
        """Item ids (N,), int64 or unicode, read-only."""
        return read_only(self._ids)

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
        x = check_vectors(embeddings, "embeddings", self._dim)
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
        new_labels = None if labels is None else item_keys(labels, n, "labels", self._labels)
        if ids is None:
            if self._ids.dtype.kind == "U":
                raise ValueError(
                    "Invalid value for argument `ids`. This index has string ids: expected "
                    f"{n} ids. Received: ids=None"
                )
            new_ids = np.arange(len(self), len(self) + n, dtype=np.int64)
        else:
            new_ids = item_keys(ids, n, "ids", self._ids if len(self) else None)
        all_ids = np.concatenate([self._ids, new_ids]) if len(self) else new_ids
        check_unique(all_ids)
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
        q = check_vectors(queries, "queries", self._dim)
        skip = None if exclude is None else check_exclude(exclude, len(q), len(self))
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
        labels = None if self._labels is None else gather_items(self._labels, indices)
        return SearchResult(distances, indices, labels, gather_items(self._ids, indices))

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
        check_image_shape(x, self.model.input_shape, self.model.short(), np.shape(images))
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
        check_index_arrays(path, embeddings, ids, labels, size, dim)
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
