"""The files of a run folder ``OUT/<run>/`` that training writes, and reading its loss curve.

``config.json`` (the run's config), ``history.csv`` (one row per logged chunk: step, seconds,
loss, ...), ``metrics.json`` (the evaluation report), ``model.keras``, and ``OUT/experiment.json``
(the experiment's runs). :mod:`oneshot.runs` reads whole run folders back.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from oneshot.training.lock import FolderLock

HISTORY_FILE = "history.csv"


EXPERIMENT_FILE = "experiment.json"


METRICS_FILE = "metrics.json"


MODEL_FILE = "model.keras"


CONFIG_FILE = "config.json"


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


def write_experiment_record(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Write ``record`` to ``path``, keeping the other runs a previous ``--runs`` call of the
    same experiment wrote there (runs of one experiment may train in separate processes, so the
    read-merge-write holds the lock of the experiment folder)."""
    with FolderLock(path.parent, blocking=True, what="experiment folder"):
        return merge_into(path, record)


def merge_into(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("name", old.get("experiment")) == record.get("name", record.get("experiment")):
            record = dict(record)
            for key in ("runs", "commands"):
                if key not in record:
                    continue
                if isinstance(record[key], dict):
                    record[key] = {**old.get(key, {}), **record[key]}
                else:  # a list of run configs: a rerun keeps its place, new runs go last
                    mine = {r["name"]: r for r in record[key]}
                    kept = [mine.pop(r["name"], r) for r in old.get(key, [])]
                    record[key] = kept + list(mine.values())
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, path)
    return record
