"""Exact k-nearest-neighbour search, block by block, with no dependency beyond the distances.

Queries and gallery are cut into blocks: each block's distances come from the
``oneshot.distances`` object (its numerically safe pairwise computation, as a dissimilarity:
smaller = closer), each block keeps its own k best (``tf.math.top_k``: multi-threaded, and the
lower index first among equal values), and the blocks' candidates are merged by
:func:`smallest_k` (``np.argpartition`` on the (Q, k x blocks) candidates). The
working memory is one block (``block_elements`` distances plus the block's rows) and the (Q, k)
candidates of each gallery block, never the full Q x N matrix.

Order: ascending distance, ties broken by the smaller gallery index. The rule is applied
exactly (not left to ``np.argpartition``), so the order does not depend on the block sizes;
the distances themselves may differ in the last float32 bits (a matmul's summation order can
depend on the block's shape).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from oneshot.distances import Distance, pairwise_distances

DEFAULT_BLOCK_ELEMENTS = 1 << 22  # distances per block (16 MB of float32)


def check_block_elements(block_elements: int) -> int:
    """``block_elements`` (distances per block) if it is an int >= 1, else a ValueError."""
    if isinstance(block_elements, bool) or not isinstance(block_elements, int):
        block_elements = -1
    if block_elements < 1:
        raise ValueError(
            "Invalid value for argument `block_elements`. Expected an int >= 1. "
            f"Received: block_elements={block_elements!r}"
        )
    return block_elements


def smallest_k(distances: np.ndarray, indices: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` smallest entries of each row, ordered by (distance, index).

    ``np.argpartition`` finds them in O(M) per row; where a tie straddles the k-th place
    (equal distances, e.g. duplicate gallery items), the row is sorted fully so the smaller
    indices win, whatever order the partition left them in.

    Args:
        distances: (R, M) float array.
        indices: (R, M) int array of gallery indices (distinct within a row).
        k: how many to keep; at most M.

    Returns:
        ``(distances, indices)``, each (R, k), sorted ascending by distance then index.
    """
    rows, m = distances.shape
    if k < m:
        part = np.argpartition(distances, k - 1, axis=1)[:, :k]
        kept = np.take_along_axis(distances, part, axis=1)
        kth = kept.max(axis=1, keepdims=True)
        tied = np.flatnonzero((distances <= kth).sum(axis=1) > k)
        for r in tied:  # a tie across the boundary: rank the row by (distance, index)
            part[r] = np.lexsort((indices[r], distances[r]))[:k]
        distances = np.take_along_axis(distances, part, axis=1)
        indices = np.take_along_axis(indices, part, axis=1)
    order = np.lexsort((indices, distances), axis=1)
    return (
        np.take_along_axis(distances, order, axis=1),
        np.take_along_axis(indices, order, axis=1),
    )


def exact_search(
    queries: np.ndarray,
    gallery: np.ndarray,
    k: int,
    distance: Distance,
    block_elements: int = DEFAULT_BLOCK_ELEMENTS,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest gallery rows of every query, by ``distance``'s dissimilarity.

    Args:
        queries: (Q, D) float32.
        gallery: (N, D) float32, N >= k >= 1.
        k: neighbours per query.
        distance: a ``oneshot.distances.Distance``.
        block_elements: working-set budget: distances (query rows x gallery rows) per block,
            and gallery values (gallery rows x D) per block. Defaults to 2**22.

    Returns:
        ``(distances, indices)``: float32 (Q, k) dissimilarities and int64 (Q, k) gallery rows,
        ascending by distance, ties by index.
    """
    n, dim = gallery.shape
    q_rows = max(1, min(len(queries), int(np.sqrt(block_elements))))
    g_rows = max(1, min(n, block_elements // max(q_rows, dim)))
    out_d = np.empty((len(queries), k), np.float32)
    out_i = np.empty((len(queries), k), np.int64)
    for q0 in range(0, len(queries), q_rows):
        block_q = queries[q0 : q0 + q_rows]
        found_d, found_i = [], []
        for g0 in range(0, n, g_rows):
            block = pairwise_distances(block_q, gallery[g0 : g0 + g_rows], distance)
            # top_k keeps the lower index first among equal values: the tie rule, per block
            negated, i = tf.math.top_k(-tf.cast(block, tf.float32), k=min(k, int(block.shape[1])))
            found_d.append(-negated.numpy())
            found_i.append(i.numpy().astype(np.int64) + g0)
        d, i = smallest_k(np.concatenate(found_d, axis=1), np.concatenate(found_i, axis=1), k)
        out_d[q0 : q0 + len(block_q)], out_i[q0 : q0 + len(block_q)] = d, i
    return out_d, out_i
