"""Embeddings in 2-D: PCA or t-SNE projections coloured by class, optionally with the images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from oneshot.plots.base import finish, image_style, label_name

PROJECTIONS = ("pca", "tsne")


def project_2d(embeddings: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """(N, 2) projection of embeddings by PCA or t-SNE (scikit-learn; t-SNE on one thread)."""
    if method not in PROJECTIONS:
        raise ValueError(
            f"Invalid value for argument `method`. Expected one of {PROJECTIONS}. Received: method={method!r}"
        )
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.shape[1] <= 2:
        return np.pad(embeddings, ((0, 0), (0, 2 - embeddings.shape[1])))
    if method == "pca":
        from sklearn.decomposition import PCA  # late import: scikit-learn only for these plots

        return PCA(n_components=2, random_state=seed).fit_transform(embeddings)
    from sklearn.manifold import TSNE  # late import: scikit-learn only for these plots
    from threadpoolctl import threadpool_limits  # late import: only with scikit-learn

    perplexity = float(min(30.0, max(2.0, (len(embeddings) - 1) / 3)))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    # One OpenMP thread: spinning threads collapse when the cores are shared (measured on
    # 2 cores beside a training run: 200 points took 177 s with 2 threads, 2.9 s with one).
    with threadpool_limits(limits=1, user_api="openmp"):
        return tsne.fit_transform(embeddings)


def plot_embedding_2d(
    embeddings: np.ndarray,
    labels: np.ndarray,
    method: str = "pca",
    images: np.ndarray | None = None,
    max_points: int = 2000,
    title: str | None = None,
    path: str | Path | None = None,
    seed: int = 0,
    class_names: Sequence[str] | None = None,
) -> Figure:
    """Embeddings projected to 2-D (PCA or t-SNE), coloured by class.

    Args:
        embeddings: (N, D) embeddings.
        labels: (N,) classes (colours).
        method: "pca" or "tsne". Defaults to "pca".
        images: optional (N, H, W) grey or (N, H, W, 3) colour images drawn as markers instead
            of dots. Defaults to None.
        max_points: random subsample size (t-SNE is slow). Defaults to 2000.
        title: figure title. Defaults to the method name.
        path: PNG file to write. Defaults to None.
        seed: subsample and projection seed. Defaults to 0.
        class_names: the name of each label, for the legend. Defaults to None (the labels).
    """
    labels = np.asarray(labels)
    keep = np.arange(len(labels))
    if len(keep) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(keep), max_points, replace=False))
    xy = project_2d(np.asarray(embeddings)[keep], method, seed)
    fig, ax = plt.subplots(figsize=(7, 6))
    if images is None:
        _, colour = np.unique(labels[keep], return_inverse=True)
        points = ax.scatter(
            xy[:, 0], xy[:, 1], c=colour, cmap="tab20" if colour.max() >= 10 else "tab10", s=8
        )
        if colour.max() < 20:
            handles, _ = points.legend_elements(num=None)
            ax.legend(
                handles,
                [label_name(c, class_names) for c in np.unique(labels[keep])],
                fontsize=7,
                loc="best",
                markerscale=0.8,
            )
    else:
        from matplotlib.offsetbox import AnnotationBbox, OffsetImage  # late import: thumbnails

        ax.scatter(xy[:, 0], xy[:, 1], s=0)
        zoom = 0.6 * 28 / max(np.asarray(images).shape[1], 1)
        for (x, y), image in zip(xy, np.asarray(images)[keep], strict=True):
            image, style = image_style(image)
            ax.add_artist(
                AnnotationBbox(OffsetImage(image, zoom=zoom, **style), (x, y), frameon=False)
            )
    ax.set_title(title or f"Embeddings ({method.upper() if method == 'pca' else 't-SNE'})")
    ax.set_xticks([])
    ax.set_yticks([])
    return finish(fig, path)
