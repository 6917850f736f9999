"""keras.applications backbones: build and embed, input preprocessing per family, grey input,
sizes and names refused clearly, weights (local files, offline ImageNet), freezing, saving,
one fit step on real RGB data and the run config that names them.

Fast: 32x32 inputs, weights=None, the small MobileNetV3Small wherever the model does not matter.
"""

from __future__ import annotations

import json
import re
import socket

import h5py
import keras
import numpy as np
import pytest

from oneshot.cli.common import UsageError
from oneshot.data.samplers import pk_dataset
from oneshot.evaluation.scoring import Scorer
from oneshot.losses import TripletMarginLoss
from oneshot.miners import BatchHardMiner
from oneshot.models import build_online, saveable_model
from oneshot.models.backbones import (
    FAMILY_MODES,
    ImageNetPreprocessing,
    WeightsUnavailableError,
    applications,
    build_backbone,
    family,
    keras_app,
    preprocessing_mode,
    set_backbone_trainable,
)
from oneshot.models.networks import build_network
from oneshot.models.saving import load_model

REQUIRED = ("MobileNetV3Small", "EfficientNetB0", "ResNet50")
SIZE = 32


def tinted(grey: np.ndarray) -> np.ndarray:
    """uint8 grey (N, H, W) -> uint8 RGB (N, H, W, 3) whose channels differ: (g, 0.6 g, 0.3 g)."""
    scale = np.array([1.0, 0.6, 0.3], np.float32)
    return np.rint(grey[..., None].astype(np.float32) * scale).astype(np.uint8)


@pytest.fixture(scope="module")
def rgb_mnist(data_dir):
    """Real MNIST test digits of 8 classes, padded to 32x32 and tinted: (N, 32, 32, 3) uint8."""
    with np.load(data_dir / "mnist" / "mnist.npz") as npz:
        images, labels = npz["x_test"][:400], npz["y_test"][:400].astype(np.int32)
    keep = labels < 8
    images = np.pad(images[keep], ((0, 0), (2, 2), (2, 2)))
    return tinted(images), labels[keep]


def seen_by_backbone(net: keras.Model, x: np.ndarray) -> np.ndarray:
    """The tensor the nested backbone receives for images ``x`` (the output of the layer just
    before it: the network is a chain)."""
    names = [layer.name for layer in net.layers]
    before = net.layers[names.index("backbone") - 1]
    assert before.name == "preprocess"
    return np.asarray(keras.Model(net.input, before.output)(x))


def one_eager_step(model: keras.Model, images: np.ndarray, labels: np.ndarray) -> float:
    """One fit step on a 4 x 4 batch, eagerly: tracing a backbone's training step takes
    minutes on a busy 2-core machine, one eager step seconds."""
    model.run_eagerly = True
    data = pk_dataset(images, labels, p=4, k=4, seed=0)
    history = model.fit(data, steps_per_epoch=1, shuffle=False, verbose=0)
    return history.history["loss"][0]


@pytest.mark.parametrize("application", REQUIRED)
def test_required_backbones_build_embed_unit_norm_and_see_their_preprocessing(
    application, rgb_mnist
):
    x = rgb_mnist[0][:12].astype(np.float32) / 255.0
    net = keras_app(application, (SIZE, SIZE, 3), embedding_dim=16)
    assert net.name == "embedding"
    assert [layer.name for layer in net.layers][-4:] == [
        "pool", "projection", "projection_bn", "l2_normalize"
    ]  # fmt: skip
    emb = np.asarray(net(x, training=False))
    assert emb.shape == (12, 16) and np.all(np.isfinite(emb))
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert np.min(np.std(emb, axis=0)) > 0  # different digits, different embeddings
    # the backbone gets exactly what keras.applications.<family>.preprocess_input(0-255) gives
    module = getattr(keras.applications, family(application))
    expected = np.asarray(module.preprocess_input(255.0 * x))
    np.testing.assert_allclose(seen_by_backbone(net, x), expected, rtol=1e-5, atol=1e-3)
    if application != "ResNet50":  # MobileNetV3 / EfficientNet rescale 0-255 themselves
        inner = net.get_layer("backbone").layers[1]
        assert isinstance(inner, keras.layers.Rescaling)


@pytest.mark.parametrize("family_name", sorted(FAMILY_MODES))
def test_preprocessing_layer_matches_keras_preprocess_input_for_every_family(family_name):
    """Channels differ (the caffe mode must swap RGB -> BGR); values cover [0, 1]."""
    rng = np.random.default_rng(0)
    x = rng.random((2, 5, 7, 3)).astype(np.float32) * np.array([1.0, 0.5, 0.2], np.float32)
    x[0, 0, 0] = (0.0, 1.0, 0.5)
    layer = ImageNetPreprocessing(FAMILY_MODES[family_name])
    expected = getattr(keras.applications, family_name).preprocess_input(255.0 * x.copy())
    np.testing.assert_allclose(np.asarray(layer(x)), np.asarray(expected), rtol=1e-5, atol=1e-4)


def test_every_keras_application_has_a_known_family():
    names = applications()
    assert set(REQUIRED) <= set(names) and len(names) >= 30
    modes = {name: preprocessing_mode(name) for name in names}
    assert modes["ResNet50"] == "caffe" and modes["ResNet50V2"] == "tf"
    assert modes["DenseNet121"] == "torch" and modes["EfficientNetB0"] == "pixels"


def test_grey_input_is_repeated_into_the_three_channels(rgb_mnist):
    grey = rgb_mnist[0][:4, ..., 0].astype(np.float32)[..., None] / 255.0
    net = keras_app("ResNet50", (SIZE, SIZE, 1), embedding_dim=8)
    assert net.input_shape == (None, SIZE, SIZE, 1)
    rgb = np.repeat(grey, 3, axis=-1)
    expected = keras.applications.resnet.preprocess_input(255.0 * rgb)
    np.testing.assert_allclose(seen_by_backbone(net, grey), expected, rtol=1e-5, atol=1e-3)
    assert np.asarray(net(grey)).shape == (4, 8)
    with pytest.raises(ValueError, match=r"channels 3\) or grey ones"):
        keras_app("ResNet50", (SIZE, SIZE, 2))


def test_small_images_are_refused_naming_the_model_and_its_minimum():
    with pytest.raises(ValueError, match=r"ResNet50 needs images of at least 32x32.*\(28, 28, 1\)"):
        keras_app("ResNet50", (28, 28, 1))
    with pytest.raises(ValueError, match="Xception needs images of at least 71x71"):
        keras_app("Xception", (64, 64, 3))
    with pytest.raises(ValueError, match="InceptionV3 needs images of at least 75x75"):
        build_network("keras_app", (74, 80, 3), 8, application="InceptionV3")


def test_unknown_application_lists_the_valid_names():
    with pytest.raises(ValueError, match=r"application='ResNet51'") as info:
        keras_app("ResNet51", (SIZE, SIZE, 3))
    for name in REQUIRED:
        assert f"'{name}'" in str(info.value)
    with pytest.raises(ValueError, match=r"one of \(.*'Xception'\)"):
        build_backbone("resnet50", (SIZE, SIZE, 3))
    with pytest.raises(ValueError, match="keras_app"):
        build_network("resnet50", (SIZE, SIZE, 3), 8)


def test_bad_weights_arguments_are_refused_clearly(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        keras_app("MobileNetV3Small", (SIZE, SIZE, 3), weights=tmp_path / "missing.weights.h5")
    with pytest.raises(ValueError, match="not a .h5 file"):
        keras_app("MobileNetV3Small", (SIZE, SIZE, 3), weights="resnet50.pth")
    with pytest.raises(ValueError, match="Expected None, 'imagenet'"):
        keras_app("MobileNetV3Small", (SIZE, SIZE, 3), weights=3)
    wrong = tmp_path / "wrong.h5"
    wrong.write_text("not weights")
    with pytest.raises(ValueError, match="does not hold the weights of a MobileNetV3Small"):
        keras_app("MobileNetV3Small", (SIZE, SIZE, 3), weights=wrong)


@pytest.mark.filterwarnings("ignore:`input_shape` is undefined:UserWarning")
def test_offline_imagenet_says_to_pass_a_local_file(tmp_path, monkeypatch):
    """An empty Keras cache and no network (every connection refused in this test, so the
    result does not depend on this machine having internet)."""
    import keras.src.backend.config as keras_config

    def no_network(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(WeightsUnavailableError) as info:
        keras_app("MobileNetV3Small", (SIZE, SIZE, 3), weights="imagenet")
    message = str(info.value)
    assert isinstance(info.value, UsageError)  # the command lines print it as one line
    assert "Could not download the ImageNet weights of MobileNetV3Small" in message
    assert "offline" in message and "pass its local path" in message
    # the file to fetch, by name: Keras's weights of the model without its top
    assert re.search(r"weights='/path/to/[^'/]*no_?top[^'/]*\.h5'", message), message
    assert str(tmp_path / "models") in message
    assert not any((tmp_path / "models").iterdir())  # no partial download left


def test_weights_from_a_local_keras_3_file(tmp_path):
    source = build_backbone("MobileNetV3Small", (SIZE, SIZE, 3))
    for variable in source.weights:  # away from the initialisation a new build would draw
        variable.assign(np.random.default_rng(0).normal(size=variable.shape) * 0.1)
    path = tmp_path / "mobilenet.weights.h5"
    source.save_weights(path)
    net = keras_app("MobileNetV3Small", (SIZE, SIZE, 3), 8, weights=str(path))
    loaded = net.get_layer("backbone").get_weights()
    assert len(loaded) == len(source.get_weights())
    for got, want in zip(loaded, source.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.slow  # builds EfficientNetB0 three times
def test_local_efficientnet_imagenet_file_builds_what_keras_builds_for_imagenet(
    tmp_path, monkeypatch
):
    """Keras adds a Rescaling after EfficientNet's Normalization only for weights="imagenet";
    the same weights from a local file (the *_notop.h5 format: legacy HDF5) must get it too.
    Reference: Keras's own weights="imagenet" build, its download replaced by the local file."""
    from keras.src.applications import efficientnet
    from keras.src.legacy.saving import legacy_h5_format

    source = keras.applications.EfficientNetB0(
        include_top=False, weights=None, input_shape=(SIZE, SIZE, 3)
    )
    norm = next(x for x in source.layers if isinstance(x, keras.layers.Normalization))
    mean, variance = [0.485, 0.456, 0.406], [0.229**2, 0.224**2, 0.225**2]
    norm.set_weights([np.array(mean), np.array(variance), *norm.get_weights()[2:]])
    path = tmp_path / "efficientnetb0_notop.h5"
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, source)
    ours = build_backbone("EfficientNetB0", (SIZE, SIZE, 3), weights=path)
    monkeypatch.setattr(efficientnet.file_utils, "get_file", lambda *a, **k: str(path))
    reference = keras.applications.EfficientNetB0(
        include_top=False, weights="imagenet", input_shape=(SIZE, SIZE, 3)
    )
    x = 255.0 * np.random.default_rng(0).random((2, SIZE, SIZE, 3)).astype(np.float32)

    def stem(model: keras.Model) -> np.ndarray:  # the first activations, before the blocks
        return np.asarray(keras.Model(model.input, model.get_layer("stem_activation").output)(x))

    want = stem(reference)
    assert np.abs(want).max() > 0.1
    np.testing.assert_allclose(stem(ours), want, rtol=1e-4, atol=1e-5)
    assert not np.allclose(stem(source), want, rtol=0.1)  # the rescaling matters
    want = np.asarray(reference(x))
    np.testing.assert_allclose(np.asarray(ours(x)), want, atol=1e-4 * np.abs(want).max())


def test_frozen_backbone_trains_only_the_projection_until_unfrozen(rgb_mnist):
    images, labels = rgb_mnist
    net = keras_app("MobileNetV3Small", (SIZE, SIZE, 3), 8, trainable_backbone=False)
    model = build_online(net, loss=TripletMarginLoss(miner=BatchHardMiner()))
    backbone = net.get_layer("backbone")
    before = [w.copy() for w in backbone.get_weights()]
    projection = net.get_layer("projection").get_weights()[0].copy()
    one_eager_step(model, images, labels)
    for got, want in zip(backbone.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, want)  # BatchNorm statistics included
    assert not np.allclose(net.get_layer("projection").get_weights()[0], projection)
    assert set_backbone_trainable(model) is backbone and backbone.trainable
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=model.loss)
    one_eager_step(model, images, labels)
    changed = [
        not np.array_equal(a, b) for a, b in zip(backbone.get_weights(), before, strict=True)
    ]
    assert sum(changed) > len(changed) // 2


def test_fit_save_load_and_score_rgb(rgb_mnist, tmp_path):
    """One fit step on real RGB digits; the saved model loads with oneshot.load_model and
    embeds RGB images as the trained one did (and refuses grey ones with advice)."""
    images, labels = rgb_mnist
    net = keras_app("MobileNetV3Small", (SIZE, SIZE, 3), 16)
    model = build_online(net, loss=TripletMarginLoss(miner=BatchHardMiner()))
    assert np.isfinite(one_eager_step(model, images, labels))
    path = tmp_path / "model.keras"
    saveable_model(model).save(path)
    loaded = load_model(path)
    assert loaded.get_layer("embedding").get_layer("preprocess").mode == "pixels"
    want = Scorer.from_model(model).embed(images[:20])
    got = Scorer.from_model(loaded).embed(images[:20])
    assert got.shape == (20, 16)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="give them 3 channels"):
        Scorer.from_model(loaded).embed(images[:2, ..., 0])


def test_run_config_names_the_backbone_and_round_trips_through_json():
    from oneshot.experiments import OnlineRun, RunConfig
    from oneshot.training.setup import build_model

    config = OnlineRun(
        name="backbone",
        dataset="omniglot",
        image_size=SIZE,
        network="keras_app",
        embedding_dim=16,
        network_kwargs={
            "application": "MobileNetV3Small",
            "weights": None,
            "trainable_backbone": False,
        },
        loss=TripletMarginLoss(miner=BatchHardMiner()),
    )
    again = RunConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.network_kwargs == config.network_kwargs
    net = build_model(again).get_layer("embedding")
    assert net.input_shape == (None, SIZE, SIZE, 1)  # grey Omniglot, repeated into RGB
    assert net.get_layer("to_rgb") is not None and not net.get_layer("backbone").trainable
    assert net.output_shape == (None, 16)
