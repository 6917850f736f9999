"""Search: the nearest gallery images of a query, and how good an index's rankings are.

- :func:`search_quality`: precision@k and MAP@R (Musgrave et al. 2020,
  https://arxiv.org/abs/2003.08505) of a labelled index searched with its own items,
  leave-one-out (an item is never its own neighbour; ``EmbeddingIndex.search(exclude=...)``).
  The metrics are ``oneshot.evaluation.retrieval``'s, on the index's own ranking (exact or
  FAISS).
- :func:`plot_hits`: a PNG strip per query, the query then its neighbours with their
  distances (``oneshot.plots.plot_neighbour_strips``), written atomically.

Usage (the command line is ``python -m oneshot.index``):

>>> index = EmbeddingIndex.load("gallery.npz")
>>> quality = search_quality(index, k=5)
>>> quality.precision_at_k, quality.map_at_r
(0.93, 0.71)
>>> hits = index.search_images(model, queries, k=5)   # SearchResult: labels, ids, distances
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from oneshot.applications.files import atomic_write
from oneshot.applications.index import EmbeddingIndex
from oneshot.applications.items import SearchResult
from oneshot.evaluation.retrieval import retrieval_metrics_from_ranking, same_class_counts
from oneshot.plots.images import plot_neighbour_strips


@dataclasses.dataclass(frozen=True)
class SearchQuality:
    """How well an index ranks its own items (leave-one-out).

    Attributes:
        k: the k of precision@k.
        precision_at_k: mean fraction of the k nearest other items that share the query's
            label.
        precision_at_1: fraction of items whose nearest other item shares its label.
        r_precision: mean fraction of the R nearest that share the label (R = the other items
            of the query's class).
        map_at_r: mean average precision at R.
        queries: items counted (those with at least one other item of their class).
        protocol: how the numbers were made.
    """

    k: int
    precision_at_k: float
    precision_at_1: float
    r_precision: float
    map_at_r: float
    queries: int
    protocol: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def search_quality(index: EmbeddingIndex, k: int = 5) -> SearchQuality:
    """precision@k and MAP@R of ``index`` searched with each of its items, the item left out.

    Items alone in their class (R = 0) are not counted. Each query fetches max(k, R_max)
    neighbours, where R_max is the largest class size minus one.

    Args:
        index: a labelled index.
        k: the k of precision@k, >= 1. Defaults to 5.

    Returns:
        A :class:`SearchQuality`.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"Invalid value for argument `k`. Expected an int >= 1. Received: k={k!r}")
    if index.labels is None:
        raise ValueError(
            "Invalid value for argument `index`. Expected a labelled index (precision and MAP@R "
            "compare labels). Received: an index without labels; build it with labels."
        )
    labels = index.labels
    r = same_class_counts(labels)
    if not r.any():
        raise ValueError(
            "Invalid value for argument `index`. Expected at least one class with two items. "
            f"Received: {len(labels)} items, each alone in its class."
        )
    if k > len(index) - 1:
        raise ValueError(
            f"Invalid value for argument `k`. Expected k <= {len(index) - 1} (the other items "
            f"of this index). Received: k={k}"
        )
    found = index.search(index.embeddings, k=max(k, int(r.max())), exclude=np.arange(len(index)))
    hits = found.labels == labels[:, None]
    protocol = {
        "task": "index searched with its own items, leave-one-out",
        "size": len(index),
        "classes": len(np.unique(labels)),
        "backend": index.backend,
    }
    metrics = retrieval_metrics_from_ranking(hits, r, protocol)
    counted = r > 0
    return SearchQuality(
        k=int(k),
        precision_at_k=float(hits[counted, :k].mean()),
        precision_at_1=metrics["precision_at_1"],
        r_precision=metrics["r_precision"],
        map_at_r=metrics["map_at_r"],
        queries=int(counted.sum()),
        protocol=metrics["protocol"],
    )


def plot_hits(
    query_images: np.ndarray,
    neighbour_images: np.ndarray,
    result: SearchResult,
    path: str | Path,
    query_labels: np.ndarray | None = None,
    overwrite: bool = True,
) -> Path:
    """Write a PNG strip per query: the query, then its neighbours nearest first, with their
    labels and distances; green / red frames when ``query_labels`` are known.

    Args:
        query_images: (Q, H, W) or (Q, H, W, 3) uint8 queries.
        neighbour_images: (Q, k, H, W[, 3]) the images of ``result``'s neighbours.
        result: the search of those queries.
        path: the PNG file (written atomically).
        query_labels: (Q,) labels of the queries, to frame right and wrong neighbours.
            Defaults to None (no frames).
        overwrite: replace an existing file. Defaults to True.
    """

    correct = None
    if query_labels is not None and result.labels is not None:
        correct = result.labels == np.asarray(query_labels)[:, None]

    def write(tmp: Path) -> None:
        plot_neighbour_strips(
            query_images, neighbour_images, correct, result.distances, tmp, result.labels
        )

    return atomic_write(path, write, overwrite=overwrite)
