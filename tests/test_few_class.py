"""The few-class study's infrastructure: held-out classes evaluated on the test split, runs
started from a pretrained network (``init_from``), and the ``mnist-few-class`` experiment
(real MNIST, tiny conv4)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oneshot.data import load_mnist, load_omniglot
from oneshot.experiments import OnlineRun, RunConfig, get_experiment
from oneshot.losses import NTXentLoss, TripletMarginLoss
from oneshot.miners import BatchHardMiner

REPO_ROOT = Path(__file__).resolve().parents[1]


def tiny_run(**overrides) -> OnlineRun:
    """Train on MNIST digits 0-4 (a width-8 conv4), hold out 5-9."""
    values = dict(
        name="tiny", dataset="mnist", network="conv4", embedding_dim=8,
        network_kwargs={"width": 8}, loss=TripletMarginLoss(0.2, miner=BatchHardMiner()),
        classes_per_batch=5, samples_per_class=4, steps=1, log_every=1,
        validation_classes=(5, 6, 7, 8, 9), monitor_episodes=20,
    )  # fmt: skip
    return OnlineRun(**{**values, **overrides})


def test_held_out_classes_are_tested_on_the_test_split_and_a_folder_on_itself(tmp_path, data_dir):
    from oneshot.training.assess import split_name
    from oneshot.training.setup import held_out_split, load_train_and_test

    config = tiny_run()
    data = load_train_and_test(config, data_dir)
    train, test = load_mnist("train", data_dir=data_dir), load_mnist("test", data_dir=data_dir)
    np.testing.assert_array_equal(data.train.images, train.images[train.labels < 5])
    np.testing.assert_array_equal(data.monitor.images, train.images[train.labels >= 5])
    np.testing.assert_array_equal(data.test.images, test.images[test.labels >= 5])
    np.testing.assert_array_equal(data.test.labels, test.labels[test.labels >= 5] - 5)
    assert data.test.class_names == data.monitor.class_names == ["5", "6", "7", "8", "9"]
    assert held_out_split(config) == "test" and split_name(config) == "held-out classes, test split"

    # Omniglot's test split (the evaluation alphabets) holds only new classes: all of it
    omniglot = tiny_run(dataset="omniglot", validation_classes=0.05)
    data = load_train_and_test(omniglot, data_dir)
    evaluation = load_omniglot("evaluation", image_size=28, data_dir=data_dir)
    np.testing.assert_array_equal(data.test.images, evaluation.images)
    assert set(data.monitor.class_names) <= set(load_omniglot("background", data_dir=data_dir,
                                                              image_size=28).class_names)  # fmt: skip
    assert len(data.train) + len(data.monitor) == 19280
    assert split_name(omniglot) == "evaluation" and held_out_split(omniglot) == "test"

    for c in range(4):  # a folder: no test split, evaluated on the images it monitored
        (tmp_path / f"c{c}").mkdir()
        for i in range(3):
            Image.fromarray(test.images[test.labels == c][i]).save(tmp_path / f"c{c}/{i}.png")
    folder = tiny_run(dataset="folder", folder=str(tmp_path), validation_classes=("c1", "c3"))
    data = load_train_and_test(folder, None)
    assert data.test is data.monitor and data.test.class_names == ["c1", "c3"]
    np.testing.assert_array_equal(data.test.images[:3], test.images[test.labels == 1][:3])
    assert held_out_split(folder) == "train" and split_name(folder) == "held-out classes"


def _save_source(path: Path, config: RunConfig, shift: float) -> list[np.ndarray]:
    """A model.keras of ``config``'s network with weights unlike any seed's (random + shift)."""
    from oneshot.models import saveable_model
    from oneshot.training.setup import build_model

    model = build_model(dataclasses.replace(config, init_from=None, init_checksum=None))
    rng = np.random.default_rng(int(shift * 100))
    embedding = model.get_layer("embedding")
    embedding.set_weights([w + shift + rng.random(w.shape) for w in embedding.get_weights()])
    path.parent.mkdir(parents=True, exist_ok=True)
    saveable_model(model).save(path)
    return embedding.get_weights()


def _assert_same(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_init_from_starts_from_the_file_and_resume_refuses_a_changed_file(tmp_path, data_dir):
    """The run's network starts with the file's weights (BatchNorm statistics included), which
    are its "untrained" baseline; config.json pins the file's sha256, and once the file changes
    --resume and a rebuild from the pinned config are refused."""
    from oneshot.training.baselines import UNTRAINED_FILE
    from oneshot.training.folders import OutputExistsError
    from oneshot.training.pretrained import InitFromError, pinned
    from oneshot.training.runner import train_run
    from oneshot.training.setup import build_model

    source = tmp_path / "source" / "model.keras"
    config = tiny_run(init_from=str(source))
    weights = _save_source(source, config, shift=0.5)
    checksum = "sha256:" + hashlib.sha256(source.read_bytes()).hexdigest()
    assert pinned(config).init_checksum == checksum
    _assert_same(build_model(pinned(config)).get_layer("embedding").get_weights(), weights)

    run_dir = tmp_path / "run"
    train_run(config, run_dir, data_dir)
    stored = json.loads((run_dir / "config.json").read_text())
    assert stored["init_from"] == str(source) and stored["init_checksum"] == checksum
    untrained = build_model(tiny_run())  # random weights, then the saved initial ones
    untrained.load_weights(run_dir / UNTRAINED_FILE)
    _assert_same(untrained.get_layer("embedding").get_weights(), weights)

    _save_source(source, config, shift=0.25)  # the file changes under the finished run
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    with pytest.raises(OutputExistsError, match="init_checksum: the run has 'sha256:") as error:
        train_run(config, run_dir, data_dir, resume=True)
    assert f"the pretrained model {source} changed since the run started" in str(error.value)
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before
    with pytest.raises(InitFromError, match="changed since the run recorded it"):
        build_model(RunConfig.from_dict(stored))


def test_init_from_refuses_another_network_or_a_missing_file(tmp_path):
    """Before anything is written, with both networks and what to change in the message."""
    from oneshot.training.pretrained import InitFromError
    from oneshot.training.runner import train_run

    source = tmp_path / "source" / "model.keras"
    _save_source(source, tiny_run(), shift=0.5)
    larger = tiny_run(init_from=str(source), image_size=32)
    with pytest.raises(InitFromError) as error:
        train_run(larger, tmp_path / "run")
    message = str(error.value)
    assert "input (32, 32, 1)" in message and "input (28, 28, 1)" in message
    assert "Set the run's image_size to 28 and channels to 1" in message
    assert not (tmp_path / "run").exists()
    wider = tiny_run(init_from=str(source), network_kwargs={"width": 16})
    with pytest.raises(InitFromError, match="the architectures differ") as error:
        train_run(wider, tmp_path / "run")
    assert "network_kwargs={'width': 16}" in str(error.value)
    assert "('Conv2D', ((3, 3, 1, 8),)) in the file's" in str(error.value)

    missing = tmp_path / "results/omniglot-best/seed0/batch-hard/model.keras"
    with pytest.raises(InitFromError) as error:
        train_run(tiny_run(init_from=str(missing)), tmp_path / "run")
    assert f"init_from='{missing}', which does not exist" in str(error.value)
    assert "Point init_from to the model.keras of a finished run" in str(error.value)
    # the command that trains it is the command line's advice, which knows the experiments:
    # test_the_study_says_how_to_make_a_missing_omniglot_network
    from oneshot.experiments import how_to_produce

    command = "python -m oneshot.train --experiment omniglot-best --seed 0 --out "
    assert (
        how_to_produce(missing)
        == "Produce it with: " + command + str(tmp_path / "results/omniglot-best/seed0") + "."
    )
    assert not (tmp_path / "run").exists()


def test_few_class_runs_are_the_intended_recipes(monkeypatch, data_dir):
    """The study's runs differ from ``best-chunk`` in exactly their recipe, validate, and the
    study's command pins the committed Omniglot network, whose 35x35 input MNIST is resized to."""
    from oneshot.cli.train import check_args, parse_args
    from oneshot.experiments.few_class import OMNIGLOT_MODEL
    from oneshot.training.pretrained import file_checksum
    from oneshot.training.setup import load_train_and_test

    experiment = get_experiment("mnist-few-class")
    runs = {r.name: r for r in experiment.runs}
    assert list(runs) == ["readme", "best-chunk", "augment", "nt-xent", "omniglot-init"]
    assert experiment.evaluation.ways == (5,) and experiment.evaluation.episodes == 1000
    for run in runs.values():
        assert (run.dataset, run.validation_classes, run.steps) == ("mnist", (5, 6, 7, 8, 9), 1500)
        assert (run.monitor_episodes, run.log_every, run.final_learning_rate) == (500, 100, 1e-5)
        assert RunConfig.from_dict(json.loads(json.dumps(run.to_dict()))) == run
    assert not runs["readme"].keep_best and runs["readme"].patience == 0
    base = runs["best-chunk"].to_dict()
    assert base["keep_best"] is True and base["patience"] == 3
    assert {k for k in base if base[k] != runs["readme"].to_dict().get(k)} == {
        "name", "keep_best", "patience"
    }  # fmt: skip
    changed = {
        "augment": {"augment"},
        "nt-xent": {"loss"},
        "omniglot-init": {"image_size", "init_from", "learning_rate"},
    }
    for name, keys in changed.items():
        values = runs[name].to_dict()
        assert {k for k in {*base, *values} if base.get(k) != values.get(k)} == {"name", *keys}
    assert runs["augment"].augment and runs["augment"].augment_strength == 1.0
    loss = runs["nt-xent"].loss
    assert isinstance(loss, NTXentLoss) and loss.temperature == 0.1
    assert isinstance(runs["best-chunk"].loss, TripletMarginLoss)
    init = runs["omniglot-init"]
    assert (init.image_size, init.init_from, init.learning_rate) == (35, OMNIGLOT_MODEL, 1e-4)

    monkeypatch.chdir(REPO_ROOT)
    out = "results/mnist-few-class/seed1"
    argv = ["--experiment", "mnist-few-class", "--seed", "1", "--threads", "1", "--out", out]
    pinned = {r.name: r for r in check_args(parse_args(argv)).runs}
    assert pinned["omniglot-init"].init_checksum == file_checksum(OMNIGLOT_MODEL)
    assert pinned["readme"] == runs["readme"]  # nothing pinned without init_from
    data = load_train_and_test(init, data_dir)
    assert data.train.images.shape[1:] == data.test.images.shape[1:] == (35, 35)
    assert len(data.test) == int(np.sum(load_mnist("test", data_dir=data_dir).labels >= 5))


def test_the_study_says_how_to_make_a_missing_omniglot_network(tmp_path, monkeypatch):
    from oneshot.cli.common import UsageError
    from oneshot.cli.train import check_args, parse_args

    monkeypatch.chdir(tmp_path)  # no results/ here
    argv = ["--experiment", "mnist-few-class", "--runs", "omniglot-init,readme"]
    with pytest.raises(UsageError) as error:
        check_args(parse_args(argv))
    message = str(error.value)
    assert "init_from='results/omniglot-best/seed0/batch-hard/model.keras'" in message
    assert "python -m oneshot.train --experiment omniglot-best --seed 0" in message
    assert check_args(parse_args([*argv[:3], "readme"])).runs[0].name == "readme"


def test_augment_strength_reaches_the_training_batches(data_dir):
    from oneshot.training.setup import build_dataset

    train = load_mnist("test", data_dir=data_dir)
    batches = {}
    for strength in (None, 1.0, 2.0):
        config = tiny_run(augment=strength is not None, augment_strength=strength or 1.0)
        x, y = next(iter(build_dataset(config, None, train, seed=3)))
        batches[strength] = x.numpy(), y.numpy()
    np.testing.assert_array_equal(batches[1.0][1], batches[2.0][1])  # same images drawn
    assert not np.allclose(batches[None][0], batches[1.0][0])
    assert not np.allclose(batches[1.0][0], batches[2.0][0])
    with pytest.raises(ValueError, match="augment_strength"):
        tiny_run(augment_strength=2.0)  # without augment=True
    with pytest.raises(ValueError, match="augment_strength"):
        tiny_run(augment=True, augment_strength=5.0)
