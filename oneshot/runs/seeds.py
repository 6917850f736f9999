"""Experiments repeated over seeds (``results/omniglot-losses/seed0 ... seed2``): every run's
headline metrics per seed (:func:`seed_columns`), their means with 95% t intervals
(:func:`seed_metrics`), seed-by-seed differences to a baseline run
(:func:`paired_to_baseline`) and the Markdown table of all of them (:func:`seeds_table`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from oneshot.evaluation.seeds import paired_difference, seed_summary
from oneshot.runs.tables import _is_fraction, _run_columns, _short_metric, lower_is_better
from oneshot.training.files import EXPERIMENT_FILE, METRICS_FILE


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
    runs, base = columns_by_run[name], columns_by_run[baseline]
    seeds = [s for s in runs if s in base and metric in runs[s] and metric in base[s]]
    if len(seeds) < 2:
        return None
    return paired_difference([runs[s][metric] for s in seeds], [base[s][metric] for s in seeds])


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
