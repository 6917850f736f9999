"""Distances: how embeddings are compared, one vocabulary for the whole package.

==========================  ========================================  ===============
object                      value                                     legacy name
==========================  ========================================  ===============
``LpDistance()``            Euclidean ``|x - y|``                     "euclidean"
``LpDistance(power=2)``     squared Euclidean                         "squared_euclidean"
``LpDistance(p=1)``         Manhattan                                 "l1"
``CosineSimilarity()``      cosine (larger = closer)                  "cosine"
``DotProductSimilarity()``  dot product (larger = closer)
``RBFSimilarity(sigma)``    Gaussian kernel (larger = closer)
==========================  ========================================  ===============

Every argument that takes a distance accepts an object or a legacy name (:func:`get_distance`).
:func:`pairwise_distances` and :func:`paired_distances` return *dissimilarities* (smaller =
closer; ``1 - cos`` for cosine), the convention of the evaluation code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from oneshot.distances.base import Distance, safe_sqrt
from oneshot.distances.lp import LpDistance
from oneshot.distances.similarities import CosineSimilarity, DotProductSimilarity, RBFSimilarity
from oneshot.pieces import resolve

__all__ = [
    "DISTANCES",
    "CosineSimilarity",
    "Distance",
    "DotProductSimilarity",
    "LpDistance",
    "RBFSimilarity",
    "check_distance",
    "distance_name",
    "get_distance",
    "paired_distances",
    "pairwise_dissimilarity_numpy",
    "pairwise_distances",
    "safe_sqrt",
]

_BY_NAME = {
    "euclidean": LpDistance,
    "squared_euclidean": lambda: LpDistance(power=2),
    "l1": lambda: LpDistance(p=1),
    "cosine": CosineSimilarity,
}
DISTANCES = tuple(_BY_NAME)


def get_distance(distance: str | Distance | dict[str, Any] | None) -> Distance:
    """A :class:`Distance` from an object, a legacy name (``DISTANCES``) or a Keras config dict;
    None gives the Euclidean distance."""
    return resolve(distance, Distance, _BY_NAME, "distance", default=LpDistance)


def check_distance(distance: str | Distance) -> str | Distance:
    """Return ``distance`` unchanged if :func:`get_distance` accepts it, else raise."""
    get_distance(distance)
    return distance


def distance_name(distance: str | Distance) -> str:
    """Legacy name of ``distance`` when it has one (for labels and records), else its repr."""
    distance = get_distance(distance)
    for name, make in _BY_NAME.items():
        if make() == distance:
            return name
    return repr(distance)


def pairwise_distances(
    a: tf.Tensor, b: tf.Tensor | None = None, distance: str | Distance = "euclidean"
) -> tf.Tensor:
    """Dissimilarity matrix (N, M) between the rows of ``a`` and ``b`` (default ``a``)."""
    d = get_distance(distance)
    return d.dissimilarity(d.pairwise(a, b))


def paired_distances(
    a: tf.Tensor, b: tf.Tensor, distance: str | Distance = "euclidean"
) -> tf.Tensor:
    """Dissimilarities (N,) between matching rows of ``a`` and ``b``."""
    d = get_distance(distance)
    return d.dissimilarity(d.paired(a, b))


def pairwise_dissimilarity_numpy(
    a: np.ndarray, b: np.ndarray | None = None, distance: str | Distance = "euclidean"
) -> np.ndarray:
    """:func:`pairwise_distances` as float32 numpy, computed in row blocks (evaluation sizes)."""
    d = get_distance(distance)
    values = d.pairwise_numpy(a, b)
    return np.asarray(d.dissimilarity(values), np.float32)
