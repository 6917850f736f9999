"""Reports turned into the tables people compare: :func:`headline_metrics` (the numbers of a
``metrics.json``, named with their protocol), :func:`metrics_table` of run folders side by side
and :func:`reports_table` of reports, as printed by ``oneshot compare``, the notebooks and
``results/README.md``."""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from oneshot.evaluation.report import task_name
from oneshot.training.files import METRICS_FILE, read_history, run_labels

RETRIEVAL_NAMES = {
    "precision_at_1": "precision@1 (retrieval)",
    "r_precision": "R-precision (retrieval)",
    "map_at_r": "MAP@R (retrieval)",
}


# rows that are fractions of 1 (accuracies, rates) and shown in percent with percent=True
_FRACTION_MARKERS = ("-shot", "TPR@", "rank-1", "(retrieval)")


def headline_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """The numbers people compare, named with their protocol, from a ``metrics.json`` report."""
    out: dict[str, float] = {}
    for task in report.get("nway", []):
        out[task_name(task, report.get("dataset"))] = task["accuracy"]
    lake = report.get("lake", {})
    if "mean_error" in lake:
        out["Lake runs error (%)"] = lake["mean_error"]
    verification = report.get("verification", {})
    for kind in ("balanced", "first_n"):
        if kind in verification:
            out[f"AUC ({kind})"] = verification[kind]["auc"]
            out[f"TPR@FPR1e-3 ({kind})"] = verification[kind]["tpr_at_fpr"]
    if "rank1" in report.get("cmc", {}):
        out[f"CMC rank-1 ({report['cmc']['protocol'].get('n_classes')} classes)"] = report["cmc"][
            "rank1"
        ]
    for key, name in RETRIEVAL_NAMES.items():
        if key in report.get("retrieval", {}):
            out[name] = report["retrieval"][key]
    if "accuracy" in report.get("mnist_transfer", {}):
        out["MNIST 10-way 1-shot (Omniglot-trained)"] = report["mnist_transfer"]["accuracy"]
    heldout = report.get("heldout", {})  # runs holding out classes: the baselines, same episodes
    for key, label in (
        ("model", "model"),
        ("untrained", "untrained network"),
        ("pixels", "raw pixels"),
    ):
        if "accuracy" in heldout.get(key, {}):
            out[f"held-out {heldout['protocol']['task']}: {label}"] = heldout[key]["accuracy"]
    return out


def protocol_note(report: Mapping[str, Any]) -> str:
    """One line naming the protocols behind a ``metrics.json`` report's headline numbers."""
    parts = [f"{report.get('dataset')} {report.get('split')} split ({report.get('images')} "
             f"images, {report.get('classes')} classes)"]  # fmt: skip
    if report.get("nway"):
        parts.append(f"N-way K-shot over {report['nway'][0]['protocol'].get('episodes')} episodes")
    if "mean_error" in report.get("lake", {}):
        parts.append("Lake: the 20 official 20-way 1-shot runs")
    verification = report.get("verification", {})
    if verification:
        kinds = [
            "class-balanced pairs" if kind == "balanced" else values["protocol"]["pairs"]
            for kind, values in verification.items()
        ]
        parts.append("AUC and TPR at FPR 1e-3 on " + " and on ".join(kinds))
    if "protocol" in report.get("cmc", {}):
        parts.append(f"CMC over {report['cmc']['protocol'].get('n_classes')} classes")
    if report.get("retrieval"):
        parts.append("retrieval: each image against all the others")
    return "; ".join(parts)


def _run_columns(run_dirs: list[Path]) -> list[dict[str, float]]:
    """Headline metrics of each run, plus its training steps and seconds from history.csv."""
    columns = []
    for d in run_dirs:
        path = Path(d) / METRICS_FILE
        column = headline_metrics(json.loads(path.read_text())) if path.exists() else {}
        history = read_history(d)
        if history.get("step"):
            column["training steps"] = history["step"][-1]
        if history.get("seconds"):
            column["training minutes"] = history["seconds"][-1] / 60.0
        columns.append(column)
    return columns


def _in_percent(column: dict[str, float]) -> dict[str, float]:
    """Accuracies and rates (fractions of 1) as percent, renamed ``... (%)``; the Lake error
    is already in percent; AUC stays an area in [0, 1]."""
    out = {}
    for key, value in column.items():
        if any(marker in key for marker in _FRACTION_MARKERS):
            out[f"{key} (%)"] = 100.0 * value
        else:
            out[key] = value
    return out


def format_table(
    labels: list[str],
    columns: list[dict[str, float]],
    markdown: bool = False,
    mean: bool = False,
    percent: bool = False,
    note: str | None = None,
) -> str:
    """One row per metric, one column per label: plain text or Markdown (see
    :func:`metrics_table` for ``mean`` and ``percent``); ``note`` ends a plain-text table."""
    labels = list(labels)
    if percent:
        columns = [_in_percent(c) for c in columns]
    keys = list(dict.fromkeys(k for c in columns for k in c))
    if mean and len(columns) > 1:
        shared = [k for k in keys if all(k in c for c in columns)]
        labels += ["mean", "std"]
        values = {k: [c[k] for c in columns] for k in shared}
        columns = columns + [
            {k: statistics.fmean(v) for k, v in values.items()},
            {k: statistics.stdev(v) for k, v in values.items()},
        ]

    def fmt(column: dict[str, float], key: str) -> str:
        if key not in column:
            return "-"
        if key == "training steps":
            return f"{column[key]:.0f}"
        if key.endswith("(%)"):
            return f"{column[key]:.2f}"
        return (
            f"{column[key]:.1f}" if key == "training minutes" and percent else f"{column[key]:.4f}"
        )

    if markdown:
        lines = ["| metric | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
        lines += [f"| {k} | " + " | ".join(fmt(c, k) for c in columns) + " |" for k in keys]
        return "\n".join(lines)
    width = max([len(k) for k in keys] + [6])
    cell = max(len(label) for label in labels) + 2
    lines = [" " * width + "".join(f"{label:>{cell}}" for label in labels)]
    lines += [f"{k:<{width}}" + "".join(f"{fmt(c, k):>{cell}}" for c in columns) for k in keys]
    if note:
        lines.append("protocols: " + note)
    return "\n".join(lines)


def metrics_table(
    run_dirs: list[Path], markdown: bool = False, mean: bool = False, percent: bool = False
) -> str:
    """Headline metrics of run folders side by side: one row per metric, one column per run.

    Plain text for the terminal, or a Markdown table (``markdown=True``) for results/README.md.
    ``mean=True`` adds columns with the mean and the sample standard deviation over the runs
    of each metric all of them report. ``percent=True`` shows accuracies and rates in percent
    (one unit per kind of number: percent for accuracies and error rates, AUC in [0, 1]) and
    ends with the protocols of the first run.
    """
    first = Path(run_dirs[0]) / METRICS_FILE
    note = protocol_note(json.loads(first.read_text())) if percent and first.exists() else None
    return format_table(run_labels(run_dirs), _run_columns(run_dirs), markdown, mean, percent, note)


def reports_table(
    reports: Mapping[str, Mapping[str, Any]], markdown: bool = True, percent: bool = True
) -> str:
    """Headline metrics of in-memory reports (name -> ``evaluate_scorer`` report) side by
    side, Markdown by default, followed by the protocols of the first report."""
    names = list(reports)
    table = format_table(
        names, [headline_metrics(reports[n]) for n in names], markdown, percent=percent
    )
    if reports and markdown:
        table += "\n\nProtocols: " + protocol_note(reports[names[0]]) + "."
    return table


def lower_is_better(metric: str) -> bool:
    """Error rates and costs: the Lake error and the training minutes."""
    return metric.startswith("Lake") or metric == "training minutes"


def _is_fraction(metric: str) -> bool:
    return any(marker in metric for marker in _FRACTION_MARKERS)


def _short_metric(metric: str) -> str:
    """Column titles for a table with one row per run."""
    return (
        metric.replace(" (retrieval)", "").replace("TPR@FPR1e-3", "TPR@1e-3")
        .replace("MNIST 10-way 1-shot (Omniglot-trained)", "MNIST 10-way")
        .replace("Lake runs error (%)", "Lake error")
    )  # fmt: skip
