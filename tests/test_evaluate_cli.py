"""``python -m oneshot.evaluate`` end to end on real data with a tiny saved model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import pytest

from oneshot.evaluate import main


def save_tiny_model(path, size: int) -> None:
    """A model whose nested layer "embedding" maps (size, size, 1) images to 8-D vectors."""
    embedding = keras.Sequential(
        [
            keras.Input((size, size, 1)),
            keras.layers.AveragePooling2D(size // 7),
            keras.layers.Flatten(),
            keras.layers.Dense(8),
        ],
        name="embedding",
    )
    inp = keras.Input((size, size, 1))
    keras.Model(inp, embedding(inp)).save(path)


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
            "--validation-alphabets", "6", "--shifts", "1", "--protocol", "nway", "lake"]  # fmt: skip
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["split"] == "background (validation alphabets)"
    assert report["classes"] < 964 and "skipped" in report["lake"]
    assert main([*base, "--dataset", "mnist", "--validation-alphabets", "6"]) == 2
    assert "--split background" in capsys.readouterr().err
    assert main([*base, "--dataset", "omniglot", "--image-size", "28", "--shifts", "-1"]) == 2
    assert "--shifts" in capsys.readouterr().err
    model35 = tmp_path / "m35.keras"
    save_tiny_model(model35, 35)
    mnist = ["--model", str(model35), "--data-dir", str(data_dir), "--dataset", "mnist",
             "--episodes", "20", "--protocol", "nway"]  # fmt: skip
    assert main(mnist) == 2
    assert "pass --image-size 35" in capsys.readouterr().err
    assert main([*mnist, "--image-size", "35"]) == 0
    assert json.loads(capsys.readouterr().out)["nway"][0]["protocol"]["n_way"] == 10
