"""FAISS (``faiss-cpu``) as the search backend for large galleries, on the same distance scale as
the exact search.

FAISS knows two metrics; each supported ``oneshot.distances.Distance`` maps to one of them and
its scores are converted back to the distance's dissimilarity (smaller = closer), so both
backends return comparable numbers:

=============================  ==========================  ===============================
distance                       FAISS metric                returned distance
=============================  ==========================  ===============================
``LpDistance()`` (Euclidean)   L2 (squared)                ``sqrt(max(s, 0))``
``LpDistance(power=2)``        L2 (squared)                ``max(s, 0)``
``CosineSimilarity()``         inner product, unit rows    ``1 - s``
``DotProductSimilarity()``     inner product               ``-s``
=============================  ==========================  ===============================

``normalize_embeddings=True`` distances see L2-normalised rows, as in ``oneshot.distances``.
Index kinds: ``"flat"`` (exact: ``IndexFlatL2`` / ``IndexFlatIP``), ``"hnsw"``
(``IndexHNSWFlat``: graph, approximate, no training) and ``"ivf"`` (``IndexIVFFlat``: k-means
cells, approximate, trained on the first vectors added). FAISS is imported only when used.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from oneshot.distances import CosineSimilarity, Distance, DotProductSimilarity, LpDistance

FAISS_INDEXES = ("flat", "hnsw", "ivf")
#: parameters of each index kind and their defaults
FAISS_PARAMS: dict[str, dict[str, int]] = {
    "flat": {},
    "hnsw": {"M": 32, "ef_construction": 40, "ef_search": 64},
    "ivf": {"nlist": 1024, "nprobe": 16},
}
INSTALL = "pip install faiss-cpu"


def import_faiss() -> Any:
    """The ``faiss`` module, or an ImportError saying how to install it."""
    try:
        import faiss  # optional dependency (pip install faiss-cpu)
    except ImportError as error:
        raise ImportError(
            f'backend="faiss" needs the faiss package, which is not installed: {INSTALL} '
            '(or use backend="exact", which needs nothing more).'
        ) from error
    return faiss


def faiss_metric(distance: Distance) -> str:
    """``"l2"`` or ``"ip"``: the FAISS metric that ranks like ``distance``; ValueError for the
    distances FAISS cannot compute (L1, RBF)."""
    if type(distance) is LpDistance and distance.p == 2:
        return "l2"
    if type(distance) in (CosineSimilarity, DotProductSimilarity):
        return "ip"
    raise ValueError(
        'Invalid value for argument `distance` with backend="faiss". Expected a Euclidean '
        "(LpDistance(), LpDistance(power=2)), cosine or dot-product distance. Received: "
        f'distance={distance!r} (use backend="exact" for it)'
    )


def check_params(kind: str, params: dict[str, Any] | None) -> dict[str, int]:
    """``params`` completed with the defaults of index ``kind``; unknown names are refused."""
    defaults = FAISS_PARAMS[kind]
    params = dict(params or {})
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(
            f"Invalid value for argument `faiss_params`. Expected some of {tuple(defaults)} for "
            f"faiss_index={kind!r}. Received: unknown {unknown}"
        )
    for name, value in params.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(
                f"Invalid value for argument `faiss_params`. Expected {name} an int >= 1. "
                f"Received: {name}={value!r}"
            )
    return {**defaults, **{name: int(value) for name, value in params.items()}}


class FaissSearcher:
    """A FAISS index over the gallery, returning the distance's dissimilarities.

    Args:
        distance: a distance :func:`faiss_metric` accepts.
        dim: embedding width D.
        kind: one of ``FAISS_INDEXES``. Defaults to ``"flat"``.
        params: index parameters (``FAISS_PARAMS``); missing ones take their defaults.
    """

    def __init__(
        self, distance: Distance, dim: int, kind: str = "flat", params: dict | None = None
    ) -> None:
        self.faiss = import_faiss()
        self.distance, self.dim, self.kind = distance, int(dim), kind
        self.metric = faiss_metric(distance)
        self.params = check_params(kind, params)
        self.index = self._build()

    def _build(self) -> Any:
        faiss, d, p = self.faiss, self.dim, self.params
        metric = faiss.METRIC_L2 if self.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        if self.kind == "flat":
            return faiss.IndexFlatL2(d) if self.metric == "l2" else faiss.IndexFlatIP(d)
        if self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, p["M"], metric)
            index.hnsw.efConstruction = p["ef_construction"]
            index.hnsw.efSearch = p["ef_search"]
            return index
        quantizer = faiss.IndexFlatL2(d) if self.metric == "l2" else faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, p["nlist"], metric)
        index.nprobe = p["nprobe"]  # faiss's Python wrapper keeps the quantizer alive
        return index

    def _rows(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, np.float32)
        if self.distance.normalize_embeddings:
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(x, np.float32)

    def add(self, vectors: np.ndarray) -> None:
        """Add gallery rows (N, D); an IVF index is trained on the first rows it gets (at least
        ``nlist`` of them)."""
        x = self._rows(vectors)
        if not self.index.is_trained:
            if len(x) < self.params["nlist"]:
                raise ValueError(
                    f"Invalid value for argument `faiss_params`. An IVF index with nlist="
                    f"{self.params['nlist']} cells is trained on the first embeddings added and "
                    f"needs at least nlist of them. Received: {len(x)} embeddings (lower nlist)"
                )
            self.index.train(x)
        self.index.add(x)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(distances, indices)`` (Q, k): float32 dissimilarities and int64 rows, ascending.
        An approximate index may find fewer than k: those slots hold index -1, distance inf."""
        scores, indices = self.index.search(self._rows(queries), k)
        if self.metric == "l2":
            distances = np.maximum(scores, 0.0)
            if self.distance.power == 1:
                distances = np.sqrt(distances)
        else:
            distances = np.asarray(self.distance.dissimilarity(scores))
        distances = np.where(indices < 0, np.inf, distances).astype(np.float32)
        order = np.lexsort((np.where(indices < 0, np.iinfo(np.int64).max, indices), distances))
        return (
            np.take_along_axis(distances, order, axis=1),
            np.take_along_axis(indices.astype(np.int64), order, axis=1),
        )

    def to_bytes(self) -> np.ndarray:
        """The index serialised by FAISS, as a uint8 array (to store beside the embeddings)."""
        return np.asarray(self.faiss.serialize_index(self.index), np.uint8)

    @classmethod
    def from_bytes(
        cls, data: np.ndarray, distance: Distance, dim: int, kind: str, params: dict
    ) -> FaissSearcher:
        """A searcher around an index stored by :meth:`to_bytes`."""
        searcher = cls(distance, dim, kind, params)
        searcher.index = searcher.faiss.deserialize_index(np.asarray(data, np.uint8))
        if kind == "hnsw":
            searcher.index.hnsw.efSearch = searcher.params["ef_search"]
        elif kind == "ivf":
            searcher.index.nprobe = searcher.params["nprobe"]
        return searcher

    def __len__(self) -> int:
        return int(self.index.ntotal)
