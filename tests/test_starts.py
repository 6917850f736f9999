"""Where a run on few classes starts: the shipped pretrained starts, the per-folder choice of
the best start on the held-out classes, and a run that keeps its start unless training beats it
(real MNIST digits and the package's own networks)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from pathlib import Path

import keras
import numpy as np
import pytest
from test_held_out_training import (
    Forced,
    ForcedMonitor,
    Snapshots,
    _assert_same_weights,
    _fit_small_model,
    held_out_run,
)
from test_train_images import export_digits

from oneshot.models.starts import RANDOM, STARTS, start_path
from oneshot.names import SHIPPED_STARTS
from oneshot.training.best import KeepBest
from oneshot.training.starts import StartScore, choose_start, describe_scores

REPO = Path(__file__).resolve().parents[1]


def test_shipped_starts_are_the_committed_networks_they_name():
    """Each start is package data whose network takes the images its entry says, and comes from
    a committed run whose command its entry gives."""
    from oneshot.models.identity import embedding_network
    from oneshot.models.saving import load_model

    assert tuple(STARTS) == SHIPPED_STARTS
    for name, start in STARTS.items():
        assert start_path(name) == start.path and start.path.stat().st_size < 1_000_000
        network = load_model(start.path, compile=False)
        assert network.input_shape[1:] == (start.image_size, start.image_size, start.channels)
        assert "--experiment" in start.command and "--out results/" in start.command
        run = start.command.split("--out ")[1].split()[0]
        (model,) = [p for p in (REPO / run).glob("*/model.keras")]  # the committed run's model
        committed = embedding_network(load_model(model, compile=False))
        _assert_same_weights(network.get_weights(), committed.get_weights())
    assert start_path("some/model.keras").as_posix() == "some/model.keras"


def test_the_start_is_kept_when_no_chunk_beats_it_and_patience_counts_from_it(tmp_path):
    keeper, snaps = KeepBest(tmp_path, "monitor_5way", 2, 20, patience=2), Snapshots()
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    start = [w.copy() for w in model.get_weights()]
    keeper.offer_start(model, 0.8)
    assert keeper.best_step == 0 and keeper.start_value == 0.8
    model.compile(keras.optimizers.SGD(0.1), "mse")
    x = np.random.default_rng(0).random((8, 3)).astype("float32")
    model.fit(x, np.ones((8, 2)), batch_size=4, epochs=5, steps_per_epoch=2, verbose=0,
              callbacks=[Forced([0.5, 0.8, 0.9, 0.9, 0.9]), keeper, snaps])  # fmt: skip
    assert len(snaps.logs) == 2 and keeper.stopped  # 2 chunks without beating the start
    assert [s["best_step"] for s in snaps.logs] == [0, 0]  # a tie keeps the start
    assert keeper.restore(model) == 0
    _assert_same_weights(model.get_weights(), start)
    again = KeepBest(tmp_path, "monitor_5way", 2, 20, patience=2)
    again.resume(done_epochs=1)  # killed before the 2nd chunk's checkpoint: the start stays
    assert again.best_step == 0 and again.start_value == 0.8 and not again.stopped


def test_a_chunk_that_beats_the_start_is_kept(tmp_path):
    keeper, snaps = KeepBest(tmp_path, "monitor_5way", 2, 20), Snapshots()
    inputs = keras.Input((3,))
    keeper.offer_start(keras.Model(inputs, keras.layers.Dense(2)(inputs)), 0.6)
    model = _fit_small_model([Forced([0.5, 0.7, 0.65]), keeper, snaps], epochs=3)
    assert keeper.restore(model) == 4
    _assert_same_weights(model.get_weights(), snaps.weights[1])
    again = KeepBest(tmp_path, "monitor_5way", 2, 20)
    again.resume(done_epochs=1)  # the best came later: back to the start, not to nothing
    assert again.best_step == 0 and again.start_value == 0.6


class StartMonitor(ForcedMonitor):
    """A forced monitor that also scores the weights before training."""

    def measure(self, model):
        return 0.95


def test_a_run_that_does_not_beat_its_start_keeps_it_and_says_so(tmp_path, data_dir, monkeypatch):
    from oneshot.training import runner
    from oneshot.training.assess import held_out_report
    from oneshot.training.baselines import load_untrained
    from oneshot.training.runner import train_run
    from oneshot.training.setup import build_model, load_train_and_test

    monkeypatch.setattr(runner, "run_monitor", lambda *args: [StartMonitor([0.5, 0.9, 0.6])])
    config = held_out_run(keep_start=True, steps=6, patience=2)
    model = train_run(config, tmp_path / "run", data_dir)
    data = load_train_and_test(config, data_dir)
    untrained = load_untrained(build_model(config, data.train), tmp_path / "run")
    _assert_same_weights(model.get_weights(), untrained.get_weights())  # the start, kept
    report = held_out_report(*_scored(model, config, data), untrained, config, data.test, 50,
                             tmp_path / "run", 0)  # fmt: skip
    assert report["kept_start"] is True and report["best_step"] == 0
    assert report["steps_trained"] == 4  # patience 2: stopped after 2 chunks of 2 steps
    assert report["warning"].startswith("no checkpoint beat the start on the held-out monitor")
    assert json.loads((tmp_path / "run" / "config.json").read_text())["keep_start"] is True


def _scored(model, config, data):
    from oneshot.evaluation.scoring import Scorer

    scorer = Scorer.from_model(model)
    return scorer, scorer.embed(data.test.images)


def test_keep_start_needs_keep_best():
    with pytest.raises(ValueError, match="keep_start"):
        held_out_run(keep_best=False, keep_start=True)


def test_the_best_scored_start_is_chosen_and_a_tie_keeps_random_weights():
    config = held_out_run(keep_start=True)
    scores = [StartScore(RANDOM, 28, 0.6, "monitor_5way"),
              StartScore("omniglot", 35, 0.7, "monitor_5way"),
              StartScore("mnist", 28, 0.65, "monitor_5way")]  # fmt: skip
    chosen = choose_start(config, scores)
    assert (chosen.init_from, chosen.image_size, chosen.learning_rate) == ("omniglot", 35, 1e-4)
    assert choose_start(config, scores, learning_rate=3e-4).learning_rate == 3e-4
    assert "omniglot (chosen) 70.0%" in describe_scores(scores)
    tie = [StartScore(RANDOM, 28, 0.7, "monitor_5way"), scores[1]]
    chosen = choose_start(config, tie)
    assert (chosen.init_from, chosen.image_size, chosen.learning_rate) == (None, 28, 1e-3)


def _folder_run(tmp_path, data_dir, *extra):
    from oneshot.cli.train_args import parse_args
    from oneshot.cli.train_images import build_folder_experiment

    folder = tmp_path / "digits"
    if not folder.exists():
        export_digits(folder, data_dir, classes=6, per_class=4)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        experiment, data = build_folder_experiment(parse_args(["--images", str(folder), *extra]))
    return experiment, data, printed.getvalue()


def test_a_shipped_start_by_name_resizes_the_folder_to_its_input(tmp_path, data_dir):
    experiment, data, printed = _folder_run(tmp_path, data_dir, "--init-from", "omniglot")
    (run,) = experiment.runs
    assert (run.init_from, run.image_size, run.learning_rate) == ("omniglot", 35, 1e-4)
    digest = hashlib.sha256(STARTS["omniglot"].path.read_bytes()).hexdigest()
    assert run.init_checksum == f"sha256:{digest}" and run.keep_start
    assert data.train.images.shape[1:] == data.test.images.shape[1:] == (35, 35)
    assert "starts scored on the held-out classes before training" in printed
    assert "omniglot (chosen)" in experiment.summary


def test_auto_scores_every_start_and_records_the_scores(tmp_path, data_dir):
    """On MNIST digits a shipped start (the MNIST one saw these digits; Omniglot's strokes come
    close) beats random weights by far, and the run takes the best score's start and size."""
    import re

    experiment, data, printed = _folder_run(tmp_path, data_dir)
    (run,) = experiment.runs
    scores = dict(re.findall(r" (\w+)(?: \(chosen\))? ([\d.]+)%", printed))
    assert set(scores) == {RANDOM, *STARTS}, printed
    best = max(scores, key=lambda name: float(scores[name]))
    assert f"{best} (chosen)" in printed and f"{best} (chosen)" in experiment.summary
    assert run.init_from == best != RANDOM and float(scores[best]) > float(scores[RANDOM]) + 20
    assert run.image_size == STARTS[best].image_size == data.train.images.shape[1]
    random, _, _ = _folder_run(tmp_path, data_dir, "--init-from", "random")
    (plain,) = random.runs
    assert plain.init_from is None and plain.learning_rate == 1e-3
    assert "starts scored" not in random.summary
