"""``python -m oneshot.evaluate`` end to end on real data with a tiny saved model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import pytest

from oneshot.cli.evaluate import main
from oneshot.data import load_mnist
from oneshot.data.samplers import pk_dataset
from oneshot.distances import CosineSimilarity, LpDistance
from oneshot.losses import TripletMarginLoss
from oneshot.miners import BatchHardMiner
from oneshot.models import DISTANCE_TAG, EmbeddingDistance, build_online
from oneshot.models.networks import conv4


def save_tiny_model(path, size: int, distance: str | None = "euclidean", channels: int = 1) -> None:
    """A model whose nested layer "embedding" maps (size, size, channels) images to 8-D vectors
    and that records ``distance`` as an online model does (None: a bare model recording none)."""
    embedding = keras.Sequential(
        [
            keras.Input((size, size, channels)),
            keras.layers.AveragePooling2D(size // 7),
            keras.layers.Flatten(),
            keras.layers.Dense(8),
        ],
        name="embedding",
    )
    inp = keras.Input((size, size, channels))
    out = embedding(inp)
    if distance is not None:
        out = EmbeddingDistance(distance, name=DISTANCE_TAG)(out)
    keras.Model(inp, out).save(path)


@pytest.fixture(scope="module")
def model28(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    save_tiny_model(path, 28)
    return path


def test_mnist_all_protocols(model28, data_dir, tmp_path, capsys):
    out = tmp_path / "r.json"
    code = main(
        [
            "--model",
            str(model28),
            "--data-dir",
            str(data_dir),
            "--dataset",
            "mnist",
            "--episodes",
            "50",
            "--cmc-trials",
            "2",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert (
        printed["split"] == "test" and printed["images"] == 10000 and printed["embedding_dim"] == 8
    )
    nway = printed["nway"][0]
    assert nway["protocol"]["n_way"] == 10 and nway["protocol"]["episodes"] == 50
    assert 0.1 < nway["accuracy"] <= 1.0  # a random projection of pooled pixels beats chance
    assert 0.5 < printed["verification"]["balanced"]["auc"] <= 1.0
    assert "first 3000 images" in printed["verification"]["first_n"]["protocol"]["pairs"]
    assert printed["cmc"]["protocol"]["n_classes"] == 10
    assert 0.1 < printed["retrieval"]["precision_at_1"] <= 1.0
    assert printed["lake"] == {"skipped": "Lake's runs are an Omniglot protocol"}
    assert printed["distance"] == "euclidean" and printed["learned_metric"] is False


def test_omniglot_nway_and_lake(model28, data_dir, capsys):
    args = [
        "--model",
        str(model28),
        "--data-dir",
        str(data_dir),
        "--dataset",
        "omniglot",
        "--image-size",
        "28",
        "--episodes",
        "20",
        "--protocol",
        "nway",
        "lake",
    ]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["split"] == "evaluation"
    assert [t["protocol"]["within_alphabet"] for t in printed["nway"]] == [True, False, False]
    assert len(printed["lake"]["run_errors"]) == 20 and 0 <= printed["lake"]["mean_error"] <= 100
    assert "verification" not in printed


def test_colour_model_gets_the_grey_images_repeated_into_rgb(data_dir, tmp_path, capsys):
    """A network for (28, 28, 3) images is evaluated on grey Omniglot (episodes and Lake's
    runs) with the channel repeated, and the summary says so."""
    path = tmp_path / "colour.keras"
    save_tiny_model(path, 28, channels=3)
    args = ["--model", str(path), "--data-dir", str(data_dir), "--dataset", "omniglot"]
    args += ["--image-size", "28", "--episodes", "20", "--protocol", "nway", "lake"]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["input"] == (
        "grey omniglot images repeated into the 3 channels of a colour network"
    )
    assert 0.05 < printed["nway"][0]["accuracy"] <= 1.0
    assert len(printed["lake"]["run_errors"]) == 20


def test_clear_errors(model28, data_dir, tmp_path, capsys):
    base = ["--data-dir", str(data_dir), "--episodes", "5"]
    assert main(["--model", str(tmp_path / "missing.keras"), "--dataset", "mnist", *base]) == 2
    assert "Model file not found" in capsys.readouterr().err
    assert main(["--model", str(model28), "--dataset", "mnist", "--protocol", "knn", *base]) == 2
    assert "Expected some of" in capsys.readouterr().err
    assert (
        main(["--model", str(model28), "--dataset", "omniglot", "--protocol", "nway", *base]) == 2
    )
    assert "pass --image-size 28" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--model", str(model28), "--dataset", "cifar"])


def test_module_entry_point(model28, data_dir, tmp_path):
    out = tmp_path / "cli.json"
    env = {**os.environ, "ONESHOT_DATA_DIR": str(data_dir)}
    cmd = [
        sys.executable,
        "-m",
        "oneshot.evaluate",
        "--model",
        str(model28),
        "--dataset",
        "mnist",
        "--protocol",
        "cmc",
        "--cmc-trials",
        "1",
        "--out",
        str(out),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["cmc"]["rank1"] > 0.1


def test_validation_alphabets_shifts_and_resized_mnist(model28, data_dir, tmp_path, capsys):
    """Tuning-time evaluation on held-out background alphabets (Lake's runs, from the
    evaluation set, are skipped), shift averaging, and MNIST resized to a model's input."""
    base = ["--model", str(model28), "--data-dir", str(data_dir), "--episodes", "20"]
    args = [*base, "--dataset", "omniglot", "--split", "background", "--image-size", "28",
            "--validation-alphabets", "6", "--shifts", "1", "--rotations", "5",
            "--protocol", "nway", "lake"]  # fmt: skip
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["test_shifts"], report["test_rotations"]) == (1, 5.0)
    assert report["split"] == "background (validation alphabets)"
    assert report["classes"] < 964 and "skipped" in report["lake"]
    assert main([*base, "--dataset", "mnist", "--validation-alphabets", "6"]) == 2
    assert "--split background" in capsys.readouterr().err
    assert main([*base, "--dataset", "omniglot", "--image-size", "28", "--shifts", "-1"]) == 2
    assert "--shifts" in capsys.readouterr().err
    assert main([*base, "--dataset", "omniglot", "--image-size", "28", "--rotations", "90"]) == 2
    assert "--rotations must be degrees in [0, 90)" in capsys.readouterr().err
    model35 = tmp_path / "m35.keras"
    save_tiny_model(model35, 35)
    mnist = ["--model", str(model35), "--data-dir", str(data_dir), "--dataset", "mnist",
             "--episodes", "20", "--protocol", "nway"]  # fmt: skip
    assert main(mnist) == 2
    assert "pass --image-size 35" in capsys.readouterr().err
    assert main([*mnist, "--image-size", "35"]) == 0
    assert json.loads(capsys.readouterr().out)["nway"][0]["protocol"]["n_way"] == 10


# --- a trained model carries its distance --------------------------------------------------------

TRAINED = {"l1": LpDistance(p=1), "cosine": CosineSimilarity()}


@pytest.fixture(scope="module")
def trained_paths(data_dir, tmp_path_factory):
    """Online models trained 3 steps on real MNIST 4 x 4 batches (tiny conv4 without L2
    normalisation, so L1, cosine and Euclidean rank pairs differently), saved."""
    train = load_mnist("train", data_dir=data_dir)
    paths = {}
    for name, distance in TRAINED.items():
        keras.utils.set_random_seed(0)
        net = conv4((28, 28, 1), embedding_dim=8, width=8, l2_normalize=False)
        model = build_online(net, TripletMarginLoss(distance=distance, miner=BatchHardMiner()))
        model.fit(pk_dataset(train.images, train.labels, p=4, k=4, seed=0), steps_per_epoch=3,
                  epochs=1, shuffle=False, verbose=0)  # fmt: skip
        paths[name] = tmp_path_factory.mktemp(name) / "model.keras"
        model.save(paths[name])
    return paths


def verification_report(capsys, path, data_dir, *extra: str) -> dict:
    args = ["--model", str(path), "--data-dir", str(data_dir), "--dataset", "mnist",
            "--protocol", "verification", *extra]  # fmt: skip
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("name", TRAINED)
def test_evaluate_reads_the_trained_distance(name, trained_paths, data_dir, capsys):
    """The report records the trained distance and its numbers are those of ``--distance`` set
    to it explicitly, not the Euclidean ones."""
    own = verification_report(capsys, trained_paths[name], data_dir)
    assert own["distance"] == name and own["learned_metric"] is False
    explicit = verification_report(capsys, trained_paths[name], data_dir, "--distance", name)
    euclidean = verification_report(
        capsys, trained_paths[name], data_dir, "--distance", "euclidean"
    )
    assert euclidean["distance"] == "euclidean"
    assert own["verification"] == explicit["verification"]
    auc = own["verification"]["balanced"]["auc"]
    assert 0.5 < auc <= 1.0 and auc != euclidean["verification"]["balanced"]["auc"]


def test_module_entry_point_records_the_trained_distance(trained_paths, data_dir, tmp_path):
    """``python -m oneshot.evaluate`` in a fresh process loads the model and its distance."""
    out = tmp_path / "cosine.json"
    env = {**os.environ, "ONESHOT_DATA_DIR": str(data_dir)}
    cmd = [sys.executable, "-m", "oneshot.evaluate", "--model", str(trained_paths["cosine"]),
           "--dataset", "mnist", "--protocol", "cmc", "--cmc-trials", "1", "--out", str(out)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["distance"] == "cosine"


def test_bare_model_needs_distance(data_dir, tmp_path, capsys):
    """A model recording no distance is refused with a pointer to --distance, then evaluated
    with the one given."""
    path = tmp_path / "bare.keras"
    save_tiny_model(path, 28, distance=None)
    base = ["--model", str(path), "--data-dir", str(data_dir), "--dataset", "mnist",
            "--protocol", "nway", "--episodes", "20"]  # fmt: skip
    assert main(base) == 2
    assert "pass --distance" in capsys.readouterr().err
    assert main([*base, "--distance", "l1"]) == 0
    assert json.loads(capsys.readouterr().out)["distance"] == "l1"
    assert main([*base, "--distance", "l3"]) == 2
    assert "Received: distance='l3'" in capsys.readouterr().err
