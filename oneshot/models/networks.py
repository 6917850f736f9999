"""Embedding networks (images -> vectors) and the learned metric network (two vectors -> distance).

Every builder returns a functional ``keras.Model`` named ``"embedding"`` (the name the model
builders and :meth:`oneshot.evaluation.scoring.Scorer.from_model` look for). Input: float32 images
(H, W, C) in [0, 1], as made by :func:`oneshot.data.preprocess.to_model_input`: C = 1 for grey
images (the default), 3 for colour, e.g. ``conv4(input_shape=(64, 64, 3))``.

- :func:`eric_mnist`, :func:`eric_omniglot`: the networks of Eric Craeymeersch's MNIST and
  Omniglot triplet/quadruplet experiments (see ``docs/reference.md``), exact parameter counts.
- :func:`koch`: the siamese convnet of Koch et al. (2015).
- :func:`conv4`: the compact default, fast on a CPU; our recommended network.
- ``"keras_app"``: any ``keras.applications`` model (MobileNetV3Small, EfficientNetB0,
  ResNet50, ...) as the backbone, ImageNet weights optional: :mod:`oneshot.models.backbones`.
- :func:`metric_network`: the quadruplet model's learned metric, named ``"metric"``.

``oneshot networks`` (``python -m oneshot.networks``) prints the parameter count of each network at its default size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
from keras import layers, regularizers

from oneshot.checks import check_choice
from oneshot.models.backbones import keras_app as build_keras_app
from oneshot.models.layers import (
    EMBEDDING_NAME,
    METRIC_NAME,
    check_input_shape,
    l2_normalize_layer,
)

_PADDINGS = ("valid", "same")


def _eric(
    input_shape: Sequence[int],
    embedding_dim: int,
    padding: str,
    l2_normalize: bool,
    convs: Sequence[tuple[int, int, bool]],
    dense_units: int,
) -> keras.Model:
    """Shared body of Eric's networks: convs (filters, kernel, pool-after), Dense, Dense, L2."""
    check_choice("padding", padding, _PADDINGS)
    conv_kw = dict(
        padding=padding,
        activation="relu",
        kernel_initializer="he_uniform",
        kernel_regularizer=regularizers.L2(2e-4),
    )
    dense_kw = dict(kernel_initializer="he_uniform", kernel_regularizer=regularizers.L2(1e-3))
    inputs = keras.Input(shape=check_input_shape(input_shape), name="image")
    x = inputs
    for i, (filters, kernel, pool) in enumerate(convs, start=1):
        x = layers.Conv2D(filters, kernel, name=f"conv{i}", **conv_kw)(x)
        if pool:
            x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(dense_units, activation="relu", name="dense", **dense_kw)(x)
    x = layers.Dense(embedding_dim, name="projection", **dense_kw)(x)
    if l2_normalize:
        x = l2_normalize_layer()(x)
    return keras.Model(inputs, x, name=EMBEDDING_NAME)


def eric_mnist(
    input_shape: Sequence[int] = (28, 28, 1),
    embedding_dim: int = 10,
    padding: str = "valid",
    l2_normalize: bool = True,
) -> keras.Model:
    """Eric's MNIST embedding network (experiment A with 'valid', B with 'same' padding).

    Conv 128@7x7, pool; Conv 128@3x3, pool; Conv 256@3x3; Dense 4096 ReLU; Dense (linear);
    L2-normalise. he_uniform, L2 weight decay 2e-4 (convs) and 1e-3 (dense).
    4,688,522 parameters with 'valid' padding, 51,874,442 with 'same' (28x28 -> 10).

    Args:
        input_shape: (H, W, C), C = 1 grey or 3 colour. Defaults to (28, 28, 1).
        embedding_dim: size of the embedding. Defaults to 10.
        padding: "valid" or "same". Defaults to "valid".
        l2_normalize: end with L2 normalisation. Defaults to True.

    Returns:
        A ``keras.Model`` named "embedding": (N, H, W, 1) -> (N, embedding_dim).
    """
    convs = [(128, 7, True), (128, 3, True), (256, 3, False)]
    return _eric(input_shape, embedding_dim, padding, l2_normalize, convs, 4096)


def eric_omniglot(
    input_shape: Sequence[int] = (105, 105, 1),
    embedding_dim: int = 20,
    padding: str = "same",
    l2_normalize: bool = True,
) -> keras.Model:
    """Eric's Omniglot embedding network (experiment C): 89,268,692 parameters at 105x105 -> 20.

    Conv 128@7x7, pool; Conv 128@5x5, pool; Conv 64@5x5; Dense 2048 ReLU; Dense (linear);
    L2-normalise; same initialisation and weight decay as :func:`eric_mnist`.

    Args:
        input_shape: (H, W, C), C = 1 grey or 3 colour. Defaults to (105, 105, 1).
        embedding_dim: size of the embedding. Defaults to 20.
        padding: "valid" or "same". Defaults to "same".
        l2_normalize: end with L2 normalisation. Defaults to True.

    Returns:
        A ``keras.Model`` named "embedding".
    """
    convs = [(128, 7, True), (128, 5, True), (64, 5, False)]
    return _eric(input_shape, embedding_dim, padding, l2_normalize, convs, 2048)


def koch(
    input_shape: Sequence[int] = (105, 105, 1),
    embedding_dim: int = 4096,
    l2_normalize: bool = False,
) -> keras.Model:
    """The siamese convnet of Koch et al. (2015), without its L1 + sigmoid head.

    Conv 64@10x10, pool; Conv 128@7x7, pool; Conv 128@4x4, pool; Conv 256@4x4 (ReLU, 'valid');
    Dense 4096 sigmoid. Pair it with ``build_siamese(..., head="l1_sigmoid")`` for the paper's
    weighted-L1 head. Paper: https://www.cs.cmu.edu/~rsalakhu/papers/oneshot1.pdf

    Args:
        input_shape: (H, W, C), C = 1 grey or 3 colour. Defaults to (105, 105, 1).
        embedding_dim: units of the final sigmoid layer. Defaults to 4096.
        l2_normalize: end with L2 normalisation. Defaults to False (as in the paper).

    Returns:
        A ``keras.Model`` named "embedding".
    """
    conv_kw = dict(activation="relu", kernel_regularizer=regularizers.L2(2e-4))
    inputs = keras.Input(shape=check_input_shape(input_shape), name="image")
    x = inputs
    for i, (filters, kernel) in enumerate([(64, 10), (128, 7), (128, 4)], start=1):
        x = layers.Conv2D(filters, kernel, name=f"conv{i}", **conv_kw)(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.Conv2D(256, 4, name="conv4", **conv_kw)(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(
        embedding_dim,
        activation="sigmoid",
        kernel_regularizer=regularizers.L2(1e-3),
        name="projection",
    )(x)
    if l2_normalize:
        x = l2_normalize_layer()(x)
    return keras.Model(inputs, x, name=EMBEDDING_NAME)


def conv4(
    input_shape: Sequence[int] = (28, 28, 1),
    embedding_dim: int = 64,
    width: int = 64,
    l2_normalize: bool = True,
    bn_momentum: float = 0.9,
) -> keras.Model:
    """Compact CPU default: 4 x [Conv3x3 'same' + BatchNorm + ReLU + MaxPool 2], Dense, BN, L2.

    The BatchNormalization between the projection and the L2 normalisation keeps the
    embedding spread out at the start of training; without it, normalised embeddings tend to
    collapse to one point early under batch-hard mining. ``bn_momentum`` 0.9 (Keras: 0.99)
    lets the moving statistics settle within the few hundred steps of a CPU run.

    Args:
        input_shape: (H, W, C), C = 1 grey or 3 colour; H and W of at least 16. Defaults
            to (28, 28, 1).
        embedding_dim: size of the embedding. Defaults to 64.
        width: filters of every conv block. Defaults to 64.
        l2_normalize: end with L2 normalisation. Defaults to True.
        bn_momentum: momentum of the BatchNormalization moving statistics. Defaults to 0.9.

    Returns:
        A ``keras.Model`` named "embedding".

    Example:
    >>> net = conv4((28, 28, 1), embedding_dim=32, width=32)
    >>> net.output_shape
    (None, 32)
    """
    shape = check_input_shape(input_shape)
    if min(shape[:2]) < 16:
        raise ValueError(
            "Invalid value for argument `input_shape`. conv4 pools 4 times, so it needs images "
            f"of at least 16x16. Received: input_shape={shape!r}"
        )
    inputs = keras.Input(shape=shape, name="image")
    x = inputs
    for i in range(1, 5):
        x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(momentum=bn_momentum, name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(embedding_dim, name="projection")(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name="projection_bn")(x)
    if l2_normalize:
        x = l2_normalize_layer()(x)
    return keras.Model(inputs, x, name=EMBEDDING_NAME)


def grey_to_rgb(embedding: keras.Model) -> keras.Model:
    """``embedding``, a network for colour (H, W, 3) images, taking grey (H, W, 1) ones whose
    channel it repeats into the three (the layers are shared, not copied).

    For evaluating a colour network on grey data (MNIST, Omniglot): a grey image repeated
    into RGB is the same picture, so nothing is guessed. ``keras_app`` networks built for
    grey input do the same inside.

    Returns:
        A ``keras.Model`` (N, H, W, 1) -> what ``embedding`` returns.
    """
    shape = tuple(embedding.input_shape[1:])
    if len(shape) != 3 or shape[2] != 3:
        raise ValueError(
            "Invalid value for argument `embedding`. Expected a network for colour images "
            f"(input shape (H, W, 3)). Received input shape {shape}."
        )
    grey = keras.Input(shape=(*shape[:2], 1), name="grey_image")
    rgb = layers.Concatenate(axis=-1, name="to_rgb")([grey, grey, grey])
    return keras.Model(grey, embedding(rgb), name=f"{embedding.name}_grey")


def metric_network(embedding_dim: int, hidden: Sequence[int] = (10, 10, 10)) -> keras.Model:
    """The learned metric of the quadruplet model (Eric's experiments B and C).

    Input: two embeddings concatenated, (N, 2 * embedding_dim). Dense layers ``hidden`` (ReLU,
    he_uniform, L2 1e-3), then Dense 2 softmax. Column 0 of the output is the distance g in
    [0, 1] (smaller means more alike). It is not symmetric: g(a, b) != g(b, a) in general.

    Args:
        embedding_dim: size of one embedding.
        hidden: units of the hidden layers. Defaults to (10, 10, 10).

    Returns:
        A ``keras.Model`` named "metric": (N, 2 * embedding_dim) -> (N, 2).
    """
    if int(embedding_dim) < 1:
        raise ValueError(
            "Invalid value for argument `embedding_dim`. Expected a positive int. "
            f"Received: embedding_dim={embedding_dim!r}"
        )
    kw = dict(
        activation="relu",
        kernel_initializer="he_uniform",
        kernel_regularizer=regularizers.L2(1e-3),
    )
    inputs = keras.Input(shape=(2 * int(embedding_dim),), name="embedding_pair")
    x = inputs
    for i, units in enumerate(hidden, start=1):
        x = layers.Dense(units, name=f"hidden{i}", **kw)(x)
    outputs = layers.Dense(2, activation="softmax", name="distance_softmax")(x)
    return keras.Model(inputs, outputs, name=METRIC_NAME)


def keras_app(input_shape: Sequence[int], embedding_dim: int, **kwargs) -> keras.Model:
    """Any ``keras.applications`` model as the embedding network: see
    :func:`oneshot.models.backbones.keras_app` (``application="ResNet50"``, ``weights=``, ...)."""
    return build_keras_app(input_shape=input_shape, embedding_dim=embedding_dim, **kwargs)


NETWORKS: dict[str, Callable[..., keras.Model]] = {
    "eric_mnist": eric_mnist,
    "eric_omniglot": eric_omniglot,
    "koch": koch,
    "conv4": conv4,
    "keras_app": keras_app,
}


def build_network(
    name: str, input_shape: Sequence[int], embedding_dim: int, **kwargs
) -> keras.Model:
    """Build the embedding network registered as ``name`` (see ``NETWORKS``).

    ``kwargs`` go to the builder: ``width=`` for conv4, ``application=`` and ``weights=`` for
    "keras_app" (:func:`oneshot.models.backbones.keras_app`).

    Example:
    >>> build_network("conv4", (28, 28, 1), 16, width=16).name
    'embedding'
    >>> build_network("keras_app", (32, 32, 3), 16, application="ResNet50").output_shape
    (None, 16)
    """
    if name not in NETWORKS:
        raise ValueError(
            f"Invalid value for argument `name`. Expected one of {tuple(NETWORKS)}. "
            f"Received: name={name!r}"
        )
    return NETWORKS[name](input_shape=input_shape, embedding_dim=embedding_dim, **kwargs)


def parameter_table() -> list[tuple[str, str, int]]:
    """(network, configuration, parameter count) of every network at its default size."""
    rows = [
        ("eric_mnist", "28x28 -> 10, valid", eric_mnist().count_params()),
        ("eric_mnist", "28x28 -> 10, same", eric_mnist(padding="same").count_params()),
        ("eric_omniglot", "105x105 -> 20, same", eric_omniglot().count_params()),
        ("koch", "105x105 -> 4096", koch().count_params()),
        ("conv4", "28x28 -> 64, width 64", conv4().count_params()),
        ("metric_network", "2 x 10 -> 2", metric_network(10).count_params()),
    ]
    keras.backend.clear_session()
    return rows
