"""The graph loop (``oneshot.training.loop.fit_loop``) trains to ``model.fit``'s numbers bit for
bit: the same ``history.csv`` losses and final weights from short real runs, in this process.

Short runs on real MNIST with a tiny conv4; a few seconds each.
"""

from __future__ import annotations

import csv
from pathlib import Path

import keras
import numpy as np
import pytest

from oneshot.experiments import OnlineRun, SiameseRun, TripletRun
from oneshot.losses import TripletMarginLoss
from oneshot.miners import BatchHardMiner
from oneshot.training.callbacks import StopOnNaN
from oneshot.training.loop import replayable

TINY = dict(dataset="mnist", network="conv4", embedding_dim=8, network_kwargs={"width": 8},
            learning_rate=1e-3, steps=7, log_every=3)  # fmt: skip
TIMINGS = ("seconds", "monitor_seconds")  # history.csv columns that differ from run to run


def history(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "history.csv").open() as f:
        return [{k: v for k, v in row.items() if k not in TIMINGS} for row in csv.DictReader(f)]


def tiny_online(**overrides) -> OnlineRun:
    loss = TripletMarginLoss(0.2, miner=BatchHardMiner())
    values = dict(name="online", loss=loss, classes_per_batch=4, samples_per_class=4)
    return OnlineRun(**{**TINY, **values, **overrides})


CONFIGS = {
    "hard-batch-triplet": lambda: TripletRun(
        name="triplet",
        batch_size=16,
        sampler="hard_batch",
        candidates=32,
        hardest=8,
        random_extra=8,
        **TINY,
    ),
    "online-augmented": lambda: tiny_online(augment=True),
    "online-cosine-schedule": lambda: tiny_online(steps=12, log_every=5, final_learning_rate=1e-4),
    "siamese": lambda: SiameseRun(name="siamese", head="contrastive", batch_size=16, **TINY),
    # the episode monitor, the best checkpoint kept, early stopping (here after 4 steps)
    "held-out-keep-best": lambda: tiny_online(
        classes_per_batch=5,
        steps=10,
        log_every=2,
        validation_classes=(5, 6, 7, 8, 9),
        monitor_episodes=100,
        keep_best=True,
        patience=1,
    ),
}


@pytest.mark.parametrize("make_config", list(CONFIGS.values()), ids=list(CONFIGS))
def test_graph_loop_gives_fits_losses_and_weights_bit_for_bit(tmp_path, data_dir, make_config):
    """Each run trains twice in this process, through ``model.fit`` and through the graph
    loop (chunks of 3 or 5 steps, then a shorter last chunk): identical history rows (loss,
    step, learning rate) and identical final weights, bit for bit."""
    from oneshot.training.runner import train_run

    config = make_config()
    fit = train_run(config, tmp_path / "fit", data_dir, seed=11, loop="fit")
    graph = train_run(config, tmp_path / "graph", data_dir, seed=11, loop="graph")
    rows = history(tmp_path / "fit")
    assert 0 < int(rows[-1]["step"]) <= config.steps  # fewer: early stopping
    assert history(tmp_path / "graph") == rows
    for a, b in zip(fit.get_weights(), graph.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_graph_loop_resumes_into_fits_run(tmp_path, data_dir):
    """A run interrupted after its first chunk under ``model.fit`` and resumed with the graph
    loop ends as the uninterrupted graph-loop run: the two paths share checkpoints."""
    from oneshot.training.runner import train_run

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt("simulated")

    config = tiny_online()
    whole = train_run(config, tmp_path / "whole", data_dir, seed=5)
    with pytest.raises(KeyboardInterrupt):
        train_run(config, tmp_path / "cut", data_dir, seed=5, loop="fit",
                  extra_callbacks=[Interrupt()])  # fmt: skip
    resumed = train_run(config, tmp_path / "cut", data_dir, seed=5, resume=True)
    assert history(tmp_path / "cut") == history(tmp_path / "whole")
    for a, b in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_batch_callbacks_that_act_mid_epoch_get_one_step_per_call():
    """Only callbacks whose batch methods merely read the logs may be called after a chunk."""

    class Reads(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            pass

    class Acts(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.model.stop_training = True

    assert replayable([StopOnNaN(3), Reads(), keras.callbacks.History()])
    assert not replayable([StopOnNaN(3), Acts()])


def test_unknown_loop_is_refused_by_name(tmp_path):
    from oneshot.training.runner import train_run

    with pytest.raises(ValueError, match="`loop`.*Received: loop='eager'"):
        train_run(tiny_online(), tmp_path / "run", loop="eager")
    assert not (tmp_path / "run").exists()
