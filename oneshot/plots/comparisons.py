"""Figures of a comparison repeated over seeds: metrics with their intervals, and accuracy
against training time (the numbers come from ``oneshot.runs.seed_columns``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from oneshot.evaluation.seeds import seed_summary
from oneshot.plots.base import finish

Columns = Mapping[str, Mapping[str, Mapping[str, float]]]  # run -> seed -> metric -> value


def _colours(names: Sequence[str], group_of: Callable[[str], str | None] | None):
    """A colour per run (by its group when ``group_of`` names one) and the legend entries."""
    palette = plt.get_cmap("tab10").colors
    groups = list(dict.fromkeys(group_of(n) for n in names)) if group_of else [None]
    colour_of_group = {g: palette[i % len(palette)] for i, g in enumerate(groups)}
    colours = [colour_of_group[group_of(n) if group_of else None] for n in names]
    return colours, {g: c for g, c in colour_of_group.items() if g is not None}


def plot_seed_intervals(
    columns_by_run: Columns,
    metrics: Sequence[str],
    group_of: Callable[[str], str | None] | None = None,
    scale_of: Callable[[str], float] | None = None,
    reference: str | None = None,
    path: str | Path | None = None,
) -> Figure:
    """One panel per metric, one row per run: the mean over seeds with its 95% t interval,
    and each seed's value as a small dot; runs sorted by the first metric (best on top).

    Args:
        columns_by_run: run -> seed -> metric -> value (``oneshot.runs.seed_columns``).
        metrics: the metrics to draw, one panel each; the first one orders the rows.
        group_of: run name -> group (e.g. the loss family), which colours the rows.
        scale_of: metric -> factor for display (100 for accuracies in percent). Defaults to 1.
        reference: a run whose mean is drawn as a dotted line on every panel (the baseline).
        path: PNG file to write. Defaults to None.
    """
    first = metrics[0]
    names = [n for n in columns_by_run if any(first in c for c in columns_by_run[n].values())]
    lower_first = first.startswith("Lake")

    def mean(name: str, metric: str) -> float:
        values = [c[metric] for c in columns_by_run[name].values() if metric in c]
        return float(np.mean(values)) if values else float("nan")

    names.sort(key=lambda n: mean(n, first), reverse=not lower_first)
    colours, legend = _colours(names, group_of)
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(3.6 * len(metrics) + 1.5, 0.32 * len(names) + 1.4),
        sharey=True, squeeze=False,
    )  # fmt: skip
    rows = np.arange(len(names))
    for ax, metric in zip(axes[0], metrics, strict=True):
        scale = scale_of(metric) if scale_of else 1.0
        for row, name, colour in zip(rows, names, colours, strict=True):
            values = [c[metric] for c in columns_by_run[name].values() if metric in c]
            if not values:
                continue
            summary = seed_summary(values)
            error = 0.0 if np.isnan(summary.ci95) else scale * summary.ci95
            ax.errorbar(scale * summary.mean, row, xerr=error, fmt="o", color=colour, capsize=3)
            ax.plot(scale * np.asarray(values), np.full(len(values), row), ".", color=colour,
                    alpha=0.35, markersize=5)  # fmt: skip
        if reference in columns_by_run and not np.isnan(mean(reference, metric)):
            ax.axvline(scale * mean(reference, metric), color="grey", linestyle=":", linewidth=1)
        ax.set_title(metric, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(rows, names, fontsize=8)
    axes[0][0].invert_yaxis()
    if legend:
        handles = [plt.Line2D([], [], marker="o", linestyle="", color=c) for c in legend.values()]
        axes[0][-1].legend(handles, list(legend), fontsize=7, loc="best")
    return finish(fig, path)


def mean_curve(
    histories: Sequence[Mapping[str, Sequence[float]]], x: str, y: str
) -> tuple[np.ndarray, np.ndarray]:
    """The row-by-row mean of ``x`` and ``y`` over several histories (seeds of one run, logged
    at the same steps), cut to the shortest one."""
    usable = [h for h in histories if h.get(x) and h.get(y)]
    if not usable:
        return np.zeros(0), np.zeros(0)
    length = min(min(len(h[x]), len(h[y])) for h in usable)
    xs = np.mean([np.asarray(h[x][:length], dtype=np.float64) for h in usable], axis=0)
    ys = np.mean([np.asarray(h[y][:length], dtype=np.float64) for h in usable], axis=0)
    return xs, ys


def plot_curves_by_group(
    histories_by_run: Mapping[str, Sequence[Mapping[str, Sequence[float]]]],
    y: str = "monitor_20way",
    x: str = "seconds",
    group_of: Callable[[str], str | None] | None = None,
    reference: str | None = None,
    ylabel: str = "monitor: 20-way 1-shot within-alphabet accuracy",
    path: str | Path | None = None,
) -> Figure:
    """``y`` against training time (minutes), the mean over each run's seeds, one panel per
    group (e.g. loss family) with the ``reference`` run drawn dashed on every panel.

    Args:
        histories_by_run: run -> its seeds' ``history.csv`` columns.
        y: the column to draw. Defaults to "monitor_20way" (the training monitor).
        x: the time column, in seconds. Defaults to "seconds" (training time without the
            monitor's own time).
        group_of: run name -> group; one panel per group. Defaults to one panel.
        reference: a run drawn on every panel. Defaults to None.
        ylabel: axis label.
        path: PNG file to write. Defaults to None.
    """
    groups = list(dict.fromkeys(group_of(n) if group_of else None for n in histories_by_run))
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4), sharey=True,
                             squeeze=False)  # fmt: skip
    for ax, group in zip(axes[0], groups, strict=True):
        members = [n for n in histories_by_run if (group_of(n) if group_of else None) == group]
        if reference in histories_by_run and reference not in members:
            xs, ys = mean_curve(histories_by_run[reference], x, y)
            ax.plot(xs / 60.0, ys, "k--", linewidth=1, label=f"{reference} (reference)")
        for name in members:
            xs, ys = mean_curve(histories_by_run[name], x, y)
            ax.plot(xs / 60.0, ys, marker=".", label=name)
        ax.set_title(group or "", fontsize=10)
        ax.set_xlabel("training minutes (mean over seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel(ylabel, fontsize=9)
    fig.tight_layout()
    return finish(fig, path)
