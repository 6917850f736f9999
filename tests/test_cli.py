"""The command lines answer ``--help`` and argument errors before TensorFlow is imported, keep
TensorFlow's start-up log lines off the terminal (``--debug`` shows them), and ``import
oneshot`` changes no global setting but ``KERAS_BACKEND`` and TensorFlow's log level, and
starts TensorFlow quietly too (a notebook's first cell shows no start-up lines)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ("train", "evaluate", "compare", "index", "verify", "identify", "cluster", "novelty",
            "data")  # fmt: skip
# what TensorFlow's C++ core and absl print at start-up on a machine without a GPU
NOISE = ("absl::InitializeLog", "oneDNN custom operations", "cudart_stub", "cuInit", "NodeDef",
         "cpu_feature_guard")  # fmt: skip


def run(*argv: str) -> subprocess.CompletedProcess:
    """``python *argv`` in a fresh process, TensorFlow's log level left unset (the default)."""
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    environment["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=REPO,
                          env=environment, timeout=300)  # fmt: skip


def run_unsilenced(*argv: str) -> subprocess.CompletedProcess:
    """``python -X importtime *argv`` with a log level of the user's: nothing silences file
    descriptor 2 (oneshot.startup), so the report would show a TensorFlow import."""
    environment = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "0"}
    return subprocess.run([sys.executable, "-X", "importtime", *argv],
                          capture_output=True, text=True, cwd=REPO, env=environment,
                          timeout=300)  # fmt: skip


def imported_tensorflow(importtime: str) -> bool:
    """Whether ``python -X importtime``'s report (stderr) lists the tensorflow package."""
    return any(
        line.startswith("import time:") and line.split("|")[-1].strip() == "tensorflow"
        for line in importtime.splitlines()
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_help_and_a_bad_flag_answer_before_tensorflow_is_imported(command):
    shown = run_unsilenced("-m", f"oneshot.{command}", "--help")
    assert shown.returncode == 0 and "usage:" in shown.stdout, shown.stderr[-2000:]
    assert not imported_tensorflow(shown.stderr)
    refused = run_unsilenced("-m", f"oneshot.{command}", "--no-such-flag")
    assert refused.returncode == 2
    errors = [line for line in refused.stderr.splitlines() if not line.startswith("import time:")]
    assert len(errors) == 1 and errors[0].startswith("error: "), refused.stderr[-2000:]
    assert not imported_tensorflow(refused.stderr)


def test_the_importtime_check_sees_tensorflow():
    """The check above would catch an import: it finds the one ``import oneshot`` makes."""
    assert imported_tensorflow(run_unsilenced("-c", "import oneshot").stderr)


def test_a_checked_argument_of_train_answers_before_tensorflow_is_imported():
    refused = run_unsilenced("-m", "oneshot.train", "--experiment", "mnist-best", "--steps", "0")
    assert refused.returncode == 2 and "error: --steps must be >= 1" in refused.stderr
    assert not imported_tensorflow(refused.stderr)


def test_tensorflow_start_up_lines_stay_off_the_terminal_unless_debug(tmp_path):
    """A command that starts TensorFlow, then fails on its input: one ``error:`` line; with
    ``--debug`` the traceback and whatever TensorFlow prints."""
    missing = str(tmp_path / "missing.npz")
    quiet = run("-m", "oneshot.index", "evaluate", "--index", missing)
    assert quiet.returncode == 2
    assert quiet.stderr.splitlines() == [quiet.stderr.strip()], quiet.stderr[-3000:]
    assert quiet.stderr.startswith("error: ") and missing in quiet.stderr
    loud = run("-m", "oneshot.index", "evaluate", "--index", missing, "--debug")
    assert "Traceback" in loud.stderr
    if not any(noise in loud.stderr for noise in NOISE):
        pytest.skip("TensorFlow printed no start-up lines on this machine")


def test_a_training_run_prints_no_tensorflow_log_lines(tmp_path, data_dir):
    """A real (tiny) training: stderr holds oneshot's own lines only, none of TensorFlow's."""
    from test_train_images import export_digits

    folder = export_digits(tmp_path / "digits", data_dir, classes=4, per_class=6)
    done = run("-m", "oneshot.train", "--images", str(folder), "--out", str(tmp_path / "out"),
               "--steps", "1", "--episodes", "10", "--no-eval")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert not [n for n in NOISE if n in done.stderr], done.stderr[-3000:]


def test_import_oneshot_changes_no_global_setting_but_the_backend_and_log_level():
    code = (
        "import logging, os\n"
        "os.environ.pop('KERAS_BACKEND', None)\n"
        "import oneshot, keras\n"
        "print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'), os.environ['KERAS_BACKEND'],\n"
        "      keras.config.dtype_policy().name, logging.getLogger().level)\n"
        "from oneshot.losses import TripletMarginLoss\n"
        "name = keras.saving.get_registered_name(TripletMarginLoss)\n"
        "print(keras.saving.get_registered_object(name) is TripletMarginLoss)\n"
    )
    done = run("-c", code)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["3", "tensorflow", "float32", "30", "True"]
    assert not [n for n in NOISE if n in done.stderr], done.stderr[-3000:]


def test_import_oneshot_keeps_the_users_log_level_and_then_shows_the_start_up_lines():
    done = subprocess.run(
        [sys.executable, "-c", "import os, oneshot; print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"],
        capture_output=True, text=True, cwd=REPO, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "0"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["0"]
    # not silenced: the user asked for it. Which start-up lines TensorFlow's C++ core writes
    # depends on the processor (oneDNN's notice on AVX-512 hosts, the CUDA probe on others);
    # all carry absl's prefix, e.g. "I0000 00:00:1796682063.920764 4720 cuda_platform.cc:52]".
    assert re.search(r"^[IWEF]\d{4} [\d:.]+ +\d+ \w+\.cc:\d+\]", done.stderr, re.M), done.stderr


def test_the_light_names_are_the_librarys():
    """The choices the command lines offer before importing TensorFlow are the library's."""
    from oneshot import names
    from oneshot.applications.cluster import LINKAGES, METHODS
    from oneshot.distances import DISTANCES

    assert names.DISTANCES == DISTANCES
    assert (names.CLUSTER_METHODS, names.LINKAGES) == (METHODS, LINKAGES)


def test_the_catalogue_train_help_lists_is_the_experiments():
    """``oneshot/experiments/catalogue.json`` (read by --help) matches the experiments; after
    adding one: python -c "from oneshot.experiments import write_catalogue; write_catalogue()"."""
    from oneshot.cli.train_args import experiment_catalogue
    from oneshot.experiments import EXPERIMENTS, get_experiment

    built = {name: get_experiment(name).summary for name in EXPERIMENTS}
    assert experiment_catalogue() == built
    assert list(experiment_catalogue()) == list(EXPERIMENTS)
