"""Ranking metrics: CMC curves and Musgrave et al. (2020) retrieval metrics.

- CMC: K classes, one gallery image and one query per class; ``cmc[r-1]`` is the fraction of
  queries whose own gallery image ranks r or better. Rank-1 = K-way one-shot accuracy;
  rank-K = 1.
- Retrieval, every image querying all the others (the query itself excluded), R = number of
  other images of its class: precision@1; R-precision (fraction of the R nearest that are of
  the class); MAP@R = mean over the R nearest of precision@i at each correct position i,
  divided by R (https://arxiv.org/abs/2003.08505). Queries with R = 0 are skipped.

Ties rank by index (stable order), the same rule as ``argmin`` in the episode code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from oneshot.checks import check_embeddings
from oneshot.data.labels import check_labels
from oneshot.evaluation.episodes import class_table, episode_distances, mean_ci95, sample_episodes
from oneshot.evaluation.scoring import Scorer


@dataclass(frozen=True)
class CMCResult:
    """Mean CMC curve over trials; ``curve[r - 1]`` = fraction matched at rank <= r."""

    curve: np.ndarray = field(repr=False)
    rank1: float
    rank1_ci95: float
    protocol: dict[str, Any]

    def to_dict(self, include_curve: bool = False) -> dict[str, Any]:
        out = {"rank1": self.rank1, "rank1_ci95": self.rank1_ci95, "protocol": dict(self.protocol)}
        out["rank5"] = float(self.curve[min(4, len(self.curve) - 1)])
        if include_curve:
            out["curve"] = self.curve.tolist()
        return out


def match_ranks(distances: np.ndarray) -> np.ndarray:
    """Rank (1-based) of the true gallery item ``i`` for each query row ``i`` of a (K, K) matrix."""
    distances = np.asarray(distances)
    if distances.ndim != 2 or distances.shape[0] != distances.shape[1]:
        raise ValueError(
            f"Expected a square (queries, gallery) matrix. Received shape {distances.shape}."
        )
    k = len(distances)
    true = distances[np.arange(k), np.arange(k)][:, None]
    before = (distances < true) | (
        (distances == true) & (np.arange(k)[None, :] < np.arange(k)[:, None])
    )
    return before.sum(axis=1) + 1


def cmc_curve_from_distances(distances: np.ndarray) -> np.ndarray:
    """CMC curve (K,) of one trial: query i belongs to gallery item i."""
    ranks = match_ranks(distances)
    return (ranks[:, None] <= np.arange(1, len(ranks) + 1)[None, :]).mean(axis=0)


def sample_cmc_trials(
    labels: np.ndarray, n_classes: int, trials: int = 1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(gallery (T, K), query (T, K))``: K classes, one gallery and one query each."""
    drawn = sample_episodes(labels, n_classes, 1, 1, trials, seed=seed)
    return drawn.support[:, :, 0], drawn.query[:, :, 0]


def cmc(
    scorer: Scorer,
    embeddings: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    trials: int = 1,
    split: str | None = None,
    seed: int = 0,
) -> CMCResult:
    """Mean CMC curve over ``trials`` seeded draws (K = 10 MNIST, 400 Omniglot in the articles)."""
    embeddings = np.asarray(check_embeddings(embeddings))
    labels = check_labels(labels, len(embeddings))
    gallery, query = sample_cmc_trials(labels, n_classes, trials, seed)
    curves = np.stack(
        [cmc_curve_from_distances(d) for d in episode_distances(scorer, embeddings, query, gallery)]
    )
    rank1, ci95 = mean_ci95(curves[:, 0])
    protocol = {
        "task": f"CMC, {n_classes} classes, one gallery + one query each",
        "n_classes": n_classes,
        "trials": trials,
        "seed": seed,
        "split": split,
    }
    return CMCResult(curves.mean(axis=0), rank1, ci95, protocol)


def _retrieval_rows(
    rows: np.ndarray, row_ids: np.ndarray, labels: np.ndarray, same_counts: np.ndarray
) -> np.ndarray:
    """(len(rows), 3) precision@1, R-precision, MAP@R for query rows (NaN where R = 0)."""
    rows = np.array(rows, dtype=np.float64, copy=True)
    rows[np.arange(len(rows)), row_ids] = np.inf  # the query itself is not retrieved
    r = same_counts[row_ids]
    r_max = int(max(r.max(initial=0), 1))
    candidates = (
        np.argpartition(rows, r_max - 1, axis=1)[:, :r_max]
        if r_max < rows.shape[1]
        else np.tile(np.arange(rows.shape[1]), (len(rows), 1))
    )
    cand_d = np.take_along_axis(rows, candidates, axis=1)
    order = np.lexsort((candidates, cand_d), axis=1)
    nearest = np.take_along_axis(
        candidates, order, axis=1
    )  # (Q, r_max) sorted by distance, then index
    return _ranked_rows(labels[nearest] == labels[row_ids][:, None], r)


def _ranked_rows(hit: np.ndarray, r: np.ndarray) -> np.ndarray:
    """(Q, 3) precision@1, R-precision, MAP@R from ranked hits (Q, >= max r) (NaN where r = 0)."""
    r_max = int(max(r.max(initial=0), 1))
    hit = hit[:, :r_max]
    within_r = np.arange(1, r_max + 1)[None, :] <= r[:, None]
    hit_r = hit & within_r
    precision_at_i = np.cumsum(hit_r, axis=1) / np.arange(1, r_max + 1)[None, :]
    safe_r = np.maximum(r, 1)
    out = np.stack(
        [
            hit[:, 0].astype(float),
            hit_r.sum(axis=1) / safe_r,
            (precision_at_i * hit_r).sum(axis=1) / safe_r,
        ],
        axis=1,
    )
    out[r == 0] = np.nan
    return out


def retrieval_metrics_from_ranking(
    hits: np.ndarray, same_counts: np.ndarray, protocol: dict[str, Any] | None = None
) -> dict[str, Any]:
    """precision@1, R-precision and MAP@R from each query's ranked neighbours, for rankings
    made elsewhere (e.g. an ``EmbeddingIndex`` searched with its own items, leave-one-out).

    Args:
        hits: (Q, M) booleans, nearest first, the query itself excluded: True where the
            neighbour is of the query's class. M >= max(same_counts) (the R nearest of every
            query), at least 1.
        same_counts: (Q,) R of each query: the other items of its class among the candidates.
            Queries with R = 0 are skipped.
        protocol: recorded with the numbers. Defaults to None.
    """
    hits, same_counts = np.asarray(hits, bool), np.asarray(same_counts)
    if hits.ndim != 2 or hits.shape[1] < max(int(same_counts.max(initial=0)), 1):
        raise ValueError(
            "Invalid value for argument `hits`. Expected (Q, M) with M >= max(same_counts) = "
            f"{int(same_counts.max(initial=0))}. Received shape {hits.shape}."
        )
    return _summary(
        _ranked_rows(hits, same_counts), {"task": "retrieval (query excluded)", **(protocol or {})}
    )


def _summary(per_query: np.ndarray, protocol: dict[str, Any]) -> dict[str, Any]:
    valid = ~np.isnan(per_query[:, 0])
    mean = per_query[valid].mean(axis=0)
    return {
        "precision_at_1": float(mean[0]),
        "r_precision": float(mean[1]),
        "map_at_r": float(mean[2]),
        "protocol": {**protocol, "queries": int(valid.sum())},
    }


def same_class_counts(labels: np.ndarray) -> np.ndarray:
    """(N,) number of other items of each item's class (R of MAP@R)."""
    classes, counts, _ = class_table(labels)
    return counts[np.searchsorted(classes, labels)] - 1


def retrieval_metrics_from_distances(distances: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """precision@1, R-precision and MAP@R from an (M, M) distance matrix of a set to itself."""
    labels = check_labels(labels)
    if np.shape(distances) != (len(labels), len(labels)):
        raise ValueError(
            f"Expected `distances` of shape ({len(labels)}, {len(labels)}). Received {np.shape(distances)}."
        )
    per_query = _retrieval_rows(
        np.asarray(distances), np.arange(len(labels)), labels, same_class_counts(labels)
    )
    return _summary(per_query, {"task": "retrieval (query excluded)"})


ROW_BLOCK_VALUES = 2**25  # distances held at once by retrieval_metrics: 256 MB in float64


def row_block(n_items: int, limit: int = 1024) -> int:
    """Query rows per block of an (N, N) ranking so that a block holds at most
    :data:`ROW_BLOCK_VALUES` distances: 1,024 rows up to 32,768 items, 33 at a million."""
    return max(1, min(limit, ROW_BLOCK_VALUES // max(n_items, 1)))


def retrieval_metrics(
    scorer: Scorer,
    embeddings: np.ndarray,
    labels: np.ndarray,
    split: str | None = None,
    chunk_size: int | None = None,
) -> dict[str, Any]:
    """Retrieval metrics of a scorer, every item querying all the others. The distance matrix
    is never held whole: ``chunk_size`` query rows at a time (default :func:`row_block`, so
    memory stays bounded for any N; the time is still O(N^2): for very large sets, search an
    ``oneshot.applications.EmbeddingIndex`` with FAISS and use ``search_quality``)."""
    embeddings = np.asarray(check_embeddings(embeddings))
    labels = check_labels(labels, len(embeddings))
    if chunk_size is None:
        chunk_size = row_block(len(labels))
    same_counts = same_class_counts(labels)
    parts = []
    for start in range(0, len(labels), chunk_size):
        ids = np.arange(start, min(start + chunk_size, len(labels)))
        rows = np.asarray(scorer.pairwise(embeddings[ids], embeddings))
        parts.append(_retrieval_rows(rows, ids, labels, same_counts))
    return _summary(np.concatenate(parts), {"task": "retrieval (query excluded)", "split": split})


def rank_candidates(
    scorer: Scorer, queries: np.ndarray, candidates: np.ndarray, top: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Candidates of each query embedding, nearest first: ``(order (Q, top), distances (Q, top))``."""
    check_embeddings(queries, "queries")
    check_embeddings(candidates, "candidates")
    distances = np.array(scorer.pairwise(queries, candidates), dtype=np.float64)
    order = np.argsort(distances, axis=1, kind="stable")[:, :top]
    return order, np.take_along_axis(distances, order, axis=1)


def nearest_neighbours(
    scorer: Scorer, embeddings: np.ndarray, labels: np.ndarray, queries: np.ndarray, top: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``top`` nearest other images of each query (indices into ``embeddings``), for
    nearest-neighbour strips (``oneshot.plots.plot_neighbour_strips``).

    Returns:
        ``(indices (Q, top), correct (Q, top), distances (Q, top))``; correct = same class.
    """
    embeddings = np.asarray(check_embeddings(embeddings))
    labels = check_labels(labels, len(embeddings))
    queries = np.asarray(queries)
    order, distances = rank_candidates(scorer, embeddings[queries], embeddings, top + 1)
    keep = order != queries[:, None]  # drop the query itself
    order = np.stack([row[k][:top] for row, k in zip(order, keep, strict=True)])
    distances = np.stack([row[k][:top] for row, k in zip(distances, keep, strict=True)])
    return order, labels[order] == labels[queries][:, None], distances
