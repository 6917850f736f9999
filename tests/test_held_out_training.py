"""Training with held-out classes: the best checkpoint kept by held-out accuracy, and the
trained model compared with the untrained network and raw pixels (real MNIST, tiny conv4)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from oneshot.evaluation.episodes import OneShotResult
from oneshot.experiments import EvalConfig, OnlineRun
from oneshot.losses import TripletMarginLoss
from oneshot.miners import BatchHardMiner
from oneshot.training.baselines import UNTRAINED_FILE, baseline_warning, paired_margin
from oneshot.training.best import KeepBest

TINY_EVAL = EvalConfig(episodes=100, ways=(5, 10), cmc_classes=5, verification_pairs=200,
                       lake_runs=False, first_n_images=300)  # fmt: skip


def held_out_run(**overrides) -> OnlineRun:
    """Train on MNIST digits 0-4, monitor and keep the best on 5-9 (training split)."""
    values = dict(
        name="held", dataset="mnist", network="conv4", embedding_dim=8,
        network_kwargs={"width": 8}, loss=TripletMarginLoss(0.2, miner=BatchHardMiner()),
        classes_per_batch=5, samples_per_class=4, steps=8, log_every=2,
        validation_classes=(5, 6, 7, 8, 9), monitor_episodes=100, keep_best=True,
    )  # fmt: skip
    return OnlineRun(**{**values, **overrides})


def history(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "history.csv").open() as f:
        return list(csv.DictReader(f))


class Forced(keras.callbacks.Callback):
    """Logs given monitor values, one per epoch (in place of an EpisodeMonitor)."""

    def __init__(self, values):
        super().__init__()
        self.values = values

    def on_epoch_end(self, epoch, logs=None):
        logs["monitor_5way"] = self.values[epoch]


class Snapshots(keras.callbacks.Callback):
    """The weights and logs at the end of every epoch (and the weights before training)."""

    def __init__(self):
        super().__init__()
        self.weights, self.logs, self.initial = [], [], None

    def on_train_begin(self, logs=None):
        self.initial = [w.copy() for w in self.model.get_weights()]

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append([w.copy() for w in self.model.get_weights()])
        self.logs.append(dict(logs))


def _fit_small_model(callbacks, epochs: int) -> keras.Model:
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.compile(keras.optimizers.SGD(0.1), "mse")
    x = np.random.default_rng(0).random((8, 3)).astype("float32")
    model.fit(x, np.ones((8, 2)), batch_size=4, epochs=epochs, steps_per_epoch=2,
              callbacks=callbacks, verbose=0, shuffle=False)  # fmt: skip
    return model


def _assert_same_weights(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_keep_best_restores_the_best_chunk_not_the_last(tmp_path):
    keeper, snaps = KeepBest(tmp_path, "monitor_5way", log_every=2, steps=6), Snapshots()
    model = _fit_small_model([Forced([0.5, 0.9, 0.3]), keeper, snaps], epochs=3)
    assert keeper.best_step == 4 and [s["best_step"] for s in snaps.logs] == [2, 4, 4]
    assert keeper.restore(model) == 4
    _assert_same_weights(model.get_weights(), snaps.weights[1])
    assert not np.array_equal(model.get_weights()[0], snaps.weights[2][0])


def test_keep_best_stops_after_patience_and_resumes_its_state(tmp_path):
    keeper, snaps = KeepBest(tmp_path, "monitor_5way", 2, 20, patience=2), Snapshots()
    _fit_small_model([Forced([0.5, 0.9, 0.9, 0.2, 0.1, 0.0]), keeper, snaps], epochs=6)
    assert len(snaps.logs) == 4 and keeper.stopped  # two chunks without a better value
    assert keeper.best_step == 4  # a tie keeps the earlier chunk
    again = KeepBest(tmp_path, "monitor_5way", 2, 20, patience=2)
    again.resume(done_epochs=4)
    assert again.stopped and again.best_step == 4
    again.resume(done_epochs=3)  # killed before the 4th chunk's checkpoint: decided again
    assert not again.stopped and again.best_step == 4
    again.resume(done_epochs=1)  # the best came later: found again when that chunk is redone
    assert again.best_step is None


class ForcedMonitor(Forced):
    """Stands in for a run's EpisodeMonitor (same ``key``), logging given accuracies."""

    key = "monitor_5way"


def test_restored_weights_are_the_best_chunks_and_resume_is_exact(tmp_path, data_dir, monkeypatch):
    """A real run whose held-out accuracy peaks at its second chunk of four (the monitor's
    values are given: which chunk a tiny real monitor ranks best hangs on the machine's
    floating-point arithmetic) while a learning rate exploding towards the end (cosine up to
    1.0) keeps moving the weights: the saved model holds the best chunk's weights, not the
    last's. Interrupted and resumed, the run keeps the same best chunk and ends with the same
    weights."""
    from oneshot.training import runner
    from oneshot.training.runner import train_run

    accuracies = [0.5, 0.9, 0.6, 0.3]
    monkeypatch.setattr(runner, "run_monitor", lambda *args: [ForcedMonitor(accuracies)])
    config = held_out_run(final_learning_rate=1.0)
    snaps = Snapshots()
    model = train_run(config, tmp_path / "whole", data_dir, extra_callbacks=[snaps])
    assert [logs["monitor_5way"] for logs in snaps.logs] == accuracies
    best = accuracies.index(max(accuracies))  # the second chunk
    _assert_same_weights(model.get_weights(), snaps.weights[best])
    assert not np.array_equal(model.get_weights()[0], snaps.weights[-1][0])  # not the last
    rows = history(tmp_path / "whole")
    assert [float(r["best_step"]) for r in rows][-1] == 2 * (best + 1)
    saved = keras.saving.load_model(tmp_path / "whole" / "model.keras")
    _assert_same_weights(saved.get_weights(), model.get_layer("embedding").get_weights())

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(config, tmp_path / "cut", data_dir, extra_callbacks=[Interrupt()])
    resumed = train_run(config, tmp_path / "cut", data_dir, resume=True)
    _assert_same_weights(resumed.get_weights(), model.get_weights())
    assert [r["best_step"] for r in history(tmp_path / "cut")] == [r["best_step"] for r in rows]


def test_untrained_weights_are_the_weights_before_the_first_step(tmp_path, data_dir):
    from oneshot.training.runner import train_run
    from oneshot.training.setup import build_model

    config = held_out_run(steps=2)
    snaps = Snapshots()
    model = train_run(config, tmp_path / "run", data_dir, extra_callbacks=[snaps])
    untrained = build_model(config)
    untrained.load_weights(tmp_path / "run" / UNTRAINED_FILE)
    _assert_same_weights(untrained.get_weights(), snaps.initial)
    assert not np.array_equal(model.get_weights()[0], snaps.initial[0])


def _first_per_class(data, count: int, classes: int = 5):
    from oneshot.data.datasets import LabelledImages

    keep = np.concatenate([np.flatnonzero(data.labels == c)[:count] for c in range(classes)])
    return LabelledImages(data.images[keep], data.labels[keep], class_names=data.class_names)


def test_baselines_and_warning_in_metrics_after_one_step(tmp_path, data_dir):
    """One training step does not beat raw pixels (about 50% 5-way on digits 5-9): metrics.json
    holds the model and both baselines on the same episodes of the held-out digits of the TEST
    split (the monitor watched their training-split images), and the warning naming the
    baselines not beaten."""
    from oneshot.data import load_mnist
    from oneshot.experiments import Experiment
    from oneshot.training.runner import run_experiment
    from oneshot.training.setup import RunData, load_train_and_test

    config = held_out_run(name="one-step", steps=1, log_every=1)
    data = load_train_and_test(config, data_dir)
    test = load_mnist("test", data_dir=data_dir)
    assert data.monitor.class_names == ["5", "6", "7", "8", "9"]
    assert len(data.monitor) > 20000  # the training split's 5-9
    assert data.test.class_names == ["5", "6", "7", "8", "9"]
    assert len(data.test) == int(np.sum(test.labels >= 5))  # the test split's 5-9 only
    # small sets, told apart by their classes: the monitor's 3 (3-way), the evaluation's 5
    monitor = _first_per_class(data.monitor, 8, classes=3)
    small = RunData(data.train, _first_per_class(data.test, 40), monitor)
    experiment = Experiment("tiny", "one step", (config,), TINY_EVAL)
    run_experiment(experiment, tmp_path, data_dir, data=small)
    assert "monitor_3way" in history(tmp_path / config.name)[0]
    metrics = json.loads((tmp_path / config.name / "metrics.json").read_text())
    assert metrics["images"] == 200  # the evaluation set, not the monitor's 40 images
    report = metrics["heldout"]
    assert report["evaluation_split"] == "test" and report["monitor_split"] == "train"
    assert report["untrained_weights"] == "random"
    assert report["protocol"]["task"] == "5-way 1-shot" and report["protocol"]["classes"] == 5
    for name in ("model", "untrained", "pixels"):
        assert report[name]["protocol"] == report["model"]["protocol"]
        assert 0.0 < report[name]["accuracy"] <= 1.0
    assert report["pixels"]["accuracy"] != report["untrained"]["accuracy"]
    assert not report["vs_pixels"]["beaten"]
    assert report["warning"].startswith("the trained model does not beat ")
    lost = report["warning"].split(" on ")[0]
    assert "raw pixels" in lost
    assert ("the untrained network" in lost) == (not report["vs_untrained"]["beaten"])
    assert report["best_step"] == 1
    assert metrics["split"] == "held-out classes, test split" and metrics["classes"] == 5
    assert [t["protocol"]["n_way"] for t in metrics["nway"]] == [5]  # 10-way capped at 5


def test_an_early_stop_reports_the_steps_it_trained(tmp_path, data_dir, monkeypatch):
    """Held-out accuracy falls after the first chunk: with patience 1 the run stops after the
    second chunk, and the summary says 4 of the 8 steps asked, as the train command prints."""
    from oneshot.cli.train import steps_line
    from oneshot.experiments import Experiment
    from oneshot.training import runner
    from oneshot.training.runner import run_experiment

    monkeypatch.setattr(runner, "run_monitor", lambda *args: [ForcedMonitor([0.9, 0.5, 0.4, 0.3])])
    config = held_out_run(name="stops", patience=1)
    experiment = Experiment("early", "early stop", (config,), TINY_EVAL)
    summary = run_experiment(experiment, tmp_path, data_dir, evaluate=False)
    entry = summary["runs"]["stops"]
    assert (entry["steps"], entry["steps_asked"]) == (4, 8)
    assert steps_line("stops", entry, tmp_path).startswith("stops: 4 of 8 steps (stopped early")


def _result(per_episode) -> OneShotResult:
    values = np.asarray(per_episode, dtype=float)
    return OneShotResult(values.mean(), 0.0, values, {"task": "5-way 1-shot"})


def test_a_baseline_is_beaten_only_beyond_the_confidence_interval():
    rng = np.random.default_rng(0)
    baseline = _result(rng.integers(0, 2, 400))
    assert not paired_margin(baseline, baseline)["beaten"]
    better = _result(np.maximum(baseline.episode_accuracies, rng.integers(0, 2, 400)))
    assert paired_margin(better, baseline)["beaten"]
    barely = _result(np.where(np.arange(400) == 0, 1.0, baseline.episode_accuracies))
    assert not paired_margin(barely, baseline)["beaten"]  # higher, but within the CI
    report = {
        "protocol": {"classes": 5, "task": "5-way 1-shot", "within_alphabet": False,
                     "episodes": 400},
        "model": better.to_dict(), "untrained": baseline.to_dict(), "pixels": baseline.to_dict(),
        "vs_untrained": paired_margin(better, baseline), "vs_pixels": paired_margin(better, baseline),
    }  # fmt: skip
    assert baseline_warning(report) is None
    report["protocol"]["n_way"] = 2  # the same scores on 2-way episodes
    assert baseline_warning(report).startswith("measured on 2-way episodes of 5 held-out")
    report["protocol"]["n_way"] = 5
    untrained = report.pop("vs_untrained")
    assert "not compared with the untrained network" in baseline_warning(report)
    report["vs_untrained"] = untrained
    report["vs_pixels"] = paired_margin(barely, baseline)
    assert "does not beat raw pixels" in baseline_warning(report)
