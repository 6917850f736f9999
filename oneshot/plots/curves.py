"""Curves and bars of numbers: ROC, CMC, accuracy against N, training losses, error rates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from oneshot.plots.base import finish


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
    return finish(fig, path)


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
    return finish(fig, path)


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
    return finish(fig, path)


def plot_loss_curves(
    histories: Mapping[str, Mapping[str, Sequence[float]]],
    keys: Sequence[str] = ("loss",),
    x: str | None = None,
    log_y: bool = False,
    path: str | Path | None = None,
    accuracy: str | None = None,
    kept_step: float | None = None,
) -> Figure:
    """Loss curves of several runs on one figure.

    Args:
        histories: run name -> columns (e.g. a ``history.csv`` read into name -> list), with a
            "step" (preferred) or "epoch" column and the ``keys`` columns.
        keys: columns to draw (one line each per run; missing ones skipped). Defaults to ("loss",).
        x: x column; defaults to "step" if present, else "epoch", else the row number.
        log_y: logarithmic loss axis. Defaults to False.
        path: PNG file to write. Defaults to None.
        accuracy: a column of held-out accuracy per chunk (e.g. ``"monitor_5way"``), drawn
            against a right-hand axis. Defaults to None.
        kept_step: the step whose checkpoint was kept, marked by a vertical line. Defaults to
            None.
    """
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xlabel = x or "step"
    if accuracy is not None:
        task = accuracy.removeprefix("monitor_").replace("way", "-way")  # monitor_5way: 5-way
        right = ax.twinx()
        for name, columns in histories.items():
            x_key = x or next((k for k in ("step", "epoch") if k in columns), None)
            if accuracy in columns and x_key:
                right.plot(columns[x_key], columns[accuracy], "o--", color="tab:orange",
                           label=f"{name}: held-out {task}")  # fmt: skip
        right.set_ylabel(f"held-out accuracy ({task} 1-shot)")
        right.set_ylim(0, 1.01)
        if right.lines:
            right.legend(fontsize=8, loc="center right")
    if kept_step is not None:
        ax.axvline(kept_step, color="grey", ls=":", label=f"kept step {kept_step:g}")
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
    return finish(fig, path)


def plot_error_bars(
    errors: Mapping[str, float],
    highlight: Sequence[str] = (),
    title: str = "",
    path: str | Path | None = None,
) -> Figure:
    """Horizontal bars of error rates in percent (e.g. ours next to published figures)."""
    names = list(errors)
    values = [errors[n] for n in names]
    colours = ["tab:orange" if n in highlight else "tab:blue" for n in names]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.2))
    bars = ax.barh(names, values, color=colours)
    ax.bar_label(bars, [f"{v:.1f}%" for v in values], padding=3, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("error (%)")
    ax.set_xlim(0, max(values) * 1.15 + 1)
    ax.set_title(title)
    return finish(fig, path)
