"""A command line that never loses a run (issue 15): clear errors, safe run folders, exact resume.

Short runs on real MNIST with a tiny conv4; each test a few seconds to ~30 s.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from oneshot.experiments import OnlineRun, TripletRun, get_experiment
from oneshot.losses import TripletMarginLoss
from oneshot.miners import BatchHardMiner

REPO = Path(__file__).resolve().parents[1]
TINY = dict(dataset="mnist", network="conv4", embedding_dim=8, network_kwargs={"width": 8},
            learning_rate=1e-3)  # fmt: skip


def tiny_triplet(**overrides) -> TripletRun:
    values = {**TINY, "batch_size": 16, "steps": 7, "log_every": 3, **overrides}
    return TripletRun(name="triplet", **values)


def tiny_online(**overrides) -> OnlineRun:
    values = {**TINY, "steps": 7, "log_every": 3, **overrides}
    loss = TripletMarginLoss(0.2, miner=BatchHardMiner())
    return OnlineRun(name="online", loss=loss, classes_per_batch=4, samples_per_class=4, **values)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (folders as empty entries)."""
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"<dir>")
        for p in sorted(folder.rglob("*"))
    }


def losses(run_dir: Path) -> list[str]:
    import csv

    with (run_dir / "history.csv").open() as f:
        return [(r["step"], r["loss"]) for r in csv.DictReader(f)]


def subprocess_env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "3"}


# ---------------------------------------------------------------------------------------------
# 1. clear errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad, message",
    [
        (["--steps", "0"], "--steps must be >= 1"),
        (["--learning-rate", "-1"], "--learning-rate must be > 0"),
        (["--learning-rate", "nan"], "--learning-rate must be > 0"),
        (["--episodes", "0"], "--episodes must be >= 1"),
        (["--threads", "0"], "--threads must be >= 1"),
        (["--runs", "pentuplet"], "unknown run"),
        (["--resume", "--overwrite"], "exclude each other"),
        (["--data-dir", "/nonexistent/oneshot-data"], "is not a folder"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(tmp_path, capsys, bad, message):
    from oneshot.cli.train import main

    out = tmp_path / "out"
    assert main(["--experiment", "mnist-triplet", "--out", str(out), *bad]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_missing_offline_data_says_what_to_do_first(tmp_path, capsys):
    from oneshot.cli.train import main

    empty = tmp_path / "data"
    empty.mkdir()
    out = tmp_path / "out"
    argv = ["--experiment", "mnist-triplet", "--out", str(out), "--data-dir", str(empty)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    first = err.splitlines()[0]
    assert first.startswith("error: Copy mnist/mnist.npz into")
    assert "ONESHOT_DATA_DIR" in first and "python -m oneshot.data --check" in first
    assert not out.exists()  # nothing written: no experiment.json, no run folder, no lock
    from oneshot.data.sources import DataError

    with pytest.raises(DataError):  # --debug shows the traceback
        main([*argv, "--debug"])


def test_no_data_and_no_network_starts_with_what_to_do(tmp_path, monkeypatch, capsys):
    from oneshot.cli.train import main
    from oneshot.data import sources

    monkeypatch.delenv("ONESHOT_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))

    def offline(url, target):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(sources, "download", offline)
    out = tmp_path / "out"
    assert main(["--experiment", "mnist-triplet", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Set ONESHOT_DATA_DIR") and "oneshot.data --check" in err
    assert "Traceback" not in err and not out.exists()


def test_corrupt_data_file_is_one_message(tmp_path, capsys):
    from oneshot.cli.train import main

    (tmp_path / "data" / "mnist").mkdir(parents=True)
    (tmp_path / "data" / "mnist" / "mnist.npz").write_bytes(b"not an npz")
    out = tmp_path / "out"
    argv = [
        "--experiment",
        "mnist-triplet",
        "--out",
        str(out),
        "--data-dir",
        str(tmp_path / "data"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Checksum mismatch") and "Traceback" not in err
    assert not out.exists()


def test_data_check_exits_2_on_missing_data(tmp_path, capsys):
    from oneshot.cli.data import main

    assert main(["--check", "--data-dir", str(tmp_path)]) == 2
    assert "Traceback" not in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# 2. run folders written only by their own run
# ---------------------------------------------------------------------------------------------

LOCK_HOLDER = """
import sys, time
from oneshot.training.lock import FolderLock
FolderLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_run_into_a_locked_folder_fails_at_once(tmp_path, data_dir, capsys):
    from oneshot.cli.train import main
    from oneshot.training.lock import FolderLock, RunLockedError
    from oneshot.training.runner import train_run

    experiment = get_experiment("mnist-triplet")
    out = tmp_path / "out"
    run_dir = out / experiment.runs[0].name
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(run_dir)],
        stdout=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(out)
        argv = ["--experiment", "mnist-triplet", "--out", str(out), "--data-dir", str(data_dir)]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Another training is writing into" in err and f"pid {holder.pid}" in err
        assert snapshot(out) == before
        with pytest.raises(RunLockedError):
            train_run(tiny_triplet(), run_dir, data_dir)
    finally:
        holder.send_signal(signal.SIGKILL)  # like kill -9: the lock file stays behind
        holder.wait()
    assert (run_dir / ".lock").exists()
    with FolderLock(run_dir):  # the stale lock of the killed process is cleared
        assert f"pid {os.getpid()}" in (run_dir / ".lock").read_text()
    assert not (run_dir / ".lock").exists()  # released


def test_experiment_record_merges_are_serialised(tmp_path):
    """Two runs of one experiment in separate processes merge experiment.json in turn."""
    from oneshot.training.files import write_experiment_record as _write_merged

    path = tmp_path / "experiment.json"
    _write_merged(path, {"name": "e", "runs": [{"name": "a"}], "commands": {"a": "x"}})
    _write_merged(path, {"name": "e", "runs": [{"name": "b"}], "commands": {"b": "y"}})
    record = json.loads(path.read_text())
    assert [r["name"] for r in record["runs"]] == ["a", "b"] and record["commands"]["b"] == "y"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experiment.json"]
    # a rerun of "a" replaces its record in place: the experiment's order stays
    _write_merged(path, {"name": "e", "runs": [{"name": "a", "v": 2}], "commands": {"a": "z"}})
    record = json.loads(path.read_text())
    assert record["runs"] == [{"name": "a", "v": 2}, {"name": "b"}]
    assert record["commands"] == {"a": "z", "b": "y"}


def test_resume_with_other_settings_is_refused_naming_them(tmp_path, data_dir):
    from oneshot.training.folders import OutputExistsError
    from oneshot.training.runner import train_run

    run_dir = tmp_path / "run"
    config = tiny_triplet(steps=2, log_every=2)
    train_run(config, run_dir, data_dir, seed=0)
    before = snapshot(run_dir)
    with pytest.raises(OutputExistsError, match=r"steps: the run has 2.*asks for 5.*seed"):
        train_run(tiny_triplet(steps=5, log_every=2), run_dir, data_dir, seed=5, resume=True)
    with pytest.raises(OutputExistsError, match="finished run"):
        train_run(tiny_triplet(steps=5), run_dir, data_dir, seed=3)
    assert snapshot(run_dir) == before


# ---------------------------------------------------------------------------------------------
# 3. exactly N steps
# ---------------------------------------------------------------------------------------------


def test_steps_not_a_multiple_of_log_every_trains_exactly_that_many(tmp_path, data_dir):
    from oneshot.training.runner import train_run

    run_dir = tmp_path / "run"
    model = train_run(tiny_triplet(steps=5, log_every=2), run_dir, data_dir)
    assert int(model.optimizer.iterations.numpy()) == 5
    assert [s for s, _ in losses(run_dir)] == ["2", "4", "5"]
    assert json.loads((run_dir / "config.json").read_text())["steps"] == 5


# ---------------------------------------------------------------------------------------------
# 4. exact resume after kill -9
# ---------------------------------------------------------------------------------------------

KILLED_RUN = """
import json, os, signal, sys
import keras
from oneshot.experiments import RunConfig
from oneshot.training import callbacks
from oneshot.training.runner import train_run

config = RunConfig.from_dict(json.loads(sys.argv[1]))
kill_at = int(sys.argv[4])
seen = 0

class KillMidChunk(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        global seen
        seen += 1
        if seen == kill_at and seen % config.log_every:
            os.kill(os.getpid(), signal.SIGKILL)

save = callbacks.RunCheckpoint.on_epoch_end

def save_or_die(self, epoch, logs=None):
    if seen == kill_at:  # at a chunk's end: history row written, checkpoint not yet
        os.kill(os.getpid(), signal.SIGKILL)
    save(self, epoch, logs)

callbacks.RunCheckpoint.on_epoch_end = save_or_die
train_run(config, sys.argv[2], sys.argv[3], seed=11, extra_callbacks=[KillMidChunk()])
"""


@pytest.mark.parametrize(
    "make_config",
    [
        lambda: tiny_triplet(sampler="hard_batch", candidates=32, hardest=8, random_extra=8),
        lambda: tiny_online(augment=True),
    ],
    ids=["hard-batch-triplet", "online-augmented"],
)
def test_kill_9_then_resume_gives_the_uninterrupted_run(tmp_path, data_dir, make_config):
    """A process killed at a random step (mid-chunk, or between a history row and its
    checkpoint), then resumed, ends with the loss curve and weights of the uninterrupted run."""
    from oneshot.training.runner import train_run

    config = make_config()
    whole = train_run(config, tmp_path / "whole", data_dir, seed=11)
    kill_at = int(np.random.default_rng().integers(2, config.steps + 1))  # a random step
    run_dir = tmp_path / "killed"
    done = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, json.dumps(config.to_dict()), str(run_dir),
         str(data_dir), str(kill_at)],
        capture_output=True, text=True, timeout=300, env=subprocess_env(),
    )  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert not (run_dir / "model.keras").exists()
    resumed = train_run(config, run_dir, data_dir, seed=11, resume=True)
    assert losses(run_dir) == losses(tmp_path / "whole"), f"killed at step {kill_at}"
    for a, b in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=f"killed at step {kill_at}")
    assert not (run_dir / "backup").exists() and not (run_dir / ".lock").exists()


def test_fast_forwarded_stream_matches_the_continued_one(data_dir):
    """skip=n yields the batches of the same seed's stream from batch n on (augmented)."""
    from oneshot.data import load_mnist
    from oneshot.data.samplers import pk_dataset

    test = load_mnist("test", data_dir=data_dir)
    images, labels = test.images[:2000], test.labels[:2000]
    whole = list(pk_dataset(images, labels, p=4, k=2, seed=3, augment=True).take(5))
    later = list(pk_dataset(images, labels, p=4, k=2, seed=3, augment=True, skip=3).take(2))
    for (x1, y1), (x2, y2) in zip(whole[3:], later, strict=True):
        np.testing.assert_array_equal(x1.numpy(), x2.numpy())
        np.testing.assert_array_equal(y1.numpy(), y2.numpy())


# ---------------------------------------------------------------------------------------------
# 5. NaN stop keeps the last good checkpoint
# ---------------------------------------------------------------------------------------------


class _PoisonWeights(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            for variable in self.model.trainable_variables:
                variable.assign(variable * np.nan)


def test_nan_stop_keeps_the_last_good_checkpoint_and_names_it(tmp_path, data_dir):
    from oneshot.training.callbacks import TrainingDivergedError
    from oneshot.training.runner import train_run

    run_dir = tmp_path / "run"
    config = tiny_triplet(steps=6, log_every=2)
    with pytest.raises(TrainingDivergedError, match="step 3") as caught:
        train_run(config, run_dir, data_dir, extra_callbacks=[_PoisonWeights()])
    path = Path(re.search(r"kept in (\S+);", str(caught.value)).group(1))
    assert path.exists() and path.parent == run_dir / "backup"
    meta = json.loads((run_dir / "backup" / "training_metadata.json").read_text())
    assert meta["step"] == 2
    assert not (run_dir / "model.keras").exists()


# ---------------------------------------------------------------------------------------------
# 7. loading a file that is not a model
# ---------------------------------------------------------------------------------------------


def test_loading_what_is_not_a_model_says_what_it_is(tmp_path):
    from oneshot.models.saving import ModelFileError, load_model

    text = tmp_path / "model.keras"
    text.write_text("hello\n")
    with pytest.raises(
        ModelFileError, match=r"a text file starting with 'hello'.*Expected a Keras 3"
    ):
        load_model(text)
    history = tmp_path / "history.csv"
    history.write_text("learning_rate,loss,seconds,step\n0.001,0.5,1.0,2\n")
    with pytest.raises(ModelFileError, match="text file starting with 'learning_rate,loss"):
        load_model(history)
    h5 = tmp_path / "w.weights.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    with pytest.raises(ModelFileError, match="HDF5 file.*load_weights"):
        load_model(h5)
    with pytest.raises(ModelFileError, match="No such file"):
        load_model(tmp_path / "missing.keras")
    old = tmp_path / "old.keras"
    with zipfile.ZipFile(old, "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("metadata.json", json.dumps({"keras_version": "2.15.0"}))
    with pytest.raises(ModelFileError, match=r"saved by Keras 2\.15\.0; this is Keras 3"):
        load_model(old)
    other = tmp_path / "other.keras"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("data.txt", "x")
    with pytest.raises(ModelFileError, match="zip archive without config.json"):
        load_model(other)


def test_evaluate_cli_reports_a_non_model_in_one_line(tmp_path, capsys):
    from oneshot.cli.evaluate import main

    text = tmp_path / "model.keras"
    text.write_text("hello\n")
    assert main(["--model", str(text), "--dataset", "mnist"]) == 2
    err = capsys.readouterr().err
    assert "text file" in err and "Traceback" not in err


def test_overwrite_with_missing_data_keeps_the_old_run(tmp_path, capsys):
    """--overwrite deletes the old run only once the new one can start (its data loaded)."""
    from oneshot.cli.train import main

    out = tmp_path / "out"
    run_dir = out / get_experiment("mnist-triplet").runs[0].name
    run_dir.mkdir(parents=True)
    for name, text in [("config.json", "{}"), ("model.keras", "old"), ("history.csv", "x")]:
        (run_dir / name).write_text(text)
    before = snapshot(out)
    (tmp_path / "empty").mkdir()
    argv = [
        "--experiment",
        "mnist-triplet",
        "--out",
        str(out),
        "--data-dir",
        str(tmp_path / "empty"),
    ]
    assert main([*argv, "--overwrite"]) == 2
    assert "mnist.npz" in capsys.readouterr().err
    assert snapshot(out) == before
