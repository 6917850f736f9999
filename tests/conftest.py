"""Shared test fixtures: where the real data lives, and quiet, repeatable TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def real_data_dir() -> Path | None:
    """The offline data folder: $ONESHOT_DATA_DIR, else ../shared/data beside the repo."""
    env = os.environ.get("ONESHOT_DATA_DIR")
    if env:
        return Path(env)
    return SHARED_DATA if SHARED_DATA.is_dir() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data folder. Tests about real data need it; say how to provide it if missing."""
    path = real_data_dir()
    if path is None or not path.is_dir():
        pytest.skip(
            "Real data not found: set ONESHOT_DATA_DIR to a folder laid out like ../shared/data "
            "(mnist/mnist.npz, omniglot/*.zip)."
        )
    return path


@pytest.fixture(autouse=True)
def _seed_everything():
    """Each test starts from the same seeds."""
    import keras

    keras.utils.set_random_seed(1234)
    yield


def run_script_for_json(script: Path, *args: str) -> dict:
    """Run a test's Python script in a fresh interpreter (TensorFlow quiet) and return the JSON
    object on the last line of its output (a strategy needs a process of its own)."""
    out = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])
