"""Clustering: group unlabelled images by their embeddings (scikit-learn), and score the groups
against known labels with NMI and AMI.

- ``"kmeans"``: ``sklearn.cluster.KMeans`` (k-means++, ``n_init=10``, seeded).
- ``"agglomerative"``: ``sklearn.cluster.AgglomerativeClustering``; ``linkage="ward"``
  (default) on the vectors, or ``"average"``, ``"complete"``, ``"single"`` on the matrix of the
  model's own distances (``oneshot.distances``; O(N^2) memory).

k-means and Ward work in Euclidean space. Embeddings compared by a normalising distance
(cosine, or any distance with ``normalize_embeddings=True``) are L2-normalised first: on the
unit sphere the Euclidean distance ranks pairs as the cosine does.

The metrics (``sklearn.metrics``): NMI, normalised mutual information between clusters and
labels (1 = the same partition); AMI, the same adjusted for chance (0 = a random partition of
the same sizes, which NMI does not give when there are many clusters).

Usage (the command line is ``python -m oneshot.cluster``):

>>> result = cluster(scorer.embed(images), labels=labels, method="kmeans")
>>> result.nmi, result.ami, result.assignments[:5]
(0.83, 0.82, array([3, 3, 0, 7, 1]))
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.metrics import adjusted_mutual_info_score, normalized_mutual_info_score

from oneshot.checks import check_choice, check_embeddings
from oneshot.data.labels import check_labels
from oneshot.distances import Distance, get_distance, pairwise_dissimilarity_numpy
from oneshot.names import CLUSTER_METHODS, LINKAGES

METHODS = CLUSTER_METHODS


@dataclasses.dataclass(frozen=True)
class ClusteringResult:
    """Cluster assignments, and how well they match the labels.

    Attributes:
        method: ``"kmeans"`` or ``"agglomerative"`` (with its linkage, e.g.
            ``"agglomerative (ward)"``).
        n_clusters: the number of clusters asked for.
        assignments: (N,) int cluster of each item, 0 .. n_clusters - 1.
        nmi: normalised mutual information with the labels; None without labels.
        ami: adjusted mutual information with the labels; None without labels.
    """

    method: str
    n_clusters: int
    assignments: np.ndarray = dataclasses.field(repr=False)
    nmi: float | None = None
    ami: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "n_clusters": self.n_clusters,
            "nmi": self.nmi,
            "ami": self.ami,
        }


def cluster(
    embeddings: np.ndarray,
    labels: Any = None,
    n_clusters: int | None = None,
    method: str = "kmeans",
    distance: Distance | str = "euclidean",
    linkage: str = "ward",
    seed: int = 0,
) -> ClusteringResult:
    """Cluster embeddings and, given labels, score the clusters with NMI and AMI.

    Args:
        embeddings: (N, D) float embeddings.
        labels: (N,) true classes (ints or strings), for the metrics and the default number
            of clusters. Defaults to None.
        n_clusters: clusters to form, 2 .. N. Defaults to None: the number of classes in
            ``labels`` (required without labels).
        method: ``"kmeans"`` or ``"agglomerative"``. Defaults to ``"kmeans"``.
        distance: the distance the embeddings are compared with (the model's). Defaults to
            ``"euclidean"``.
        linkage: agglomerative only: ``"ward"``, ``"average"``, ``"complete"`` or
            ``"single"``. Defaults to ``"ward"``.
        seed: k-means initialisation. Defaults to 0.

    Returns:
        A :class:`ClusteringResult`.
    """
    x = np.asarray(check_embeddings(embeddings), np.float64)
    check_choice("method", method, METHODS)
    check_choice("linkage", linkage, LINKAGES)
    distance = get_distance(distance)
    if labels is not None:
        labels = check_labels(labels, len(x))
        if n_clusters is None:
            n_clusters = len(np.unique(labels))
    if n_clusters is None:
        raise ValueError(
            "Invalid value for argument `n_clusters`. Expected the number of clusters (or "
            "labels to count the classes). Received: n_clusters=None and no labels"
        )
    if (
        isinstance(n_clusters, bool)
        or not isinstance(n_clusters, (int, np.integer))
        or not (2 <= n_clusters <= len(x))
    ):
        raise ValueError(
            f"Invalid value for argument `n_clusters`. Expected an int in [2, {len(x)}] (the "
            f"number of items). Received: n_clusters={n_clusters!r}"
        )
    n_clusters = int(n_clusters)
    if distance.normalize_embeddings:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    if method == "kmeans":
        model = KMeans(n_clusters, n_init=10, random_state=seed)
        assignments = model.fit_predict(x)
    elif linkage == "ward":
        assignments = AgglomerativeClustering(n_clusters, linkage="ward").fit_predict(x)
    else:
        matrix = pairwise_dissimilarity_numpy(x.astype(np.float32), None, distance)
        matrix = np.maximum((matrix + matrix.T) / 2, 0.0)  # exactly symmetric, no -0 rounding
        np.fill_diagonal(matrix, 0.0)
        assignments = AgglomerativeClustering(
            n_clusters, metric="precomputed", linkage=linkage
        ).fit_predict(matrix)
        method = f"agglomerative ({linkage})"
    if method == "agglomerative":
        method = "agglomerative (ward)"
    nmi = ami = None
    if labels is not None:
        nmi = float(normalized_mutual_info_score(labels, assignments))
        ami = float(adjusted_mutual_info_score(labels, assignments))
    return ClusteringResult(method, n_clusters, assignments.astype(np.int64), nmi, ami)
