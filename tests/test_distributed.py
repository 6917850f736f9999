"""Training under tf.distribute on this one machine: two worker processes on localhost ports
(MultiWorkerMirroredStrategy, which Keras's ``fit`` cannot run), the CPU split into two
logical devices (MirroredStrategy), and the command line's checks of strategy arguments."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKER_SCRIPT = Path(__file__).with_name("distributed_worker.py")
TIMEOUT = 240


def run_workers(argv: list[str], tmp: Path, data_dir: Path, workers: int = 2) -> list[tuple]:
    """Start ``workers`` processes of ``argv`` with their TF_CONFIG; (exit code, stdout, stderr)
    of each, in task order. Each gets its own TMPDIR under ``tmp`` (to see what it leaves)."""
    from oneshot.training.distributed import free_ports, local_tf_config

    ports = free_ports(workers)
    processes = []
    for index in range(workers):
        scratch = tmp / f"tmp{index}"
        scratch.mkdir(exist_ok=True)
        env = {**os.environ, "TF_CONFIG": local_tf_config(ports, index), "TMPDIR": str(scratch),
               "ONESHOT_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT),
               "TF_CPP_MIN_LOG_LEVEL": "2"}  # fmt: skip
        processes.append(subprocess.Popen(
            [sys.executable, *argv], env=env, cwd=tmp, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        ))  # fmt: skip
    results = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=TIMEOUT)
            results.append((process.returncode, out, err))
    finally:
        for process in processes:
            process.kill()
    return results


def fingerprints(results: list[tuple], pattern: str = r": tiny weights (\w+)") -> list[str]:
    found = [re.findall(pattern, out) for _, out, _ in results]
    assert all(len(f) == 1 for f in found), [r[1][-2000:] + r[2][-2000:] for r in results]
    return [f[0] for f in found]


def test_two_workers_train_in_sync_and_resume_exactly(tmp_path, data_dir):
    """Two processes train the same 20 steps and end with identical weights (trainable and
    batch-norm statistics); an interruption after the first chunk and --resume give the
    uninterrupted run's weights; only the chief writes the run folder."""
    full = run_workers([str(WORKER_SCRIPT), str(tmp_path / "full"), "full"], tmp_path, data_dir)
    assert [code for code, _, _ in full] == [0, 0], [r[2][-3000:] for r in full]
    chief, worker = fingerprints(full)
    assert chief == worker

    stopped = run_workers([str(WORKER_SCRIPT), str(tmp_path / "cut"), "first-chunk"], tmp_path,
                          data_dir)  # fmt: skip
    assert [code for code, _, _ in stopped] == [130, 130], [r[2][-3000:] for r in stopped]
    after_first = fingerprints(stopped, r"WEIGHTS (\w+)")
    assert after_first[0] == after_first[1] != chief
    resumed = run_workers([str(WORKER_SCRIPT), str(tmp_path / "cut"), "resume"], tmp_path,
                          data_dir)  # fmt: skip
    assert [code for code, _, _ in resumed] == [0, 0], [r[2][-3000:] for r in resumed]
    assert fingerprints(resumed) == [chief, chief]

    run = tmp_path / "full" / "tiny"
    config = json.loads((run / "config.json").read_text())
    assert config["strategy"] == {"name": "multiworker", "global_mining": True}
    history = (run / "history.csv").read_text().splitlines()
    assert len(history) == 3 and history[-1].split(",")[-1] == "20"  # header + 2 chunks
    record = json.loads((tmp_path / "full" / "experiment.json").read_text())
    assert record["strategy"] == "multiworker" and record["replicas"] == 2
    assert not list((tmp_path / "tmp1").iterdir())  # the worker's private folder is gone


def test_multiworker_command_line_trains_and_evaluates(tmp_path, data_dir):
    """The acceptance command: python -m oneshot.train --strategy multiworker as two processes:
    the chief writes and evaluates, the other worker says so and writes nothing."""
    out = tmp_path / "runs"
    argv = ["-m", "oneshot.train", "--experiment", "mnist-best", "--strategy", "multiworker",
            "--steps", "10", "--episodes", "20", "--out", str(out)]  # fmt: skip
    results = run_workers(argv, tmp_path, data_dir)
    assert [code for code, _, _ in results] == [0, 0], [r[2][-3000:] for r in results]
    weights = [re.findall(r"batch-hard weights (\w+)", r[1]) for r in results]
    assert weights[0] == weights[1] and len(weights[0]) == 1
    assert "worker 1: trained batch-hard; the chief writes" in results[1][1]
    metrics = json.loads((out / "batch-hard" / "metrics.json").read_text())
    assert metrics["nway"][0]["protocol"]["episodes"] == 20
    config = json.loads((out / "batch-hard" / "config.json").read_text())
    assert config["strategy"] == {"name": "multiworker", "global_mining": True}


def test_mirrored_on_two_logical_cpus_records_its_strategy(tmp_path, data_dir):
    """--strategy mirrored with ONESHOT_CPU_DEVICES=2: two replicas in one process, the
    distributed step, the strategy and the choice of per-slice mining in the run's config."""
    out = tmp_path / "runs"
    env = {**os.environ, "ONESHOT_CPU_DEVICES": "2", "ONESHOT_DATA_DIR": str(data_dir),
           "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}  # fmt: skip
    argv = [sys.executable, "-m", "oneshot.train", "--experiment", "mnist-best", "--strategy",
            "mirrored", "--no-global-mining", "--steps", "10", "--no-eval", "--out", str(out)]  # fmt: skip
    result = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=TIMEOUT)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[single process, 2 replicas] 10 steps" in result.stdout
    config = json.loads((out / "batch-hard" / "config.json").read_text())
    assert config["strategy"] == {"name": "mirrored", "global_mining": False}
    assert json.loads((out / "experiment.json").read_text())["replicas"] == 2
    # a resume must ask for the same strategy
    with_global_mining = [a for a in argv if a != "--no-global-mining"] + ["--resume"]
    again = subprocess.run(with_global_mining, env=env, cwd=tmp_path, capture_output=True,
                           text=True, timeout=TIMEOUT)  # fmt: skip
    assert again.returncode == 2
    assert "strategy: the run has {'name': 'mirrored', 'global_mining': False}" in again.stderr


@pytest.mark.parametrize(
    "argv, env, message",
    [
        (["--strategy", "multiworker"], {"TF_CONFIG": ""},
         "--strategy multiworker needs the TF_CONFIG environment variable"),
        (["--strategy", "multiworker"], {"TF_CONFIG": "{not json"},
         "TF_CONFIG is not a cluster description"),
        (["--strategy", "multiworker"],
         {"TF_CONFIG": '{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", '
                       '"index": 3}}'},
         "TF_CONFIG's task 'worker' 3 is not in its cluster"),
        (["--no-global-mining"], {}, "--no-global-mining applies to --strategy mirrored"),
        (["--strategy", "mirrored", "--experiment", "mnist-triplet"], {},
         "sample hard batches with the model in the input pipeline"),
        (["--strategy", "mirrored"], {"ONESHOT_CPU_DEVICES": "two"},
         "Invalid value for $ONESHOT_CPU_DEVICES"),
    ],
    ids=["no-tf-config", "bad-json", "task-outside-cluster", "global-mining-alone",
         "hard-batch", "bad-devices"],
)  # fmt: skip
def test_bad_strategy_input_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys, argv,
                                                          env, message):  # fmt: skip
    from oneshot.cli.train import main

    out = tmp_path / "out"
    if "--experiment" not in argv:
        argv = [*argv, "--experiment", "mnist-best"]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert message in err and "Traceback" not in err, err
    assert not out.exists()


def test_nan_loss_stops_the_distributed_step_with_advice(tmp_path, data_dir):
    """The NaN stop works under a strategy as with fit: one message, exit 2, no model."""
    out = tmp_path / "runs"
    env = {**os.environ, "ONESHOT_CPU_DEVICES": "2", "ONESHOT_DATA_DIR": str(data_dir),
           "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}  # fmt: skip
    argv = [sys.executable, "-m", "oneshot.train", "--experiment", "mnist-best", "--strategy",
            "mirrored", "--learning-rate", "1e38", "--steps", "30", "--no-eval", "--out",
            str(out)]  # fmt: skip
    result = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=TIMEOUT)  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert "error: The loss became NaN or infinite at step" in result.stderr
    assert not (out / "batch-hard" / "model.keras").exists()
