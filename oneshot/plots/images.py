"""Images themselves: a grid with titles, and queries with their nearest neighbours."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from oneshot.plots.base import finish, image_style


def _draw(ax: Axes, image: np.ndarray) -> None:
    image, style = image_style(image)
    ax.imshow(image, **style)


def plot_images(
    images: np.ndarray,
    titles: Sequence[str] | None = None,
    cols: int = 10,
    size: float = 1.1,
    path: str | Path | None = None,
) -> Figure:
    """A grid of images with optional titles.

    Grey images (N, H, W) or (N, H, W, 1) (strokes bright) are drawn dark on white; colour
    images (N, H, W, 3), uint8 or floats in [0, 1], in their own colours.
    """
    images = np.asarray(images)
    rows = -(-len(images) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * 1.15 * rows), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < len(images):
            _draw(ax, images[i])
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=7)
    return finish(fig, path)


def plot_neighbour_strips(
    query_images: np.ndarray,
    neighbour_images: np.ndarray,
    correct: np.ndarray | None = None,
    distances: np.ndarray | None = None,
    path: str | Path | None = None,
    labels: np.ndarray | None = None,
) -> Figure:
    """Rows of a query followed by its nearest neighbours (e.g. the top 10).

    Args:
        query_images: (Q, H, W) grey or (Q, H, W, 3) colour queries (see :func:`plot_images`).
        neighbour_images: (Q, T, H, W) or (Q, T, H, W, 3) neighbours, nearest first.
        correct: optional (Q, T) booleans: same class as the query (green / red frame).
        distances: optional (Q, T) distances written under each neighbour.
        path: PNG file to write. Defaults to None.
        labels: optional (Q, T) labels written under each neighbour (before its distance).
            Defaults to None.
    """
    query_images, neighbour_images = np.asarray(query_images), np.asarray(neighbour_images)
    q, t = neighbour_images.shape[:2]
    fig, axes = plt.subplots(q, t + 1, figsize=(1.1 * (t + 1), 1.25 * q), squeeze=False)
    for row in range(q):
        _draw(axes[row, 0], query_images[row])
        axes[row, 0].set_title("query", fontsize=7)
        for col in range(t):
            ax = axes[row, col + 1]
            _draw(ax, neighbour_images[row, col])
            if correct is not None:
                for spine in ax.spines.values():
                    spine.set_edgecolor("tab:green" if correct[row, col] else "tab:red")
                    spine.set_linewidth(2)
            caption = [] if labels is None else [str(labels[row, col])]
            if distances is not None:
                caption.append(f"{distances[row, col]:.3g}")
            if caption:
                ax.set_xlabel(" ".join(caption), fontsize=6)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    return finish(fig, path)
