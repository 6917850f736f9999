"""Embedding and metric networks: published parameter counts, names, normalisation, saving."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from oneshot.models.networks import (
    NETWORKS,
    build_network,
    conv4,
    eric_mnist,
    eric_omniglot,
    grey_to_rgb,
    koch,
    metric_network,
)


def test_eric_mnist_valid_has_the_published_4688522_parameters():
    net = eric_mnist()
    assert net.count_params() == 4_688_522
    assert net.name == "embedding"
    assert net.output_shape == (None, 10)


def test_eric_mnist_same_padding_has_51_9m_parameters():
    count = eric_mnist(padding="same").count_params()
    assert round(count / 1e6, 1) == 51.9
    assert count == 51_874_442  # 12,544 x 4,096 flattened Dense dominates


def test_eric_omniglot_has_89_3m_parameters():
    count = eric_omniglot().count_params()
    assert round(count / 1e6, 1) == 89.3
    assert count == 89_268_692


def test_koch_matches_the_paper_layer_sizes():
    net = koch()
    # 6x6x256 after the last conv, then Dense 4096: Koch's net has 38,951,745 parameters
    # including its final Dense(1) head (4,097) which lives in the siamese model, not here.
    assert net.get_layer("conv4").output.shape[1:] == (6, 6, 256)
    assert net.count_params() + 4_097 == 38_951_745


def test_conv4_is_small_and_normalised():
    net = conv4((28, 28, 1), embedding_dim=16, width=16)
    x = np.random.default_rng(0).random((5, 28, 28, 1), dtype=np.float32)
    out = np.asarray(net(x, training=False))
    assert out.shape == (5, 16)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    assert net.count_params() < 20_000
    # BatchNormalization sits right before the L2 normalisation.
    names = [layer.name for layer in net.layers]
    assert names[-2:] == ["projection_bn", "l2_normalize"]


def test_l2_normalisation_has_finite_gradient_at_zero():
    layer = eric_mnist().get_layer("l2_normalize")
    x = tf.zeros((2, 10))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(layer(x))
    grad = tape.gradient(y, x).numpy()
    assert np.all(np.isfinite(grad))


def test_metric_network_outputs_a_distance_in_unit_interval():
    net = metric_network(10)
    assert net.name == "metric"
    assert net.count_params() == 20 * 10 + 10 + 2 * (10 * 10 + 10) + 10 * 2 + 2
    out = np.asarray(net(np.random.default_rng(1).normal(size=(7, 20)).astype("float32")))
    assert out.shape == (7, 2)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    assert np.all((out[:, 0] >= 0) & (out[:, 0] <= 1))


def test_build_network_registry_and_errors():
    assert set(NETWORKS) == {"eric_mnist", "eric_omniglot", "koch", "conv4", "keras_app"}
    net = build_network("conv4", (16, 16, 1), 8, width=8)
    assert net.output_shape == (None, 8)
    with pytest.raises(ValueError, match="Expected one of.*Received: name='resnet'"):
        build_network("resnet", (28, 28, 1), 8)
    with pytest.raises(ValueError, match="padding"):
        eric_mnist(padding="causal")
    with pytest.raises(ValueError, match="input_shape"):
        conv4((8, 8, 1))
    with pytest.raises(ValueError, match="input_shape"):
        conv4((28, 28, 0))
    with pytest.raises(ValueError, match="input_shape"):
        conv4((28, 28))


def test_networks_round_trip_through_keras_files(tmp_path):
    rng = np.random.default_rng(2)
    for name, net, inp in [
        ("conv4", conv4((28, 28, 1), 8, width=8), rng.random((3, 28, 28, 1), dtype=np.float32)),
        ("koch", koch(embedding_dim=8), rng.random((3, 105, 105, 1), dtype=np.float32)),
        ("metric", metric_network(4), rng.normal(size=(3, 8)).astype(np.float32)),
    ]:
        path = tmp_path / f"{name}.keras"
        net.save(path)
        loaded = keras.models.load_model(path)
        np.testing.assert_allclose(
            loaded.predict(inp, verbose=0), net.predict(inp, verbose=0), rtol=1e-5
        )


@pytest.mark.parametrize(
    "build, shape",
    [
        (lambda s: conv4(s, 8, width=8), (28, 28, 3)),
        (lambda s: eric_mnist(s, 8), (28, 28, 3)),
        (lambda s: eric_omniglot(s, 8), (28, 28, 3)),
        (lambda s: koch(s, 8), (105, 105, 3)),
    ],
    ids=["conv4", "eric_mnist", "eric_omniglot", "koch"],
)
def test_every_network_takes_colour_images(build, shape):
    net = build(shape)
    assert net.input_shape == (None, *shape)
    assert net.layers[1].kernel.shape[2] == 3  # the first conv reads 3 channels
    rgb = np.random.default_rng(0).random((2, *shape), dtype=np.float32)
    out = net.predict(rgb, verbose=0)
    assert out.shape == (2, 8) and np.all(np.isfinite(out))
    # each channel counts: the embedding changes when one channel does
    rgb[..., 2] = 0
    assert not np.allclose(net.predict(rgb, verbose=0), out)


def test_grey_to_rgb_repeats_the_channel_into_a_colour_network():
    net = conv4((16, 16, 3), embedding_dim=4, width=4)
    grey = np.random.default_rng(0).random((3, 16, 16, 1)).astype("float32")
    wrapped = grey_to_rgb(net)
    assert wrapped.input_shape == (None, 16, 16, 1)
    want = net(np.repeat(grey, 3, axis=-1), training=False)
    np.testing.assert_allclose(wrapped(grey, training=False), want, atol=1e-6)
    assert wrapped.get_layer("embedding") is net  # shared, not copied
    with pytest.raises(ValueError, match=r"colour images.*\(16, 16, 1\)"):
        grey_to_rgb(conv4((16, 16, 1), embedding_dim=4, width=4))
