"""Training CLI, experiment configs, resumable runs, NaN stop, determinism, tf.distribute."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from oneshot.cli.train import parse_args
from oneshot.experiments import (
    EXPERIMENTS,
    Experiment,
    OnlineRun,
    QuadrupletRun,
    RunConfig,
    SiameseRun,
    TripletRun,
    get_experiment,
)
from oneshot.losses import TripletMarginLoss
from oneshot.miners import BatchHardMiner

TINY = dict(
    dataset="mnist",
    network="conv4",
    embedding_dim=8,
    network_kwargs={"width": 8},
    batch_size=16,
    steps=6,
    log_every=2,
    learning_rate=1e-3,
)


def history_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "history.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
@pytest.mark.parametrize("paper", [False, True])
def test_every_experiment_round_trips_through_json(name, paper):
    """config -> JSON text -> config gives the same typed config with NEW objects (the loss is
    rebuilt, not shared), and equality is not vacuous: any changed field breaks it."""
    import dataclasses

    experiment = get_experiment(name, paper=paper)
    assert experiment.runs, name
    for run in experiment.runs:
        back = RunConfig.from_dict(json.loads(json.dumps(run.to_dict())))
        assert type(back) is type(run) and back == run
        for f in dataclasses.fields(run):
            mine, theirs = getattr(run, f.name), getattr(back, f.name)
            if isinstance(mine, keras.losses.Loss):
                assert theirs is not mine and type(theirs) is type(mine)
                assert theirs.get_config() == mine.get_config()
                for piece in ("miner", "distance"):  # keras.losses.Circle has neither
                    assert getattr(theirs, piece, None) == getattr(mine, piece, None)
            else:
                assert theirs == mine, (name, f.name)
        assert dataclasses.replace(back, steps=back.steps + 1) != run
        assert dataclasses.replace(back, name=back.name + "x") != run
    json.loads(experiment.to_json())


def test_configs_refuse_combinations_that_cannot_work():
    with pytest.raises(ValueError, match="`sampler`.*OnlineRun"):
        TripletRun(name="x", sampler="pk")
    with pytest.raises(ValueError, match="`loss`"):
        OnlineRun(name="x", loss={"miner": "batch_hard"})
    with pytest.raises(ValueError, match="`head`"):
        SiameseRun(name="x", head="l3")
    with pytest.raises(ValueError, match="`distance`"):
        TripletRun(name="x", distance="l3")
    with pytest.raises(ValueError, match="`hardest/random_extra`"):
        QuadrupletRun(name="x", sampler="hard_batch", candidates=10, hardest=8, random_extra=8)
    with pytest.raises(ValueError, match="`learning_rate`"):
        TripletRun(name="x", learning_rate=-1.0)
    with pytest.raises(TypeError, match="one per model kind"):
        RunConfig(name="x")
    with pytest.raises(ValueError, match=r"Unknown field\(s\) \['candidates'\]"):
        RunConfig.from_dict({"kind": "siamese", "name": "x", "candidates": 3})
    # oneshot 0.1 configs: a loss key the run would have ignored is refused, naming it
    legacy = {"kind": "quadruplet", "name": "q", "sampler": "random", "batch_size": 8,
              "candidates": 200, "hardest": 16, "random_extra": 16,
              "original_quadruplet_sampling": False, "loss": {"metric": "euclidean", "distance": "l1"}}  # fmt: skip
    with pytest.raises(ValueError, match=r"\['distance'\]"):
        RunConfig.from_dict(legacy)


def test_paper_switches_to_published_sizes():
    default, paper = (
        get_experiment("omniglot-triplet-vs-quadruplet"),
        get_experiment("omniglot-triplet-vs-quadruplet", paper=True),
    )
    assert paper.runs[0].network == "eric_omniglot" and paper.runs[0].image_size == 105
    assert paper.runs[0].steps == 200_000 and default.runs[0].steps < 10_000
    assert get_experiment("mnist-triplet", paper=True).runs[0].steps == 160_000


def test_unknown_experiment_and_bad_config_say_what_is_expected():
    with pytest.raises(ValueError, match="Expected one of .*mnist-triplet"):
        get_experiment("mnist-tripplet")
    with pytest.raises(ValueError, match="kind"):
        RunConfig.from_dict({"name": "x", "kind": "pentuplet"})
    with pytest.raises(ValueError, match="Unknown field"):
        RunConfig.from_dict({"name": "x", "kind": "triplet", "stepz": 3})


def test_help_lists_every_experiment(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = capsys.readouterr().out
    for name in EXPERIMENTS:
        assert name in text


def tiny_experiment(kind: str = "triplet", **overrides) -> Experiment:
    values = {**TINY, **overrides}
    if kind == "triplet":
        run = TripletRun(name=kind, margin=0.2, **values)
    elif kind == "quadruplet":
        run = QuadrupletRun(name=kind, metric="learned", alpha1=0.5, alpha2=0.25, **values)
    elif kind == "siamese":
        run = SiameseRun(name=kind, head="contrastive", **values)
    else:
        values.pop("batch_size", None)
        loss = TripletMarginLoss(0.2, miner=BatchHardMiner())
        run = OnlineRun(name=kind, loss=loss, classes_per_batch=4, samples_per_class=4, **values)
    return Experiment("tiny", "tiny test experiment", (run,))


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, after_epochs: int):
        super().__init__()
        self.after_epochs = after_epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.after_epochs:
            raise KeyboardInterrupt("simulated interruption")


def test_interrupted_run_resumes_to_the_same_final_step(tmp_path, data_dir):
    from oneshot.training.folders import OutputExistsError
    from oneshot.training.runner import train_run

    config = tiny_experiment().runs[0]
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_run(config, run_dir, data_dir, extra_callbacks=[_Interrupt(after_epochs=2)])
    assert not (run_dir / "model.keras").exists()
    assert [float(r["step"]) for r in history_rows(run_dir)] == [2.0, 4.0]
    with pytest.raises(OutputExistsError, match="--resume"):
        train_run(config, run_dir, data_dir)
    model = train_run(config, run_dir, data_dir, resume=True)
    assert [float(r["step"]) for r in history_rows(run_dir)] == [2.0, 4.0, 6.0]
    assert model.optimizer.iterations.numpy() == 6
    assert (run_dir / "model.keras").exists() and not (run_dir / "backup").exists()
    with pytest.raises(OutputExistsError, match="finished run"):
        train_run(config, run_dir, data_dir)


@pytest.mark.parametrize("kind", ["triplet", "online"])
def test_same_seed_gives_the_same_loss_curve(tmp_path, data_dir, kind):
    from oneshot.training.runner import train_run

    config = tiny_experiment(kind).runs[0]
    losses = []
    for i in range(2):
        train_run(config, tmp_path / f"run{i}", data_dir, seed=3)
        losses.append([float(r["loss"]) for r in history_rows(tmp_path / f"run{i}")])
    assert losses[0] == losses[1]
    train_run(config, tmp_path / "other", data_dir, seed=4)
    assert [float(r["loss"]) for r in history_rows(tmp_path / "other")] != losses[0]


def test_nan_loss_stops_with_advice(tmp_path):
    from oneshot.training.callbacks import StopOnNaN, TrainingDivergedError

    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile("sgd", "mse")
    x = np.ones((32, 3), np.float32)
    x[20:] = np.nan
    stop = StopOnNaN(steps_per_epoch=4)
    model.fit(
        x,
        np.ones((32, 1)),
        batch_size=4,
        epochs=3,
        steps_per_epoch=4,
        callbacks=[stop],
        verbose=0,
        shuffle=False,
    )
    assert stop.bad_step == 6  # first batch holding NaN rows: rows 20-23, the 6th step
    with pytest.raises(TrainingDivergedError, match="step 6.*learning rate"):
        stop.raise_if_diverged(tmp_path)


def test_each_model_kind_trains_through_the_runner(tmp_path, data_dir):
    from oneshot.training.runner import train_run

    for kind in ("siamese", "quadruplet"):
        train_run(tiny_experiment(kind, steps=2).runs[0], tmp_path / kind, data_dir)
        assert len(history_rows(tmp_path / kind)) == 1


MIRRORED_SCRIPT = """
import json, numpy as np, tensorflow as tf
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
import keras
from oneshot.models import build_triplet
from oneshot.models.networks import build_network
rng = np.random.default_rng(0)
x = [rng.random((16, 16, 16, 1), dtype=np.float32) for _ in range(3)]
def make():
    keras.utils.set_random_seed(0)
    return build_triplet(build_network("conv4", (16, 16, 1), 8, width=8), optimizer="sgd")
single = make()
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    mirrored = make()
mirrored.set_weights(single.get_weights())
ds = tf.data.Dataset.from_tensors((tuple(x),))
print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                  "single": float(single.evaluate(ds, verbose=0)),
                  "mirrored": float(mirrored.evaluate(ds, verbose=0))}))
"""


def test_mirrored_strategy_reduces_the_loss_like_one_device():
    out = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert result["mirrored"] == pytest.approx(result["single"], rel=1e-4)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, data_dir):
    """One real end-to-end CLI run (tiny step count), shared by the output and compare tests."""
    from oneshot.cli.train import main

    out = tmp_path_factory.mktemp("cli") / "contrastive-run"
    argv = ["--experiment", "mnist-siamese-contrastive", "--steps", "4", "--episodes", "50",
            "--out", str(out), "--data-dir", str(data_dir)]  # fmt: skip
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(argv) == 0
    (out / "printed.txt").write_text(printed.getvalue())  # for test_cli_final_summary_...
    return out, argv


def test_cli_writes_a_complete_run_folder(cli_run):
    out, argv = cli_run
    run = out / "contrastive"
    for name in ("config.json", "history.csv", "model.keras", "metrics.json", "loss.png",
                 "roc.png", "cmc.png", "embedding_pca.png", "embedding_tsne.png", "distances.png"):  # fmt: skip
        assert (run / name).stat().st_size > 0, name
    record = json.loads((out / "experiment.json").read_text())
    assert record["command"].endswith(" ".join(argv))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["nway"][0]["protocol"]["n_way"] == 10
    assert 0.0 <= metrics["verification"]["balanced"]["auc"] <= 1.0
    assert json.loads((run / "config.json").read_text())["steps"] == 4
    model = keras.models.load_model(run / "model.keras")
    assert model.get_layer("embedding") is not None


def test_cli_refuses_to_overwrite_a_finished_run(cli_run, capsys):
    from oneshot.cli.train import main

    out, argv = cli_run
    assert main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_cli_refused_runs_leave_the_folder_byte_identical(cli_run, capsys):
    """Other settings on a finished run: refused, and neither experiment.json nor the run's
    metrics and summary are rewritten; --resume names the settings that differ."""
    from oneshot.cli.train import main

    out, argv = cli_run
    before = _snapshot(out)
    assert main([*argv, "--steps", "50", "--seed", "3"]) == 2
    assert "finished run" in capsys.readouterr().err
    assert main([*argv, "--resume", "--steps", "50", "--seed", "5"]) == 2
    err = capsys.readouterr().err
    assert "steps: the run has 4, this command asks for 50" in err
    assert "seed: the run has 0, this command asks for 5" in err and "Traceback" not in err
    assert main([*argv, "--resume", "--episodes", "60"]) == 2
    assert "evaluation" in capsys.readouterr().err
    assert _snapshot(out) == before


def test_cli_final_summary_has_one_unit_per_kind_and_the_run_folder(cli_run):
    out, _ = cli_run
    printed = (out / "printed.txt").read_text()
    assert f"run folder: {out}" in printed and str(out / "contrastive") in printed
    assert "10-way 1-shot (%)" in printed and "MAP@R (retrieval) (%)" in printed
    assert "precision_at_1" not in printed and "map_at_r" not in printed
    assert "protocols: mnist test split" in printed
    row = next(r for r in printed.splitlines() if r.startswith("10-way 1-shot (%)"))
    assert 1.0 < float(row.split()[-1]) <= 100.0  # percent, not a fraction
    metrics = json.loads((out / "contrastive" / "metrics.json").read_text())
    assert metrics["seconds"]["embed"] > 1e-3  # measured, not the time of a cache lookup


def test_compare_plots_and_tabulates_runs(cli_run, tmp_path, capsys):
    from oneshot.cli.compare import main

    out, _ = cli_run
    figure = tmp_path / "cmp.png"
    assert main([str(out / "contrastive"), str(out / "contrastive"), "--out", str(figure)]) == 0
    table = capsys.readouterr().out
    assert "10-way 1-shot" in table and "AUC (balanced)" in table
    assert figure.stat().st_size > 0
    assert main([str(tmp_path)]) == 2  # not a run folder


def test_tuning_run_uses_held_out_background_alphabets_and_logs_accuracy(tmp_path, data_dir):
    """Validation mode never loads the evaluation alphabets; the monitor column is written and its
    time is left out of the training seconds; two --runs calls share one experiment record."""
    import dataclasses

    from oneshot.experiments import EvalConfig
    from oneshot.training.runner import run_experiment

    run = OnlineRun(
        name="rot", dataset="omniglot", image_size=28, network="conv4", embedding_dim=8,
        network_kwargs={"width": 8}, loss=TripletMarginLoss(miner=BatchHardMiner()),
        classes_per_batch=4, samples_per_class=2, rotated_classes=True, validation_alphabets=6,
        steps=4, log_every=2, monitor_episodes=20, monitor_drawers=2, test_shifts=1,
    )  # fmt: skip
    evaluation = EvalConfig(episodes=20, ways=(5,), cmc_classes=20, verification_pairs=200,
                            lake_runs=True, first_n_images=300, mnist_transfer=True)  # fmt: skip
    first = Experiment("tune", "t", (run,), evaluation)
    second = dataclasses.replace(first, runs=(dataclasses.replace(run, name="plain"),))
    run_experiment(first, tmp_path, data_dir, command="cmd rot")
    assert not (tmp_path / "comparison.png").exists()  # one finished run: nothing to compare
    summary = run_experiment(second, tmp_path, data_dir, command="cmd plain")
    assert set(summary["runs"]) == {"rot", "plain"}
    assert (tmp_path / "comparison.png").stat().st_size > 0  # both calls' runs
    record = json.loads((tmp_path / "experiment.json").read_text())
    assert record["commands"] == {"rot": "cmd rot", "plain": "cmd plain"}
    assert [r["name"] for r in record["runs"]] == ["rot", "plain"]
    rows = history_rows(tmp_path / "rot")
    accuracies = [float(r["monitor_20way"]) for r in rows]
    assert len(accuracies) == 2 and all(0.0 < a <= 1.0 for a in accuracies)
    assert float(rows[-1]["monitor_seconds"]) > 0
    assert not [k for k in rows[0] if k.startswith("val_")]  # no empty validation twins
    metrics = json.loads((tmp_path / "rot" / "metrics.json").read_text())
    assert metrics["nway"][0]["protocol"]["split"] == "validation alphabets"
    assert "skipped" in metrics["lake"] and "mnist_transfer" not in metrics
    assert metrics["test_shifts"] == 1
    assert metrics["classes"] < 659  # 6 background alphabets, not the evaluation set


def test_an_interrupted_experiment_keeps_the_summary_of_its_finished_runs(
    tmp_path, data_dir, monkeypatch
):
    import dataclasses

    from oneshot.experiments import EvalConfig
    from oneshot.training import runner

    run = OnlineRun(
        name="done", dataset="mnist", network="conv4", embedding_dim=8,
        network_kwargs={"width": 8}, loss=TripletMarginLoss(miner=BatchHardMiner()),
        classes_per_batch=4, samples_per_class=2, steps=2, log_every=2,
    )  # fmt: skip
    evaluation = EvalConfig(episodes=20, ways=(5,), cmc_classes=10, verification_pairs=200,
                            first_n_images=300)  # fmt: skip
    runs = (run, dataclasses.replace(run, name="killed"))
    train = runner._train_locked

    def interrupted(config, *args, **kwargs):
        if config.name == "killed":
            raise KeyboardInterrupt
        return train(config, *args, **kwargs)

    monkeypatch.setattr(runner, "_train_locked", interrupted)
    with pytest.raises(KeyboardInterrupt):
        runner.run_experiment(Experiment("two", "t", runs, evaluation), tmp_path, data_dir)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["runs"]) == {"done"}
    assert summary["runs"]["done"]["metrics"]["nway"][0]["accuracy"] > 0


def test_validation_alphabets_and_rotations_need_omniglot(tmp_path, data_dir):

    with pytest.raises(ValueError, match="omniglot"):
        TripletRun(name="x", dataset="mnist", validation_alphabets=3)
    with pytest.raises(ValueError, match="omniglot"):
        TripletRun(name="x", dataset="mnist", rotated_classes=True)


def test_threads_flag_is_validated(capsys):
    from oneshot.cli.train import main

    assert main(["--experiment", "mnist-best", "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err


def test_compare_mean_over_seeds(cli_run, tmp_path):
    """--mean adds the mean and std of each metric over the runs (the seeds of one config)."""
    import shutil

    from oneshot.runs import metrics_table

    out, _ = cli_run
    first = out / "contrastive"
    second = tmp_path / "seed1" / "contrastive"
    shutil.copytree(first, second)
    metrics = json.loads((second / "metrics.json").read_text())
    accuracy = metrics["nway"][0]["accuracy"]
    metrics["nway"][0]["accuracy"] = accuracy + 0.1
    (second / "metrics.json").write_text(json.dumps(metrics))
    table = metrics_table([first, second], mean=True)
    header, *rows = table.splitlines()
    assert header.split()[-2:] == ["mean", "std"]
    row = next(r for r in rows if r.startswith("10-way 1-shot")).split()
    assert float(row[-2]) == pytest.approx(accuracy + 0.05, abs=1e-4)
    assert float(row[-1]) == pytest.approx(0.1 / np.sqrt(2), abs=1e-4)


def test_run_labels_grow_until_they_differ(tmp_path):
    from oneshot.runs import run_labels

    same = [tmp_path / "best" / "seed0" / "run", tmp_path / "best-2cores" / "seed0" / "run"]
    assert run_labels(same) == ["best/seed0/run", "best-2cores/seed0/run"]
    plain = [tmp_path / "exp" / "triplet", tmp_path / "exp" / "quadruplet"]
    assert run_labels(plain) == ["exp/triplet", "exp/quadruplet"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--experiment", "mnist-best", "--precision", "float16"],
         "argument --precision: invalid choice: 'float16'"),
        (["--experiment", "mnist-best", "--patience", "many"],
         "argument --patience: invalid int value: 'many'"),
        (["--out", "x"], "one of the arguments --experiment --images is required"),
    ],
    ids=["bad-choice", "bad-number", "missing"],
)  # fmt: skip
def test_argparse_errors_are_one_line_pointing_to_help(tmp_path, capsys, argv, message):
    """A bad argument argparse itself refuses: one error line (not the usage block), exit 2."""
    from oneshot.cli.train import main

    with pytest.raises(SystemExit) as stop:
        main([*argv, "--out", str(tmp_path / "out")] if "--out" not in argv else argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: python -m oneshot.train: " + message), err
    assert err.rstrip().endswith("See python -m oneshot.train --help.")
    assert not (tmp_path / "out").exists()
