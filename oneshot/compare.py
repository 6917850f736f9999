"""Command line: compare runs side by side.

    python -m oneshot.compare RUN_DIR [RUN_DIR ...] [--out FILE.png] [--markdown] [--mean]

Draws the loss curves of every run on one figure (``history.csv``) and prints a table of their
headline metrics (``metrics.json``) next to each other; ``--mean`` adds the mean and standard
deviation over the runs (e.g. the seeds of one configuration).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from oneshot.cli import UsageError, add_debug_flag, run_command, use_headless_backend

HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
RETRIEVAL_NAMES = {
    "precision_at_1": "precision@1 (retrieval)",
    "r_precision": "R-precision (retrieval)",
    "map_at_r": "MAP@R (retrieval)",
}
# rows that are fractions of 1 (accuracies, rates) and shown in percent with percent=True
_FRACTION_MARKERS = ("-shot", "TPR@", "rank-1", "(retrieval)")


def read_history(run_dir: Path) -> dict[str, list[float]]:
    """Columns of a run's ``history.csv`` as float lists (``step`` first if present)."""
    path = Path(run_dir) / HISTORY_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"No {HISTORY_FILE} in {run_dir}: is it a run folder written by python -m oneshot.train?"
        )
    with path.open() as f:
        rows = list(csv.DictReader(f))
    columns: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            try:
                columns.setdefault(key, []).append(float(value))
            except (TypeError, ValueError):
                continue
    return columns


def run_label(run_dir: Path, depth: int = 2) -> str:
    """``experiment/run`` from the last ``depth`` folder names, e.g. ``mnist-triplet/triplet``."""
    return "/".join(Path(run_dir).resolve().parts[-depth:])


def run_labels(run_dirs: list[Path]) -> list[str]:
    """:func:`run_label` of each folder, with more parent folders where two would read the same
    (``omniglot-best/seed0/batch-hard`` vs ``omniglot-best-2cores/seed0/batch-hard``)."""
    depth = 2
    while True:
        labels = [run_label(d, depth) for d in run_dirs]
        longest = max(len(Path(d).resolve().parts) for d in run_dirs)
        if len(set(labels)) == len(labels) or depth >= longest:
            return labels
        depth += 1


def headline_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The numbers people compare, named with their protocol, from a ``metrics.json`` report."""
    out: dict[str, float] = {}
    for task in report.get("nway", []):
        p = task.get("protocol", {})
        where = "within-alphabet" if p.get("within_alphabet") else "unstructured"
        name = f"{p.get('n_way')}-way {p.get('k_shot', 1)}-shot"
        if report.get("dataset") == "omniglot":
            name += f" {where}"
        out[name] = task["accuracy"]
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
    return out


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


def protocol_note(report: dict[str, Any]) -> str:
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


def metrics_table(
    run_dirs: list[Path], markdown: bool = False, mean: bool = False, percent: bool = False
) -> str:
    """Headline metrics side by side: one row per metric, one column per run.

    Plain text for the terminal, or a Markdown table (``markdown=True``) for results/README.md.
    ``mean=True`` adds columns with the mean and the sample standard deviation over the runs
    of each metric all of them report. ``percent=True`` shows accuracies and rates in percent
    (one unit per kind of number: percent for accuracies and error rates, AUC in [0, 1]) and
    ends with the protocols of the first run.
    """
    labels = run_labels(run_dirs)
    columns = _run_columns(run_dirs)
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
    first = Path(run_dirs[0]) / METRICS_FILE
    if percent and first.exists():
        lines.append("protocols: " + protocol_note(json.loads(first.read_text())))
    return "\n".join(lines)


def compare_runs(run_dirs: list[Path], out: Path | None = None):
    """Plot the loss curves of ``run_dirs`` on one figure (saved to ``out``); return it."""
    from oneshot.plots import plot_loss_curves

    histories = dict(zip(run_labels(run_dirs), (read_history(d) for d in run_dirs), strict=True))
    return plot_loss_curves(histories, path=out)


def main(argv: list[str] | None = None) -> int:
    use_headless_backend()
    parser = argparse.ArgumentParser(
        prog="python -m oneshot.compare",
        description="Loss curves of several runs on one figure, and their metrics side by side.",
    )
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (OUT/<run>)")
    parser.add_argument("--out", type=Path, default=Path("comparison.png"), help="figure file")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument(
        "--mean", action="store_true", help="add the mean and std over the runs (e.g. seeds)"
    )
    add_debug_flag(parser)
    args = parser.parse_args(argv)

    def body() -> int:
        missing = [str(d) for d in args.runs if not (d / HISTORY_FILE).exists()]
        if missing:
            raise UsageError(
                f"not run folders (no {HISTORY_FILE}): {', '.join(missing)}. "
                "Pass folders like runs/mnist-triplet/triplet."
            )
        try:
            table = metrics_table(args.runs, markdown=args.markdown, mean=args.mean)
        except (ValueError, KeyError, TypeError) as error:
            raise UsageError(
                f"unreadable {METRICS_FILE} or {HISTORY_FILE} in {', '.join(map(str, args.runs))}"
                f" ({type(error).__name__}: {error}). Re-run python -m oneshot.train --resume, "
                "or python -m oneshot.evaluate."
            ) from error
        compare_runs(args.runs, args.out)
        print(table)
        print(f"\nloss curves: {args.out}")
        return 0

    return run_command(body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
