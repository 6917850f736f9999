"""Every notebook runs top to bottom in quick mode (ONESHOT_QUICK=1), from notebooks/.

Each notebook gets a time budget; a failure names the notebook and shows the failing cell's
source and error. Each notebook tells the Keras story in the keras-io order (data, model,
loss, ``fit``, evaluation, plots) with the package's public pieces, not hidden helpers.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(p.name for p in NOTEBOOKS_DIR.glob("*.ipynb"))
#: applies trained networks to a folder of images, and trains the recommended recipe through the
#: package's runner as ``python -m oneshot.train --images`` does: not a Keras-workflow tutorial
APPLICATIONS = "08_your_own_images.ipynb"
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
    expected = [f"0{i}_" for i in range(1, 9)]
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


def code_of(name: str) -> str:
    notebook = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    return "\n".join(c.source for c in notebook.cells if c.cell_type == "code")


@pytest.mark.parametrize("name", [n for n in NOTEBOOKS if n != APPLICATIONS])
def test_notebook_follows_the_keras_workflow_in_order(name):
    code = code_of(name)
    steps = {
        "load data": re.search(r"load_(mnist|omniglot)\(", code),
        "build the model": re.search(r"build_(siamese|triplet|quadruplet|online|network)\(", code),
        "fit": re.search(r"\.fit\(", code),
        "evaluate": re.search(r"evaluate_scorers?\(|lake_evaluate\(|nway_accuracy\(", code),
    }
    missing = [step for step, found in steps.items() if not found]
    assert not missing, f"{name} lacks: {missing}"
    positions = [found.start() for found in steps.values()]
    order = dict(zip(steps, positions, strict=True))
    assert positions == sorted(positions), f"{name}: steps out of order {order}"
    assert re.search(r"plot_\w+\(", code[positions[-1] :]), (
        f"{name}: no figure after the evaluation"
    )
    assert "plot_neighbour_strips" in code and "plot_embedding_2d" in code, name
    hidden = re.findall(r"walkthrough|train_run|build_model\(|build_dataset\(", code)
    assert not hidden, f"{name} hides the workflow behind {hidden}"


def test_applications_notebook_starts_from_a_folder_and_reports_the_baselines():
    """08 reads its images back from files, runs each task, and trains the recommended recipe
    (the same function and runner as ``--images``) with its held-out comparison."""
    code = code_of(APPLICATIONS)
    steps = [
        r"export_image_folder\(", r"load_image_folder\(", r"EmbeddingIndex\.for_model\(",
        r"calibrate_threshold\(", r"identify\(", r"cluster\(", r"novelty\(",
        r"get_experiment\(\"mnist-heldout\"\)", r"run_experiment\(", r"comparison_line\(",
        r"compare_seeds\(",
    ]  # fmt: skip
    found = [re.search(pattern, code) for pattern in steps]
    missing = [pattern for pattern, match in zip(steps, found, strict=True) if not match]
    assert not missing, f"{APPLICATIONS} lacks: {missing}"
    positions = [match.start() for match in found]
    assert positions == sorted(positions), dict(zip(steps, positions, strict=True))
