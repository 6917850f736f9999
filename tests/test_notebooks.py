"""Every notebook runs top to bottom in quick mode (ONESHOT_QUICK=1), from notebooks/.

Each notebook gets a time budget; a failure names the notebook and shows the failing cell's
source and error. The helpers of ``oneshot.walkthrough`` the notebooks rely on are checked
directly too.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError

from oneshot import walkthrough
from oneshot.experiments import get_experiment

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(p.name for p in NOTEBOOKS_DIR.glob("*.ipynb"))
BUDGET_SECONDS = 300  # per notebook in quick mode (about a minute on an idle 2-core machine)
KERNEL = "python3"


def kernel_env(tmp_path: Path) -> dict[str, str]:
    """Extra environment so that a ``python3`` kernel running this interpreter exists.

    Uses the installed spec when there is one; otherwise writes a spec for ``sys.executable``
    into a temporary Jupyter data folder (nothing is installed into the environment).
    """
    try:
        KernelSpecManager().get_kernel_spec(KERNEL)
        return {}
    except NoSuchKernel:
        spec = tmp_path / "jupyter" / "kernels" / KERNEL
        spec.mkdir(parents=True)
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        (spec / "kernel.json").write_text(
            json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"})
        )
        return {"JUPYTER_PATH": str(tmp_path / "jupyter")}


def test_every_notebook_is_listed():
    expected = [f"0{i}_" for i in range(1, 7)]
    assert [name[:3] for name in NOTEBOOKS] == expected, NOTEBOOKS


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_quick_mode(name, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ONESHOT_QUICK", "1")
    monkeypatch.setenv("ONESHOT_DATA_DIR", str(data_dir))
    for key, value in kernel_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    notebook = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    deadline = time.monotonic() + BUDGET_SECONDS
    client = NotebookClient(
        notebook,
        kernel_name=KERNEL,
        timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),
        resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},
        extra_arguments=["--IPKernelApp.capture_fd_output=False"],
    )
    try:
        client.execute()
    except CellTimeoutError as error:
        pytest.fail(f"{name} exceeded its {BUDGET_SECONDS} s quick-mode budget:\n{error}")
    except CellExecutionError as error:
        pytest.fail(f"{name} failed in quick mode:\n{error}")
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{name} drew no figure"
    assert not [o for o in outputs if o.output_type == "error"]


def test_quick_mode_reads_the_environment(monkeypatch):
    for value, expected in (("1", True), ("yes", True), ("0", False), ("", False)):
        monkeypatch.setenv("ONESHOT_QUICK", value)
        assert walkthrough.quick_mode() is expected
    monkeypatch.delenv("ONESHOT_QUICK")
    assert walkthrough.quick_mode() is False


def test_quick_config_only_shrinks():
    config = get_experiment("mnist-triplet").runs[0]
    quick = walkthrough.quick_config(config, steps=12)
    assert (quick.steps, quick.log_every) == (12, 3)
    assert quick.hardest + quick.random_extra <= quick.candidates <= config.candidates
    short = walkthrough.quick_config(walkthrough.quick_config(config, steps=5), steps=40)
    assert short.steps == 5  # never longer than asked


def test_repo_root_and_scratch_folder_stay_out_of_results():
    root = walkthrough.repo_root(NOTEBOOKS_DIR)
    assert (root / "pyproject.toml").exists() and root == NOTEBOOKS_DIR.parent
    for quick in (True, False):
        scratch = walkthrough.scratch_dir(quick)
        assert scratch.relative_to(root).parts[0] == "runs"  # gitignored, never results/


def test_committed_run_is_used_only_when_its_setup_matches(tmp_path, monkeypatch):
    monkeypatch.setattr(walkthrough, "results_dir", lambda: tmp_path)
    config = get_experiment("mnist-triplet").runs[0]
    run_dir = tmp_path / "mnist-triplet" / config.name
    run_dir.mkdir(parents=True)
    longer = {**config.to_dict(), "steps": config.steps * 2, "seed": 0}
    (run_dir / "config.json").write_text(json.dumps(longer))
    assert walkthrough.committed_config("mnist-triplet", config.name) is None  # no model yet
    (run_dir / "model.keras").write_text("")
    saved = walkthrough.committed_config("mnist-triplet", config.name)
    assert saved.steps == config.steps * 2
    assert walkthrough._setup(saved) == walkthrough._setup(config)  # budget may differ
    other = dataclasses.replace(config, margin=1.0)
    assert walkthrough._setup(other) != walkthrough._setup(config)  # not the same run


def test_nearest_neighbours_matches_brute_force():
    from oneshot.inference import Scorer

    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(30, 4)).astype(np.float32)
    labels = rng.integers(0, 3, size=30)
    queries = np.array([0, 7, 29])
    scorer = Scorer(embedding_model=None, distance="euclidean")
    order, correct, dist = walkthrough.nearest_neighbours(
        scorer, embeddings, labels, queries, top=5
    )
    for row, q in enumerate(queries):
        d = np.linalg.norm(embeddings - embeddings[q], axis=1)
        d[q] = np.inf
        expected = np.argsort(d, kind="stable")[:5]
        np.testing.assert_array_equal(order[row], expected)
        np.testing.assert_allclose(dist[row], d[expected], rtol=1e-5)
        np.testing.assert_array_equal(correct[row], labels[expected] == labels[q])
    assert q not in order[-1]


def test_summary_table_names_protocols():
    report = {
        "dataset": "omniglot",
        "nway": [
            {"accuracy": 0.5, "ci95": 0.01, "protocol": {"n_way": 20, "within_alphabet": True}},
            {"accuracy": 0.7, "ci95": 0.01, "protocol": {"n_way": 20, "within_alphabet": False}},
        ],
    }
    table = walkthrough.summary_table({"a": report, "b": report})
    lines = table.splitlines()
    assert lines[0] == "| metric | a | b |"
    assert "| 20-way 1-shot within-alphabet | 0.500 | 0.500 |" in lines
    assert "| 20-way 1-shot unstructured | 0.700 | 0.700 |" in lines
