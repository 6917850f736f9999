"""The distance interface every miner, loss and scorer uses.

A :class:`Distance` compares embeddings. Some are dissimilarities (Lp: smaller = closer), some
similarities (cosine, dot product, RBF kernel: larger = closer); ``is_similarity`` says which.
Miners and losses never branch on the kind: they ask :meth:`Distance.dissimilarity`, which maps
either to "smaller = closer" by an affine map of slope -1 (``1 - s`` or ``-s``), so margins keep
their size and the hinge ``d_ap - d_an + margin`` equals ``s_an - s_ap + margin``.

Computation is safe to differentiate at zero (see :func:`safe_sqrt`) and chunked where it would
otherwise need O(N x M x D) memory: :meth:`Distance.pairwise` on large inputs works on blocks of
rows, so memory stays O(chunk x M) plus the (N, M) result.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

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


class Distance:
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
        if self._per_entry_cost_is_dim and tf.executing_eagerly():
            values = self._chunked(x, y)
        else:
            values = self._pairwise(x, y)
        self_value = self._self_value(values.dtype)
        if same and self_value is not None:
            values = tf.linalg.set_diag(values, tf.fill(tf.shape(values)[:1], self_value))
        return values

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
        x = np.asarray(x, np.float32)
        y_arr = x if y is None else np.asarray(y, np.float32)
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

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Distance:
        return cls(**config)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    # ----------------------------------------------------------------------------- internals
    def _prepare(self, x: tf.Tensor, dtype: tf.DType | None = None) -> tf.Tensor:
        x = tf.convert_to_tensor(x, dtype=dtype)
        if not x.dtype.is_floating:
            x = tf.cast(x, tf.float32)
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

    def _chunked(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        """Eager block-by-block :meth:`_pairwise` over rows of ``x`` (memory O(chunk x M))."""
        n, m, d = int(x.shape[0]), int(y.shape[0]), int(x.shape[1])
        rows = self._rows_per_block(m, d)
        if rows >= n:
            return self._pairwise(x, y)
        return tf.concat([self._pairwise(x[s : s + rows], y) for s in range(0, n, rows)], axis=0)

    def _pairwise(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _paired(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:  # pragma: no cover
        raise NotImplementedError


def register(cls: type) -> type:
    """Register a distance class with Keras serialization under the "oneshot" package."""
    return keras.saving.register_keras_serializable(package="oneshot")(cls)
