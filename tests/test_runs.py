"""oneshot.runs: reading, loading and comparing run folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oneshot import runs

RESULTS = Path(__file__).resolve().parents[1] / "results"
NWAY_REPORT = {
    "dataset": "omniglot",
    "split": "evaluation",
    "images": 100,
    "classes": 20,
    "nway": [
        {"accuracy": 0.5, "ci95": 0.01, "protocol": {"n_way": 20, "within_alphabet": True, "episodes": 7}},
        {"accuracy": 0.7, "ci95": 0.01, "protocol": {"n_way": 20, "within_alphabet": False, "episodes": 7}},
    ],
}  # fmt: skip


def test_reports_table_names_protocols_and_shows_percent():
    lines = runs.reports_table({"a": NWAY_REPORT, "b": NWAY_REPORT}).splitlines()
    assert lines[0] == "| metric | a | b |"
    assert "| 20-way 1-shot within-alphabet (%) | 50.00 | 50.00 |" in lines
    assert "| 20-way 1-shot unstructured (%) | 70.00 | 70.00 |" in lines
    assert lines[-1].startswith("Protocols: omniglot evaluation split (100 images, 20 classes)")
    assert "over 7 episodes" in lines[-1]


def test_reports_table_leaves_fractions_alone_without_percent():
    table = runs.reports_table({"a": NWAY_REPORT}, percent=False)
    assert "| 20-way 1-shot within-alphabet | 0.5000 |" in table.splitlines()


def test_metrics_table_of_committed_runs_matches_their_reports():
    run_dir = RESULTS / "mnist-triplet" / "triplet"
    report = json.loads((run_dir / runs.METRICS_FILE).read_text())
    table = runs.metrics_table([run_dir], markdown=True)
    expected = runs.headline_metrics(report)["10-way 1-shot"]
    assert f"| 10-way 1-shot | {expected:.4f} |" in table.splitlines()


def test_load_run_gives_the_model_config_history_and_seed():
    run = runs.load_run(RESULTS / "mnist-triplet" / "triplet")
    assert run.config.name == "triplet" and run.config.dataset == "mnist"
    assert run.seed == 0 and run.history["step"][-1] == run.config.steps
    assert run.metrics["dataset"] == "mnist"
    assert run.model.get_layer("embedding").output.shape[-1] == run.config.embedding_dim
    assert "1000 steps" in run.describe()


def test_load_run_names_what_is_missing(tmp_path):
    (tmp_path / runs.HISTORY_FILE).write_text("step,loss\n1,0.5\n")
    with pytest.raises(FileNotFoundError, match="config.json, model.keras"):
        runs.load_run(tmp_path)


def test_committed_reports_keep_test_splits_only():
    found = runs.committed_reports(RESULTS, "omniglot")
    assert "omniglot-best-quadruplet/quadruplet" in found
    assert not [k for k in found if k.startswith("omniglot-tuning/")]  # validation alphabets
    assert all(r["split"] == "evaluation" for r in found.values())
