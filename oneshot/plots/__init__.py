"""Every figure of the project (plotting only: the numbers come from ``oneshot.evaluation``).

- ``embeddings``: 2-D projections of embeddings (PCA, t-SNE);
- ``curves``: ROC, CMC, accuracy against N, training losses, error-rate bars;
- ``distances``: same-class vs different-class pair distances (box plots, histograms);
- ``images``: image grids and nearest-neighbour strips;
- ``comparisons``: metrics over seeds with their intervals, accuracy against training time.

Each function returns its matplotlib Figure and, given ``path``, also saves it as a PNG.
Importing this package leaves the matplotlib backend alone (a notebook keeps its inline or
interactive one); the command lines choose the headless Agg backend themselves
(:func:`oneshot.cli.common.use_headless_backend`).
"""

from oneshot.plots.comparisons import plot_curves_by_group, plot_seed_intervals
from oneshot.plots.curves import (
    plot_accuracy_vs,
    plot_cmc_curves,
    plot_error_bars,
    plot_loss_curves,
    plot_roc_curves,
)
from oneshot.plots.distances import plot_distance_boxplots, plot_distance_histograms
from oneshot.plots.embeddings import PROJECTIONS, plot_embedding_2d, project_2d
from oneshot.plots.images import plot_images, plot_neighbour_strips

__all__ = [
    "PROJECTIONS",
    "plot_accuracy_vs",
    "plot_cmc_curves",
    "plot_curves_by_group",
    "plot_distance_boxplots",
    "plot_distance_histograms",
    "plot_embedding_2d",
    "plot_error_bars",
    "plot_images",
    "plot_loss_curves",
    "plot_neighbour_strips",
    "plot_roc_curves",
    "plot_seed_intervals",
    "project_2d",
]
