"""Real-data loaders: counts, layout, pixel semantics, decoded cache, every error path."""

from __future__ import annotations

import hashlib
import io
import shutil
import sys
import time
import types
import zipfile

import numpy as np
import pytest
from PIL import Image

from oneshot.data import (
    DATASETS,
    SPLITS,
    DataError,
    LabelledImages,
    OmniglotSet,
    datasets,
    decode,
    load_dataset,
    load_lake_runs,
    load_mnist,
    load_omniglot,
    sources,
)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """A fresh decoded cache for this module (the user's ~/.cache is never touched)."""
    path = tmp_path_factory.mktemp("decoded")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(sources.ENV_CACHE_DIR, str(path))
        yield path


@pytest.fixture(scope="module")
def background(data_dir, cache_dir) -> OmniglotSet:
    return load_omniglot("background", data_dir=data_dir)


@pytest.fixture(scope="module")
def evaluation(data_dir, cache_dir) -> tuple[OmniglotSet, float]:
    """The evaluation set and how long its first (decoding) load took."""
    start = time.perf_counter()
    data = load_omniglot("evaluation", data_dir=data_dir)
    return data, time.perf_counter() - start


@pytest.fixture(scope="module")
def runs(data_dir, cache_dir):
    return load_lake_runs(data_dir=data_dir)


# ----------------------------------------------------------------------------- MNIST


@pytest.mark.parametrize("split, count", [("train", 60_000), ("test", 10_000)])
def test_mnist_counts_shapes_dtypes(data_dir, split, count):
    data = load_mnist(split, data_dir=data_dir)
    assert isinstance(data, LabelledImages) and len(data) == count
    assert data.images.shape == (count, 28, 28) and data.images.dtype == np.uint8
    assert data.labels.shape == (count,) and data.labels.dtype == np.int32
    assert set(np.unique(data.labels).tolist()) == set(range(10))
    assert data.images.max() == 255 and np.mean(data.images == 0) > 0.7  # bright digit, dark paper


def test_mnist_from_env_var_equals_explicit(data_dir, monkeypatch):
    monkeypatch.setenv(sources.ENV_DATA_DIR, str(data_dir))
    via_env = load_mnist("test")
    explicit = load_mnist("test", data_dir=data_dir)
    np.testing.assert_array_equal(via_env.images, explicit.images)
    np.testing.assert_array_equal(via_env.labels, explicit.labels)


# ----------------------------------------------------------------------------- Omniglot


@pytest.mark.parametrize(
    "name, images, characters, alphabets",
    [("background", 19_280, 964, 30), ("evaluation", 13_180, 659, 20)],
)
def test_omniglot_counts(background, evaluation, name, images, characters, alphabets):
    data = background if name == "background" else evaluation[0]
    assert len(data) == images and data.images.shape == (images, 105, 105)
    assert data.images.dtype == np.uint8
    for array in (data.labels, data.alphabets, data.drawers):
        assert array.dtype == np.int32 and array.shape == (images,)
    assert len(data.character_names) == characters and len(data.alphabet_names) == alphabets
    assert np.bincount(data.labels, minlength=characters).tolist() == [20] * characters
    # Labels ordered by (alphabet, character folder); alphabets agree with character names.
    assert data.character_names == sorted(data.character_names)
    assert np.all(np.diff(data.labels) >= 0)
    prefixes = np.array([c.split("/")[0] for c in data.character_names])
    np.testing.assert_array_equal(
        prefixes[data.labels], np.array(data.alphabet_names)[data.alphabets]
    )
    assert sorted(data.drawers[data.labels == 0].tolist()) == list(range(1, 21))


def test_omniglot_labels_match_zip_paths(evaluation, data_dir):
    """Decode a few zip members independently: label, drawer and pixels must all agree."""
    data = evaluation[0]
    with zipfile.ZipFile(data_dir / "omniglot" / "images_evaluation.zip") as archive:
        members = [n for n in archive.namelist() if n.endswith(".png")]
        for name in np.random.default_rng(0).choice(members, 8, replace=False):
            _, alphabet, character, filename = name.split("/")
            label = data.character_names.index(f"{alphabet}/{character}")
            drawer = int(filename[:-4].split("_")[1])
            (index,) = np.flatnonzero((data.labels == label) & (data.drawers == drawer))
            paper = np.asarray(Image.open(io.BytesIO(archive.read(name))).convert("L"))
            np.testing.assert_array_equal(data.images[index], 255 - paper)
            assert data.alphabet_names[data.alphabets[index]] == alphabet


def test_invert_semantics(data_dir, evaluation):
    bright = evaluation[0].images
    assert set(np.unique(bright[:200]).tolist()) == {0, 255}
    assert np.mean(bright == 0) > 0.85  # strokes are thin: mostly dark background
    raw = load_omniglot("evaluation", invert=False, data_dir=data_dir).images
    np.testing.assert_array_equal(raw, 255 - bright)  # raw PNGs: dark strokes on white


def test_resize_is_area_average(data_dir, evaluation):
    """105 -> 35 is an exact 3x3 block mean; 105 -> 28 the exact fractional-area average."""
    full = evaluation[0].images
    small = load_omniglot("evaluation", image_size=35, data_dir=data_dir).images
    assert small.shape == (13_180, 35, 35) and small.dtype == np.uint8
    blocks = full[:50].reshape(50, 35, 3, 35, 3).astype(np.float64).mean(axis=(2, 4))
    np.testing.assert_array_equal(small[:50], np.rint(blocks))
    resized = load_omniglot("evaluation", image_size=28, data_dir=data_dir).images
    assert resized.shape == (13_180, 28, 28) and len(np.unique(resized[:50])) > 2  # grey levels
    for i in range(0, 13_180, 2_636):  # exact area: split each pixel in 28x28, average 105x105
        fine = np.repeat(np.repeat(full[i].astype(np.float64), 28, axis=0), 28, axis=1)
        area = fine.reshape(28, 105, 28, 105).mean(axis=(1, 3))
        assert np.abs(resized[i] - area).max() <= 0.5 + 1e-3


def test_decoded_cache_is_used_and_equal(data_dir, evaluation, cache_dir, monkeypatch):
    """The second load reads the decoded cache: no PNG is decoded again."""

    first, _ = evaluation

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded the zip again instead of reading the cache")

    monkeypatch.setattr(datasets, "decode_omniglot_archive", no_decoding)
    again = load_omniglot("evaluation", data_dir=data_dir)
    for field in ("images", "labels", "alphabets", "drawers"):
        np.testing.assert_array_equal(getattr(again, field), getattr(first, field))
    assert again.character_names == first.character_names
    names = sorted(p.name for p in cache_dir.iterdir())
    assert any(n.startswith("omniglot_evaluation-c3d25494472d8c76-105-v") for n in names), names
    # Resized arrays are cached under their own key and come back identical.
    small = load_omniglot("evaluation", image_size=20, invert=False, data_dir=data_dir).images
    assert any("-20-raw-v" in p.name for p in cache_dir.iterdir())
    cached = load_omniglot("evaluation", image_size=20, invert=False, data_dir=data_dir).images
    np.testing.assert_array_equal(cached, small)


# ----------------------------------------------------------------------------- Lake runs


def test_lake_runs_layout(runs):
    assert [r.name for r in runs] == [f"run{i:02d}" for i in range(1, 21)]
    for run in runs:
        assert run.training_images.shape == run.test_images.shape == (20, 105, 105)
        assert run.training_images.dtype == run.test_images.dtype == np.uint8
        assert run.answers.dtype == np.int32 and sorted(run.answers.tolist()) == list(range(20))
        assert np.mean(run.test_images == 0) > 0.85  # inverted: bright strokes
    # run01/class_labels.txt starts "run01/test/item01.png run01/training/class08.png",
    # then item02 -> class09, item03 -> class02.
    assert runs[0].answers[:3].tolist() == [7, 8, 1]


def test_lake_runs_come_from_evaluation_set_and_answers_are_right(runs, evaluation):
    """All 800 run images are evaluation drawings; each answer is the test image's character."""
    data = evaluation[0]
    label_of = {
        image.tobytes(): label for image, label in zip(data.images, data.labels, strict=True)
    }
    for run in runs:
        test = [label_of[image.tobytes()] for image in run.test_images]
        training = [label_of[image.tobytes()] for image in run.training_images]
        assert test == [training[a] for a in run.answers], run.name
        assert len({data.alphabets[data.labels == t][0] for t in test}) == 1  # within-alphabet


@pytest.mark.parametrize("size", [28, 52])
def test_lake_runs_resized(data_dir, cache_dir, runs, size):
    resized = load_lake_runs(image_size=size, data_dir=data_dir)
    assert resized[3].test_images.shape == (20, size, size)
    np.testing.assert_array_equal(resized[3].answers, runs[3].answers)
    raw = load_lake_runs(image_size=size, invert=False, data_dir=data_dir)
    assert np.abs(raw[3].test_images.astype(int) + resized[3].test_images - 255).max() <= 1


# ----------------------------------------------------------------------------- dispatch, errors


def test_load_dataset_dispatches(data_dir):
    assert DATASETS == ("mnist", "omniglot")
    assert SPLITS["omniglot"] == ("background", "evaluation")
    data = load_dataset("mnist", "test", data_dir=data_dir)
    assert data.images.shape == (10_000, 28, 28)


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: load_dataset("cifar", "train"),
            "argument `dataset`. Expected one of ('mnist', 'omniglot'). Received: dataset='cifar'",
        ),
        (lambda: load_dataset("mnist", "background"), "Received: split='background'"),
        (lambda: load_dataset("omniglot", "train"), "('background', 'evaluation')"),
        (lambda: load_mnist("validation"), "Received: split='validation'"),
        (lambda: load_omniglot(image_size=0), "Received: image_size=0"),
        (lambda: load_omniglot(image_size=True), "Received: image_size=True"),
        (lambda: load_omniglot(image_size=2.5), "Received: image_size=2.5"),
        (lambda: load_omniglot(invert="yes"), "Received: invert='yes'"),
        (lambda: load_lake_runs(image_size=-3), "Received: image_size=-3"),
        (lambda: load_mnist(source="internet"), "Expected one of ('files', 'tfds')"),
        (lambda: load_omniglot("train", source="tfds"), "Received: split='train'"),
    ],
)
def test_bad_arguments_raise_value_error(call, message):
    with pytest.raises(ValueError, match="Invalid value for argument") as info:
        call()
    assert message in str(info.value)


def test_missing_file_in_data_dir(tmp_path):
    with pytest.raises(DataError) as info:
        load_omniglot("evaluation", data_dir=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "omniglot" / "images_evaluation.zip") in message
    assert "mnist/mnist.npz" in message and "omniglot/all_runs.zip" in message  # the layout


def test_missing_file_in_env_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(sources.ENV_DATA_DIR, str(tmp_path))
    with pytest.raises(DataError, match="ONESHOT_DATA_DIR"):
        load_mnist()


def test_corrupt_archive_names_file_and_both_hashes(data_dir, tmp_path):
    target = tmp_path / "omniglot" / "all_runs.zip"
    target.parent.mkdir()
    payload = bytearray((data_dir / "omniglot" / "all_runs.zip").read_bytes())
    payload[1000:1010] = bytes(255 - b for b in payload[1000:1010])
    target.write_bytes(bytes(payload))
    with pytest.raises(DataError) as info:
        load_lake_runs(data_dir=tmp_path)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert str(target) in message
    assert "437c1eeab0af8484112e1b4cc0f3d541ec727f7c47b9b202da738af9dfd6c325" in message  # shared
    assert "e8996daecdf12afeeb4a53a179f06b19" in message  # official md5
    assert hashlib.sha256(payload).hexdigest() in message  # actual
    assert "delete" in message and "ONESHOT_DATA_DIR" in message


@pytest.fixture
def no_local_data(tmp_path, monkeypatch):
    """No data folder configured: loaders fall back to an empty Keras cache in tmp."""
    monkeypatch.delenv(sources.ENV_DATA_DIR, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return tmp_path / "keras" / "datasets" / "oneshot"


def test_no_data_and_no_network(no_local_data, monkeypatch):
    calls = []

    def offline(url, target):
        calls.append((url, target))
        raise OSError("[Errno 101] Network is unreachable")

    monkeypatch.setattr(sources, "download", offline)
    with pytest.raises(DataError) as info:
        load_omniglot("background")
    assert calls == [
        (
            sources.FILES["omniglot_background"].url,
            no_local_data / "omniglot" / "images_background.zip",
        )
    ]
    message = str(info.value)
    assert "Network is unreachable" in message and "ONESHOT_DATA_DIR" in message
    assert "--data-dir" in message


def test_download_goes_to_keras_cache_and_is_verified(no_local_data, data_dir, monkeypatch):
    def fetch_copy(url, target):  # an online machine: the "download" brings the real file
        assert url == "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
        shutil.copy(data_dir / "mnist" / "mnist.npz", target)
        return target

    monkeypatch.setattr(sources, "download", fetch_copy)
    assert len(load_mnist("test")) == 10_000
    assert (no_local_data / "mnist" / "mnist.npz").is_file()

    def fetch_garbage(url, target):
        target.write_bytes(b"<html>captive portal</html>")
        return target

    monkeypatch.setattr(sources, "download", fetch_garbage)
    with pytest.raises(DataError, match="Checksum mismatch"):
        load_lake_runs()


# ----------------------------------------------------------------------------- tfds routing


def _fake_tfds(calls, arrays):
    """A stand-in ``tensorflow_datasets`` module recording what ``load`` was asked for."""

    def load(name, split, batch_size, with_info):
        calls.append((name, split, batch_size, with_info))
        names = arrays.pop("_alphabet_names", [])
        info = types.SimpleNamespace(features={"alphabet": types.SimpleNamespace(names=names)})
        return arrays, info

    return types.SimpleNamespace(load=load, as_numpy=lambda data: data)


def test_tfds_mnist_is_routed(data_dir, monkeypatch):
    real = load_mnist("test", data_dir=data_dir)
    calls = []
    tfds = _fake_tfds(
        calls, {"image": real.images[..., None], "label": real.labels.astype(np.int64)}
    )
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", tfds)
    routed = load_mnist("test", source="tfds")
    assert calls == [("mnist", "test", -1, True)]
    np.testing.assert_array_equal(routed.images, real.images)
    assert routed.labels.dtype == np.int32


def test_tfds_omniglot_is_routed_and_reordered(evaluation, background, monkeypatch):
    """tfds's layout (RGB dark strokes, global alphabet ids, any order) -> the files' layout."""
    data = evaluation[0]
    keep = np.flatnonzero(data.labels < 3)  # Angelic/character01..03, 60 drawings
    shuffled = np.concatenate([keep[data.labels[keep] == c] for c in (2, 0, 1)])
    all_alphabets = sorted(set(background.alphabet_names) | set(data.alphabet_names))
    names = [data.character_names[label] for label in data.labels[shuffled]]
    arrays = {
        "image": np.repeat((255 - data.images[shuffled])[..., None], 3, axis=-1),
        "alphabet": np.array([all_alphabets.index(n.split("/")[0]) for n in names]),
        "alphabet_char_id": np.array([int(n[-2:]) - 1 for n in names]),
        "_alphabet_names": all_alphabets,
    }
    calls = []
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", _fake_tfds(calls, arrays))
    routed = load_omniglot("evaluation", image_size=28, source="tfds")
    assert calls == [("omniglot", "test", -1, True)]
    assert routed.character_names == data.character_names[:3]
    assert routed.alphabet_names == [data.alphabet_names[0]]
    np.testing.assert_array_equal(routed.labels, data.labels[keep])
    np.testing.assert_array_equal(routed.images, decode.resize_area(data.images[keep], 28))
    assert (routed.drawers == -1).all()


def test_mnist_resized_for_an_omniglot_network(data_dir):
    from oneshot.data import load_mnist

    small = load_mnist("test", data_dir=data_dir)
    large = load_mnist("test", data_dir=data_dir, image_size=35)
    assert large.images.shape == (10000, 35, 35) and large.images.dtype == np.uint8
    assert np.array_equal(large.labels, small.labels)
    # area resizing keeps the ink: mean brightness within 1 grey level
    assert abs(float(large.images.mean()) - float(small.images.mean())) < 1.0
    with pytest.raises(ValueError, match="image_size"):
        load_mnist("test", data_dir=data_dir, image_size=0)
