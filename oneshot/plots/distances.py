"""Distances of same-class against different-class pairs: box plots and histograms."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from oneshot.plots.base import finish, label_name


def plot_distance_boxplots(
    distances: np.ndarray,
    same: np.ndarray,
    classes: np.ndarray | None = None,
    max_classes: int = 20,
    path: str | Path | None = None,
    class_names: Sequence[str] | None = None,
) -> Figure:
    """Distances of positive (same-class) vs negative pairs, overall and per class.

    Args:
        distances: (P,) pair distances.
        same: (P,) True for same-class pairs.
        classes: optional (P,) class of the first image of each pair; adds a per-class panel
            (first ``max_classes`` classes). Defaults to None.
        max_classes: classes shown per class. Defaults to 20.
        path: PNG file to write. Defaults to None.
        class_names: the name of each class label, on the per-class axis. Defaults to None
            (the labels).
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
        labels = [label_name(c, class_names) for c in shown]
        ax.set_xticks(x + 0.5, labels, fontsize=7, rotation=30 if len(labels) > 5 else 0)
        ax.set_xlabel("class (green: positive, red: negative)")
        ax.set_title("per class")
    return finish(fig, path)


def plot_distance_histograms(
    distances: Mapping[str, tuple[np.ndarray, np.ndarray]],
    bins: int = 50,
    path: str | Path | None = None,
) -> Figure:
    """Histograms of same-class vs different-class pair distances, one panel per model.

    Args:
        distances: model name -> ``(distances (P,), same (P,) booleans)``.
        bins: histogram bins. Defaults to 50.
    """
    fig, axes = plt.subplots(1, len(distances), figsize=(5 * len(distances), 3.5), squeeze=False)
    for ax, (name, (values, same)) in zip(axes[0], distances.items(), strict=True):
        values, same = np.asarray(values), np.asarray(same, dtype=bool)
        edges = np.histogram_bin_edges(values, bins=bins)
        ax.hist(values[same], bins=edges, alpha=0.6, color="tab:green", label="same class")
        ax.hist(values[~same], bins=edges, alpha=0.6, color="tab:red", label="different class")
        ax.set_xlabel("distance")
        ax.set_ylabel("pairs")
        ax.set_title(name)
        ax.legend(fontsize=8)
    return finish(fig, path)
