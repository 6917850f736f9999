"""The distance interface every miner, loss and scorer uses.

A :class:`Distance` compares embeddings. Some are dissimilarities (Lp: smaller = closer), some
similarities (cosine, dot product, RBF kernel: larger = closer); ``is_similarity`` says which.
Miners and losses never branch on the kind: they ask :meth:`Distance.dissimilarity`, which maps
either to "smaller = closer" by an affine map of slope -1 (``1 - s`` or ``-s``), so margins keep
their size and the hinge ``d_ap - d_an + margin`` equals ``s_an - s_ap + margin``.

Computation is safe to differentiate at zero (see :func:`safe_sqrt`) and chunked where it would
otherwise need O(N x M x D) memory (L1): :meth:`Distance.pairwise` on large eager inputs and
:meth:`Distance.pairwise_numpy` work on blocks of rows, so memory stays O(chunk x M) plus the
(N, M) result. Inside ``tf.function`` (training batches) the block is the whole batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from oneshot.pieces import Piece, register  # noqa: F401 (register: used by the pieces)

_EPS = 1e-12
CHUNK_ELEMENTS = 1 << 24  # working-set budget (elements) of one block of a chunked computation


def safe_sqrt(squared: tf.Tensor) -> tf.Tensor:
    """``sqrt`` with a finite (zero) gradient where ``squared`` is 0.

    ``sqrt(max(x, eps))`` masked back to exactly 0 where ``x <= eps``: the gradient of ``sqrt``
    at 0 is infinite, and ``0 * inf`` would give NaN.
    """
    squared = tf.maximum(squared, 0.0)
    is_zero = squared <= _EPS
    root = tf.sqrt(tf.where(is_zero, tf.ones_like(squared), squared))
    return tf.where(is_zero, tf.zeros_like(squared), root)


class Distance(Piece):
    """Base class: compare rows of embedding matrices.

    Subclasses implement :meth:`_pairwise` (a full (N, M) block) and :meth:`paired`, and set
    ``is_similarity``. Instances are small, immutable and serializable (``get_config``).

    Args:
        normalize_embeddings: L2-normalise the embeddings first. Defaults to False.
    """

    is_similarity: bool = False
    #: cost of one (row, column) entry in elements of working memory (D for L1, 1 for matmuls)
    _per_entry_cost_is_dim = False

    def __init__(self, normalize_embeddings: bool = False) -> None:
        self.normalize_embeddings = bool(normalize_embeddings)

    # ----------------------------------------------------------------------------- public
    def pairwise(self, x: tf.Tensor, y: tf.Tensor | None = None) -> tf.Tensor:
        """Matrix (N, M) between the rows of ``x`` (N, D) and ``y`` (M, D); ``y`` defaults to
        ``x``, and then the diagonal is exactly the self-distance (0, or 1 for cosine/RBF)."""
        x = self._prepare(x)
        same = y is None
        y = x if same else self._prepare(y, x.dtype)
        self_value = self._self_value(x.dtype) if same else None
        if self._per_entry_cost_is_dim and tf.executing_eagerly():
            return self._chunked(x, y, self_value)
        return _set_diagonal(self._pairwise(x, y), self_value)

    def paired(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        """Values (N,) between matching rows of ``x`` and ``y`` (both (N, D))."""
        x = self._prepare(x)
        return self._paired(x, self._prepare(y, x.dtype))

    def dissimilarity(self, values: tf.Tensor) -> tf.Tensor:
        """``values`` of this distance mapped to "smaller = closer" with slope -1 (identity for
        distances; ``1 - s`` for bounded similarities, ``-s`` for the dot product)."""
        return values

    def pairwise_numpy(self, x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        """:meth:`pairwise` as a float32 numpy array, computed block by block of rows.

        Memory: the (N, M) result plus one block (``CHUNK_ELEMENTS`` elements), so evaluation
        over tens of thousands of images never holds an N x M x D tensor.
        """
        x = self._numpy(x)
        y_arr = x if y is None else self._numpy(y)
        out = np.empty((len(x), len(y_arr)), np.float32)
        rows = self._rows_per_block(len(y_arr), x.shape[-1] if x.ndim == 2 else 1)
        y_t = self._prepare(tf.constant(y_arr))
        for start in range(0, len(x), rows):
            block = self._prepare(tf.constant(x[start : start + rows]))
            out[start : start + len(block)] = self._pairwise(block, y_t).numpy()
        self_value = self._self_value(tf.float32)
        if y is None and self_value is not None:
            np.fill_diagonal(out, float(self_value))
        return out

    def get_config(self) -> dict[str, Any]:
        return {"normalize_embeddings": self.normalize_embeddings}

    # ----------------------------------------------------------------------------- internals
    def _numpy(self, x: np.ndarray) -> np.ndarray:
        """float32 numpy embeddings; images refused, as in :meth:`_prepare`."""
        x = np.asarray(x)
        _refuse_images(x.ndim, x.shape, x.dtype.name)
        return x.astype(np.float32, copy=False)

    def _prepare(self, x: tf.Tensor, dtype: tf.DType | None = None) -> tf.Tensor:
        x = tf.convert_to_tensor(x, dtype_hint=dtype)
        _refuse_images(x.shape.rank, x.shape, x.dtype.name)
        if not x.dtype.is_floating:
            x = tf.cast(x, tf.float32)
        if dtype is not None and x.dtype != dtype:  # e.g. float32 ``y`` against float64 ``x``
            x = tf.cast(x, dtype)
        if x.shape.rank is not None and x.shape.rank != 2:
            raise ValueError(
                f"Invalid embeddings. Expected a matrix of shape (N, D). Received shape {x.shape}."
            )
        return tf.math.l2_normalize(x, axis=1) if self.normalize_embeddings else x

    def _self_value(self, dtype: tf.DType) -> tf.Tensor | None:
        """Value of an embedding against itself (0 for distances; None if not a constant)."""
        return tf.constant(0.0, dtype)

    def _rows_per_block(self, m: int, d: int) -> int:
        per_row = max(m, 1) * (d if self._per_entry_cost_is_dim else 1)
        return max(1, CHUNK_ELEMENTS // per_row)

    def _chunked(self, x: tf.Tensor, y: tf.Tensor, self_value: tf.Tensor | None) -> tf.Tensor:
        """Eager block-by-block :meth:`_pairwise` over rows of ``x`` (memory O(chunk x M)).

        The diagonal (``self_value``, when ``y`` is ``x``) is set block by block too: setting it
        on the assembled (N, M) result would hold a third N x M copy (13,180 x 13,180 L1: peak
        RSS 3.0 GB instead of 2.3 GB, TensorFlow's 0.7 GB included).
        """
        n, m, d = int(x.shape[0]), int(y.shape[0]), int(x.shape[1])
        rows = self._rows_per_block(m, d)
        if rows >= n:
            return _set_diagonal(self._pairwise(x, y), self_value)
        blocks = [
            _set_diagonal(self._pairwise(x[s : s + rows], y), self_value, offset=s)
            for s in range(0, n, rows)
        ]
        return tf.concat(blocks, axis=0)

    def _pairwise(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _paired(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:  # pragma: no cover
        raise NotImplementedError


def _refuse_images(rank: int | None, shape, dtype: str) -> None:
    """Raise if the array looks like images (uint8, or rank 3 or 4), not embeddings (N, D)."""
    if dtype == "uint8" or rank in (3, 4):
        shown = tuple(shape) if rank is not None else "unknown"
        raise ValueError(
            f"Invalid embeddings. Expected a float matrix (N, D); got images of shape {shown} "
            f"({dtype}): embed them first with Scorer.embed(images)."
        )


def _set_diagonal(values: tf.Tensor, value: tf.Tensor | None, offset: int = 0) -> tf.Tensor:
    """``values`` with entries (i, i + offset) set to ``value`` (unchanged if ``value`` is None)."""
    if value is None:
        return values
    shape = tf.shape(values)
    length = tf.maximum(tf.minimum(shape[0], shape[1] - offset), 0)
    return tf.linalg.set_diag(values, tf.fill([length], tf.cast(value, values.dtype)), k=offset)
