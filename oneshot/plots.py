"""Every figure of the project (plotting only: the numbers come from ``oneshot.evaluation``).

Each function returns its matplotlib Figure and, given ``path``, also saves it as a PNG.
Importing this module leaves the matplotlib backend alone (a notebook keeps its inline or
interactive one); the command lines choose the headless Agg backend themselves
(:func:`oneshot.cli.use_headless_backend`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

PROJECTIONS = ("pca", "tsne")


def _finish(fig: Figure, path: str | Path | None) -> Figure:
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    plt.close(fig)  # keep the pyplot registry empty; the Figure object stays usable
    return fig


def project_2d(embeddings: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """(N, 2) projection of embeddings by PCA or t-SNE (scikit-learn)."""
    if method not in PROJECTIONS:
        raise ValueError(
            f"Invalid value for argument `method`. Expected one of {PROJECTIONS}. Received: method={method!r}"
        )
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.shape[1] <= 2:
        return np.pad(embeddings, ((0, 0), (0, 2 - embeddings.shape[1])))
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(embeddings)
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, max(2.0, (len(embeddings) - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
        embeddings
    )


def plot_embedding_2d(
    embeddings: np.ndarray,
    labels: np.ndarray,
    method: str = "pca",
    images: np.ndarray | None = None,
    max_points: int = 2000,
    title: str | None = None,
    path: str | Path | None = None,
    seed: int = 0,
) -> Figure:
    """Embeddings projected to 2-D (PCA or t-SNE), coloured by class.

    Args:
        embeddings: (N, D) embeddings.
        labels: (N,) classes (colours).
        method: "pca" or "tsne". Defaults to "pca".
        images: optional (N, H, W) images drawn as markers instead of dots. Defaults to None.
        max_points: random subsample size (t-SNE is slow). Defaults to 2000.
        title: figure title. Defaults to the method name.
        path: PNG file to write. Defaults to None.
        seed: subsample and projection seed. Defaults to 0.
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
                [str(c) for c in np.unique(labels[keep])],
                fontsize=7,
                loc="best",
                markerscale=0.8,
            )
    else:
        from matplotlib.offsetbox import AnnotationBbox, OffsetImage

        ax.scatter(xy[:, 0], xy[:, 1], s=0)
        zoom = 0.6 * 28 / max(np.asarray(images).shape[1], 1)
        for (x, y), image in zip(xy, np.asarray(images)[keep], strict=True):
            ax.add_artist(
                AnnotationBbox(OffsetImage(image, cmap="gray_r", zoom=zoom), (x, y), frameon=False)
            )
    ax.set_title(title or f"Embeddings ({method.upper() if method == 'pca' else 't-SNE'})")
    ax.set_xticks([])
    ax.set_yticks([])
    return _finish(fig, path)


def _xy(curve: Any, x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(curve, Mapping):
        return np.asarray(curve[x]), np.asarray(curve[y])
    if hasattr(curve, x):
        return np.asarray(getattr(curve, x)), np.asarray(getattr(curve, y))
    first, second = curve
    return np.asarray(first), np.asarray(second)


def plot_roc_curves(
    curves: Mapping[str, Any], log_fpr: bool = True, path: str | Path | None = None
) -> Figure:
    """ROC curves of several models on one figure.

    Args:
        curves: name -> ``VerificationResult`` (its fpr, tpr and auc are used), a dict with
            "fpr" and "tpr", or a pair ``(fpr, tpr)``.
        log_fpr: logarithmic false-positive axis (shows the 1e-3 region). Defaults to True.
        path: PNG file to write. Defaults to None.
    """
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, curve in curves.items():
        fpr, tpr = _xy(curve, "fpr", "tpr")
        auc = getattr(curve, "auc", None) or (
            curve.get("auc") if isinstance(curve, Mapping) else None
        )
        label = f"{name} (AUC {auc:.3f})" if auc is not None else name
        if log_fpr:
            fpr = np.maximum(fpr, 1e-6)
        ax.plot(fpr, tpr, label=label)
    if log_fpr:
        ax.set_xscale("log")
        ax.axvline(1e-3, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate (sensitivity)")
    ax.set_title("ROC")
    ax.legend(fontsize=8, loc="lower right")
    return _finish(fig, path)


def plot_cmc_curves(
    curves: Mapping[str, Any], max_rank: int | None = None, path: str | Path | None = None
) -> Figure:
    """CMC curves (match rate vs rank) of several models; ``curves``: name -> array or CMCResult."""
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, curve in curves.items():
        values = np.asarray(getattr(curve, "curve", curve))
        values = values[:max_rank] if max_rank else values
        ax.plot(np.arange(1, len(values) + 1), values, label=f"{name} (rank-1 {values[0]:.3f})")
    ax.set_xlabel("rank")
    ax.set_ylabel("identification rate")
    ax.set_ylim(0, 1.01)
    ax.set_title("CMC")
    ax.legend(fontsize=8, loc="lower right")
    return _finish(fig, path)


def plot_accuracy_vs(
    series: Mapping[str, Mapping[int, Any]],
    xlabel: str = "N (ways)",
    chance: bool = True,
    path: str | Path | None = None,
) -> Figure:
    """One-shot accuracy against N (or K) for several models, with 95% CI error bars.

    Args:
        series: name -> {x: accuracy, or (accuracy, ci95), or a OneShotResult}.
        xlabel: axis label ("N (ways)" or "K (shots)"). Defaults to "N (ways)".
        chance: draw the 1/N chance line (only meaningful against N). Defaults to True.
        path: PNG file to write. Defaults to None.
    """
    fig, ax = plt.subplots(figsize=(6, 4.5))
    xs_all = []
    for name, points in series.items():
        xs = np.array(sorted(points))
        acc, ci = [], []
        for x in xs:
            value = points[x]
            if hasattr(value, "accuracy"):
                value = (value.accuracy, value.ci95)
            acc.append(value[0] if isinstance(value, Sequence) else value)
            ci.append(value[1] if isinstance(value, Sequence) else 0.0)
        ax.errorbar(xs, acc, yerr=ci, marker="o", capsize=3, label=name)
        xs_all.extend(xs)
    if chance and xs_all:
        grid = np.array(sorted(set(xs_all)))
        ax.plot(grid, 1.0 / grid, "k:", label="chance 1/N")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.01)
    ax.legend(fontsize=8)
    return _finish(fig, path)


def plot_distance_boxplots(
    distances: np.ndarray,
    same: np.ndarray,
    classes: np.ndarray | None = None,
    max_classes: int = 20,
    path: str | Path | None = None,
) -> Figure:
    """Distances of positive (same-class) vs negative pairs, overall and per class.

    Args:
        distances: (P,) pair distances.
        same: (P,) True for same-class pairs.
        classes: optional (P,) class of the first image of each pair; adds a per-class panel
            (first ``max_classes`` classes). Defaults to None.
        max_classes: classes shown per class. Defaults to 20.
        path: PNG file to write. Defaults to None.
    """
    distances, same = np.asarray(distances), np.asarray(same, dtype=bool)
    panels = 1 if classes is None else 2
    fig, axes = plt.subplots(
        1,
        panels,
        figsize=(4 + 7 * (panels - 1), 4.5),
        squeeze=False,
        gridspec_kw={"width_ratios": [1, 4][:panels]},
    )
    ax = axes[0, 0]
    ax.boxplot([distances[same], distances[~same]], showfliers=False)
    ax.set_xticks([1, 2], ["positive", "negative"])
    ax.set_ylabel("distance")
    ax.set_title("all pairs")
    if classes is not None:
        classes = np.asarray(classes)
        shown = np.unique(classes)[:max_classes]
        ax = axes[0, 1]
        pos = [distances[same & (classes == c)] for c in shown]
        neg = [distances[~same & (classes == c)] for c in shown]
        x = np.arange(len(shown)) * 3.0
        for data, offset, colour in ((pos, 0.0, "tab:green"), (neg, 1.0, "tab:red")):
            box = ax.boxplot(
                data, positions=x + offset, widths=0.8, showfliers=False, patch_artist=True
            )
            for patch in box["boxes"]:
                patch.set_facecolor(colour)
        ax.set_xticks(x + 0.5, [str(c) for c in shown], fontsize=7)
        ax.set_xlabel("class (green: positive, red: negative)")
        ax.set_title("per class")
    return _finish(fig, path)


def plot_neighbour_strips(
    query_images: np.ndarray,
    neighbour_images: np.ndarray,
    correct: np.ndarray | None = None,
    distances: np.ndarray | None = None,
    path: str | Path | None = None,
) -> Figure:
    """Rows of a query followed by its nearest neighbours (e.g. the top 10).

    Args:
        query_images: (Q, H, W) queries.
        neighbour_images: (Q, T, H, W) neighbours, nearest first.
        correct: optional (Q, T) booleans: same class as the query (green / red frame).
        distances: optional (Q, T) distances written under each neighbour.
        path: PNG file to write. Defaults to None.
    """
    query_images, neighbour_images = np.asarray(query_images), np.asarray(neighbour_images)
    q, t = neighbour_images.shape[:2]
    fig, axes = plt.subplots(q, t + 1, figsize=(1.1 * (t + 1), 1.25 * q), squeeze=False)
    for row in range(q):
        axes[row, 0].imshow(query_images[row], cmap="gray_r")
        axes[row, 0].set_title("query", fontsize=7)
        for col in range(t):
            ax = axes[row, col + 1]
            ax.imshow(neighbour_images[row, col], cmap="gray_r")
            if correct is not None:
                for spine in ax.spines.values():
                    spine.set_edgecolor("tab:green" if correct[row, col] else "tab:red")
                    spine.set_linewidth(2)
            if distances is not None:
                ax.set_xlabel(f"{distances[row, col]:.3g}", fontsize=6)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    return _finish(fig, path)


def plot_loss_curves(
    histories: Mapping[str, Mapping[str, Sequence[float]]],
    keys: Sequence[str] = ("loss",),
    x: str | None = None,
    log_y: bool = False,
    path: str | Path | None = None,
) -> Figure:
    """Loss curves of several runs on one figure.

    Args:
        histories: run name -> columns (e.g. a ``history.csv`` read into name -> list), with a
            "step" (preferred) or "epoch" column and the ``keys`` columns.
        keys: columns to draw (one line each per run; missing ones skipped). Defaults to ("loss",).
        x: x column; defaults to "step" if present, else "epoch", else the row number.
        log_y: logarithmic loss axis. Defaults to False.
        path: PNG file to write. Defaults to None.
    """
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xlabel = x or "step"
    for name, columns in histories.items():
        x_key = x or next((k for k in ("step", "epoch") if k in columns), None)
        for key in keys:
            if key not in columns:
                continue
            ys = np.asarray(columns[key], dtype=np.float64)
            xs = np.asarray(columns[x_key], dtype=np.float64) if x_key else np.arange(len(ys))
            ax.plot(xs, ys, label=name if len(keys) == 1 else f"{name}: {key}")
            xlabel = x_key or "row"
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(keys[0] if len(keys) == 1 else "value")
    ax.set_title("Training curves")
    if ax.lines:
        ax.legend(fontsize=8)
    return _finish(fig, path)
