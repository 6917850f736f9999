"""Run folders: read, load and compare what ``python -m oneshot.train`` writes.

A run folder ``OUT/<run>/`` holds ``config.json``, ``history.csv`` (one row per logged chunk:
step, seconds, loss, ...), ``metrics.json`` (the evaluation report) and ``model.keras``. This
module reads them back: :func:`read_history`, :func:`load_run` (a :class:`Run` with its model
and scorer), :func:`committed_reports` (every report under ``results/``), and turns reports
into the comparison tables of ``python -m oneshot.compare``, the notebooks and
``results/README.md`` (:func:`headline_metrics`, :func:`metrics_table`, :func:`reports_table`).
"""

from __future__ import annotations

import csv
import json
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oneshot.data.datasets import TEST_SPLIT

HISTORY_FILE = "history.csv"
EXPERIMENT_FILE = "experiment.json"
METRICS_FILE = "metrics.json"
MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
RETRIEVAL_NAMES = {
    "precision_at_1": "precision@1 (retrieval)",
    "r_precision": "R-precision (retrieval)",
    "map_at_r": "MAP@R (retrieval)",
}
# rows that are fractions of 1 (accuracies, rates) and shown in percent with percent=True
_FRACTION_MARKERS = ("-shot", "TPR@", "rank-1", "(retrieval)")


def read_history(run_dir: str | Path) -> dict[str, list[float]]:
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


@dataclass
class Run:
    """A finished run folder: its config, trained model, training log and evaluation report.

    Attributes:
        run_dir: the folder.
        config: the run's ``RunConfig`` (from ``config.json``; the seed is in ``seed``).
        model: the trained Keras model (``model.keras``).
        history: ``history.csv`` columns (step, seconds, loss, ...).
        metrics: the ``metrics.json`` report, or None if the run was not evaluated.
        seed: the training seed.
    """

    run_dir: Path
    config: Any
    model: Any
    history: dict[str, list[float]]
    metrics: dict[str, Any] | None
    seed: int

    @property
    def scorer(self):
        """The model's ``Scorer``: its learned metric or the distance it was trained with, and
        the run's test-time shift averaging."""
        from oneshot.evaluation.scoring import Scorer

        return Scorer.from_model(
            self.model, distance=self.config.eval_distance, shifts=self.config.test_shifts
        )

    @property
    def train_minutes(self) -> float:
        seconds = self.history.get("seconds", [])
        return float(seconds[-1]) / 60.0 if seconds else float("nan")

    def describe(self) -> str:
        """One line: what was trained, for how long, and where it is."""
        c = self.config
        return (
            f"{c.name} (seed {self.seed}): {c.kind} model, {c.network} -> {c.embedding_dim}-d, "
            f"{c.dataset} {c.image_size}x{c.image_size}, {c.steps} steps in "
            f"{self.train_minutes:.1f} min of training; {self.run_dir}"
        )


def load_run(run_dir: str | Path) -> Run:
    """Load a finished run folder (clear errors for a folder that is not one)."""
    from oneshot.models.saving import load_model
    from oneshot.training.configs import RunConfig

    run_dir = Path(run_dir)
    missing = [f for f in (CONFIG_FILE, HISTORY_FILE, MODEL_FILE) if not (run_dir / f).exists()]
    if missing:
        raise FileNotFoundError(
            f"{run_dir} is not a finished run folder (missing {', '.join(missing)}). Train it "
            "with python -m oneshot.train, or pass a folder like results/mnist-triplet/triplet."
        )
    values = json.loads((run_dir / CONFIG_FILE).read_text())
    seed = int(values.pop("seed", 0))
    metrics_file = run_dir / METRICS_FILE
    return Run(
        run_dir=run_dir,
        config=RunConfig.from_dict(values),
        model=load_model(run_dir / MODEL_FILE),
        history=read_history(run_dir),
        metrics=json.loads(metrics_file.read_text()) if metrics_file.exists() else None,
        seed=seed,
    )


def committed_reports(
    results_dir: str | Path, dataset: str | None = None
) -> dict[str, dict[str, Any]]:
    """``metrics.json`` of every run under ``results_dir`` evaluated on its dataset's test
    split, keyed ``experiment/run`` (optionally one dataset). Runs evaluated on validation
    alphabets (tuning) are left out: their numbers are not comparable."""
    found = {}
    for path in sorted(Path(results_dir).glob("*/*/" + METRICS_FILE)):
        report = json.loads(path.read_text())
        if report.get("split") != TEST_SPLIT.get(report.get("dataset")):
            continue
        if dataset is None or report.get("dataset") == dataset:
            found[f"{path.parent.parent.name}/{path.parent.name}"] = report
    return found


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


def task_name(task: Mapping[str, Any], dataset: str | None) -> str:
    """``"20-way 1-shot within-alphabet"``: an N-way task named with its protocol."""
    p = task.get("protocol", {})
    name = f"{p.get('n_way')}-way {p.get('k_shot', 1)}-shot"
    if dataset == "omniglot":
        name += " within-alphabet" if p.get("within_alphabet") else " unstructured"
    return name


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


def _run_names(seed_dirs: list[Path]) -> list[str]:
    """Run names of seed folders in the experiment's order (``experiment.json``), then any
    other run folder, each name once."""
    names: list[str] = []
    for seed_dir in seed_dirs:
        experiment = Path(seed_dir) / EXPERIMENT_FILE
        if experiment.exists():
            names += [run["name"] for run in json.loads(experiment.read_text()).get("runs", [])]
        names += sorted(p.parent.name for p in Path(seed_dir).glob("*/" + METRICS_FILE))
    return list(dict.fromkeys(names))


def seed_columns(seed_dirs: list[Path]) -> dict[str, dict[str, dict[str, float]]]:
    """Headline metrics (with training steps and minutes) of every evaluated run of seed
    folders such as ``results/omniglot-losses/seed0 ... seed2``: run name -> seed folder name
    -> metrics. Unfinished runs (no ``metrics.json``) are left out, so a comparison can be read
    while its seeds are still running. Seed folders of several experiments can be mixed (e.g.
    a lever's runs against another experiment's baseline): runs are matched by name and seeds
    by folder name, so a run name may appear once per seed folder name."""
    found: dict[str, dict[str, dict[str, float]]] = {}
    for name in _run_names(seed_dirs):
        done = [Path(d) for d in seed_dirs if (Path(d) / name / METRICS_FILE).exists()]
        seeds = [d.name for d in done]
        if len(set(seeds)) < len(seeds):
            twice = sorted({str(d) for d in done if seeds.count(d.name) > 1})
            raise ValueError(
                f"Run {name!r} is in several seed folders of the same name: {', '.join(twice)}. "
                "Compare the experiments separately, or rename one run."
            )
        if done:
            columns = _run_columns([d / name for d in done])
            found[name] = {d.name: c for d, c in zip(done, columns, strict=True)}
    return found


def seed_metrics(
    columns_by_run: Mapping[str, Mapping[str, Mapping[str, float]]],
) -> dict[str, dict[str, Any]]:
    """:func:`seed_columns` summarised: run name -> metric -> ``SeedSummary`` (mean over the
    seeds and its 95% t interval), for the metrics every seed of the run reports."""
    from oneshot.evaluation.seeds import seed_summary

    summary = {}
    for name, by_seed in columns_by_run.items():
        columns = list(by_seed.values())
        shared = [k for k in columns[0] if all(k in c for c in columns)]
        summary[name] = {k: seed_summary([c[k] for c in columns]) for k in shared}
    return summary


def paired_to_baseline(
    columns_by_run: Mapping[str, Mapping[str, Mapping[str, float]]],
    name: str,
    baseline: str,
    metric: str,
) -> Any:
    """``SeedSummary`` of run ``name`` minus run ``baseline`` on ``metric``, seed by seed over
    the seeds both have (runs with one seed share its batches and evaluation episodes); None
    with fewer than two such seeds."""
    from oneshot.evaluation.seeds import paired_difference

    runs, base = columns_by_run[name], columns_by_run[baseline]
    seeds = [s for s in runs if s in base and metric in runs[s] and metric in base[s]]
    if len(seeds) < 2:
        return None
    return paired_difference([runs[s][metric] for s in seeds], [base[s][metric] for s in seeds])


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


def seeds_table(
    columns_by_run: Mapping[str, Mapping[str, Mapping[str, float]]],
    metrics: list[str],
    baseline: str | None = None,
    order_by: str | None = None,
) -> str:
    """Markdown table of :func:`seed_columns`, one row per run and one column per metric:
    ``mean ± 95% t interval`` over seeds, accuracies and rates in percent, AUC as an area;
    rows best first by the mean of ``order_by`` when given (else in the runs' order).

    With ``baseline`` (a run name), a cell is marked ``▲`` (better) or ``▼`` (worse) when the
    run's seed-by-seed difference to the baseline (:func:`paired_to_baseline`) has an interval
    that excludes zero; higher is better except where :func:`lower_is_better`.
    """
    summary = seed_metrics(columns_by_run)
    if order_by is not None:
        missing = float("inf") if lower_is_better(order_by) else float("-inf")

        def key(name: str) -> float:
            value = summary[name][order_by].mean if order_by in summary[name] else missing
            return value if lower_is_better(order_by) else -value

        summary = {name: summary[name] for name in sorted(summary, key=key)}
    header = ["run", "seeds", *(_short_metric(m) for m in metrics)]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for name, by_metric in summary.items():
        cells = [f"`{name}`", str(len(columns_by_run[name]))]
        for metric in metrics:
            if metric not in by_metric:
                cells.append("-")
                continue
            scale = 100.0 if _is_fraction(metric) else 1.0
            cell = by_metric[metric].format(scale, 4 if metric.startswith("AUC") else 1)
            if baseline in columns_by_run and name != baseline:
                difference = paired_to_baseline(columns_by_run, name, baseline, metric)
                if difference is not None and difference.excludes_zero():
                    better = (difference.mean < 0) == lower_is_better(metric)
                    cell += " ▲" if better else " ▼"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
