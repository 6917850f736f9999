"""Finished run folders read back: :func:`load_run` (a :class:`Run` with its config, model,
loss curve and report) and :func:`committed_reports` (every report under ``results/``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oneshot.data.datasets import TEST_SPLIT
from oneshot.evaluation.scoring import Scorer
from oneshot.models.saving import load_model
from oneshot.training.configs import RunConfig
from oneshot.training.files import (
    CONFIG_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    MODEL_FILE,
    read_history,
)


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
