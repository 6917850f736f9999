"""Embedding networks on a ``keras.applications`` backbone (MobileNetV3, EfficientNet, ResNet...).

:func:`keras_app` wraps any model of ``keras.applications`` by name, registered in
:func:`oneshot.models.networks.build_network` as ``"keras_app"``::

    net = keras_app("ResNet50", input_shape=(64, 64, 3), embedding_dim=128)
    net = build_network("keras_app", (64, 64, 3), 128, application="ResNet50")
    OnlineRun(..., network="keras_app", network_kwargs={"application": "ResNet50"})

The model, named ``"embedding"`` like every oneshot network, takes float32 images in [0, 1]
(``oneshot.data.to_model_input``) and runs, layer by layer:

- ``to_rgb`` (grey input only, ``input_shape=(H, W, 1)``): the channel repeated 3 times, so
  grey datasets (MNIST, Omniglot, the run configs) train RGB backbones unchanged;
- ``preprocess`` (:class:`ImageNetPreprocessing`): the input convention of the application's
  family, exactly ``keras.applications.<family>.preprocess_input(255 * x)``: caffe (BGR, mean
  subtracted: ResNet, VGG), tf ([-1, 1]: ResNetV2, MobileNet v1/v2, Inception, Xception, NASNet),
  torch (ImageNet mean and std: DenseNet), or 0-255 pixels for the families that rescale inside
  the model (MobileNetV3, EfficientNet, EfficientNetV2, ConvNeXt);
- ``backbone``: the application with ``include_top=False``, nested as one layer;
- ``pool`` (global average pooling), ``projection`` (Dense ``embedding_dim``), ``projection_bn``
  (BatchNormalization, as in ``conv4``) and ``l2_normalize`` (unit-length embeddings).

Weights: None (random), ``"imagenet"`` (downloaded by Keras into ``~/.keras/models``; offline,
:class:`WeightsUnavailableError` says which file to fetch), or the path of a local ``.h5`` /
``.weights.h5`` file holding the backbone's weights (see :func:`keras_app`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import keras
from keras import layers, ops

from oneshot.errors import UsageError
from oneshot.models.layers import EMBEDDING_NAME, check_input_shape, l2_normalize_layer
from oneshot.pieces import register

BACKBONE_NAME = "backbone"

#: keras.applications family (the module of the application) -> input convention
#: (``preprocess_input`` mode; "pixels": the model rescales 0-255 values itself).
FAMILY_MODES: dict[str, str] = {
    "resnet": "caffe",
    "vgg16": "caffe",
    "vgg19": "caffe",
    "resnet_v2": "tf",
    "mobilenet": "tf",
    "mobilenet_v2": "tf",
    "inception_v3": "tf",
    "inception_resnet_v2": "tf",
    "xception": "tf",
    "nasnet": "tf",
    "densenet": "torch",
    "mobilenet_v3": "pixels",
    "efficientnet": "pixels",
    "efficientnet_v2": "pixels",
    "convnext": "pixels",
}
PREPROCESSING_MODES = ("caffe", "tf", "torch", "pixels")
#: smallest height and width each family accepts (keras.applications' ``min_size``); else 32
MIN_SIZES: dict[str, int] = {"inception_v3": 75, "inception_resnet_v2": 75, "xception": 71}
DEFAULT_MIN_SIZE = 32

_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)
#: EfficientNet (v1) adds this Rescaling after its Normalization only for weights="imagenet"
#: (keras.src.applications.efficientnet, IMAGENET_STDDEV_RGB); a local copy of those weights
#: needs it too.
_EFFICIENTNET_IMAGENET_SCALE = tuple(1.0 / s**0.5 for s in (0.229, 0.224, 0.225))


class WeightsUnavailableError(UsageError, OSError):
    """The ImageNet weights could not be downloaded (offline); the message names the file."""


def applications() -> tuple[str, ...]:
    """Names of every model in ``keras.applications`` ("ConvNeXtBase", ..., "Xception")."""
    return tuple(
        name
        for name in sorted(dir(keras.applications))
        if name[:1].isupper() and callable(getattr(keras.applications, name))
    )


def family(application: str) -> str:
    """The ``keras.applications`` module of ``application``: "ResNet50" -> "resnet"."""
    names = applications()
    if application not in names:
        raise ValueError(
            "Invalid value for argument `application`. Expected the name of a model in "
            f"keras.applications, one of {names}. Received: application={application!r}"
        )
    return getattr(keras.applications, application).__module__.rsplit(".", 1)[-1]


def preprocessing_mode(application: str) -> str:
    """The input convention of ``application`` (see ``FAMILY_MODES``)."""
    name = family(application)
    if name not in FAMILY_MODES:
        raise ValueError(
            f"{application} belongs to the keras.applications family {name!r}, whose input "
            f"preprocessing oneshot does not know yet (known: {tuple(FAMILY_MODES)}). Add it "
            "to oneshot.models.backbones.FAMILY_MODES."
        )
    return FAMILY_MODES[name]


def min_size(application: str) -> int:
    """The smallest image height and width ``application`` accepts."""
    return MIN_SIZES.get(family(application), DEFAULT_MIN_SIZE)


@register
class ImageNetPreprocessing(layers.Layer):
    """Images in [0, 1] -> the input a ``keras.applications`` family expects.

    Equal to ``keras.applications.<family>.preprocess_input(255 * x)`` (channels last):

    - "caffe": RGB -> BGR, times 255, minus the ImageNet mean (103.939, 116.779, 123.68);
    - "tf": ``2 x - 1``, in [-1, 1];
    - "torch": ``(x - mean) / std`` with the ImageNet mean and std per RGB channel;
    - "pixels": ``255 x`` (the model rescales itself: MobileNetV3, EfficientNet, ConvNeXt).

    Args:
        mode: one of ``PREPROCESSING_MODES``.
    """

    def __init__(self, mode: str, **kwargs) -> None:
        super().__init__(**kwargs)
        if mode not in PREPROCESSING_MODES:
            raise ValueError(
                f"Invalid value for argument `mode`. Expected one of {PREPROCESSING_MODES}. "
                f"Received: mode={mode!r}"
            )
        self.mode = mode

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "caffe":
            return ops.flip(x, axis=-1) * 255.0 - ops.convert_to_tensor(_CAFFE_MEAN_BGR, x.dtype)
        if self.mode == "tf":
            return x * 2.0 - 1.0
        if self.mode == "torch":
            mean = ops.convert_to_tensor(_TORCH_MEAN, x.dtype)
            return (x - mean) / ops.convert_to_tensor(_TORCH_STD, x.dtype)
        return x * 255.0

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode}


def _check_input_shape(application: str, input_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = check_input_shape(input_shape)
    if shape[2] not in (1, 3):
        raise ValueError(
            f"Invalid value for argument `input_shape`. {application} takes colour images "
            f"(channels 3) or grey ones (channels 1, repeated into RGB). Received: "
            f"input_shape={shape!r}"
        )
    smallest = min_size(application)
    if min(shape[:2]) < smallest:
        raise ValueError(
            f"Invalid value for argument `input_shape`. {application} needs images of at least "
            f"{smallest}x{smallest}. Received: input_shape={shape!r}. Resize the images "
            "(oneshot.data.resize_area) or load them larger (e.g. load_omniglot(..., "
            f"image_size={smallest}))."
        )
    return shape


def _check_weights(weights: str | os.PathLike | None) -> str | None:
    """None, "imagenet" or the path of an existing .h5 / .weights.h5 file (as a str)."""
    if weights is None or weights == "imagenet":
        return weights
    expected = "None, 'imagenet' or the path of a local .h5 or .weights.h5 file"
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(
            f"Invalid value for argument `weights`. Expected {expected}. Received: weights={weights!r}"
        )
    path = Path(weights).expanduser()
    if not path.name.endswith(".h5"):
        raise ValueError(
            f"Invalid value for argument `weights`. Expected {expected}. Received: "
            f"weights={str(weights)!r}, which is not a .h5 file."
        )
    if not path.is_file():
        raise ValueError(
            f"Invalid value for argument `weights`: no such file: {path}. Expected {expected}."
        )
    return str(path)


def _download_failure(application: str, error: Exception) -> WeightsUnavailableError | None:
    """A clear error for a failed ImageNet download (Keras raises a bare Exception), or None."""
    text = str(error)
    if "URL fetch failure" not in text and not isinstance(error, OSError):
        return None
    found = re.search(r"URL fetch failure on (\S+): .* -- (.*)", text)
    url, reason = (found.group(1), found.group(2)) if found else (None, text[:300])
    file_name = url.rsplit("/", 1)[-1] if url else "<the *_notop.h5 file>"
    cache = Path(os.environ.get("KERAS_HOME", "~/.keras")) / "models"
    path = f"/path/to/{file_name}"
    return WeightsUnavailableError(
        f"Could not download the ImageNet weights of {application}"
        f"{f' from {url}' if url else ''} ({reason}); this machine may be offline. Download "
        f"{file_name} on a machine that is online, then pass its local path: "
        f"keras_app({application!r}, weights={path!r}) (in a run config: "
        f"network_kwargs={{'application': {application!r}, 'weights': {path!r}}}), or copy it "
        f"into {cache}, where Keras looks before downloading."
    )


def _with_imagenet_structure(application: str, backbone: keras.Model) -> keras.Model:
    """``backbone`` as Keras builds it for weights="imagenet" (EfficientNet v1 adds a Rescaling
    after its Normalization then); other families are the same either way."""
    if family(application) != "efficientnet":
        return backbone

    def call(layer, *args, **kwargs):
        out = layer(*args, **kwargs)
        if isinstance(layer, layers.Normalization):
            out = layers.Rescaling(list(_EFFICIENTNET_IMAGENET_SCALE), name="imagenet_scale")(out)
        return out

    return keras.models.clone_model(backbone, call_function=call)


def build_backbone(
    application: str,
    input_shape: Sequence[int] = (224, 224, 3),
    weights: str | os.PathLike | None = None,
) -> keras.Model:
    """The ``keras.applications`` model ``application`` without its classifier, named "backbone".

    Args:
        application: a name in ``keras.applications`` (see :func:`applications`).
        input_shape: (H, W, 3). Defaults to (224, 224, 3).
        weights: None, "imagenet" or a local weights file (see :func:`keras_app`).
            Defaults to None.

    Returns:
        A ``keras.Model`` (N, H, W, 3) -> feature maps (N, h, w, channels), expecting the
        family's preprocessed input (:class:`ImageNetPreprocessing`).
    """
    shape = (*_check_input_shape(application, input_shape)[:2], 3)  # checks the name too
    weights = _check_weights(weights)
    constructor = getattr(keras.applications, application)
    local = weights not in (None, "imagenet")
    try:
        # no `name=`: Keras derives the ImageNet file name from the default one
        backbone = constructor(
            include_top=False, weights=None if local else weights, input_shape=shape
        )
    except Exception as error:
        failure = _download_failure(application, error) if weights == "imagenet" else None
        if failure is not None:
            raise failure from error
        raise
    if local:
        backbone = _with_imagenet_structure(application, backbone)
        try:
            backbone.load_weights(weights)
        except (ValueError, KeyError, OSError) as error:
            raise ValueError(
                f"Invalid value for argument `weights`: {weights} does not hold the weights of "
                f"a {application} without its top ({type(error).__name__}: {str(error)[:300]}). "
                f"Expected Keras's ImageNet file for {application} with include_top=False "
                "(*_notop.h5), or backbone weights saved with save_weights."
            ) from error
    backbone.name = BACKBONE_NAME
    return backbone


def keras_app(
    application: str = "MobileNetV3Small",
    input_shape: Sequence[int] = (224, 224, 3),
    embedding_dim: int = 128,
    weights: str | os.PathLike | None = None,
    l2_normalize: bool = True,
    trainable_backbone: bool = True,
    projection_bn: bool = True,
    bn_momentum: float = 0.9,
) -> keras.Model:
    """An embedding network on a ``keras.applications`` backbone (see the module docstring).

    Image (H, W, C) in [0, 1] -> [to_rgb] -> preprocess -> backbone (include_top=False) ->
    global average pooling -> Dense ``embedding_dim`` -> [BatchNorm] -> [L2 normalisation].

    Args:
        application: a model of ``keras.applications`` by name, e.g. "MobileNetV3Small",
            "EfficientNetB0", "ResNet50" (all: :func:`applications`). Defaults to
            "MobileNetV3Small".
        input_shape: (H, W, 3) colour, or (H, W, 1) grey (repeated into the 3 RGB channels
            inside the model). H and W of at least 32 (75 for the Inception models, 71 for
            Xception). Defaults to (224, 224, 3).
        embedding_dim: size of the embedding. Defaults to 128.
        weights: None (random initialisation), "imagenet" (downloaded when online; offline,
            a :class:`WeightsUnavailableError` names the file to fetch), or the path of a
            local ``.h5`` / ``.weights.h5`` file with the backbone's weights: Keras's ImageNet
            file for the model without top (``*_notop.h5``, the backbone is then built
            exactly as for "imagenet") or weights saved by ``backbone.save_weights``.
            Defaults to None.
        l2_normalize: end with L2 normalisation (unit-length embeddings). Defaults to True.
        trainable_backbone: False freezes the backbone (its BatchNorm layers then run in
            inference mode): only the projection trains. See :func:`set_backbone_trainable`
            to unfreeze it later. Defaults to True.
        projection_bn: BatchNormalization after the projection, as in ``conv4`` (keeps the
            normalised embeddings spread out early in training). Defaults to True.
        bn_momentum: momentum of that BatchNormalization. Defaults to 0.9.

    Returns:
        A ``keras.Model`` named "embedding": (N, H, W, C) -> (N, embedding_dim).

    Example:
    >>> net = keras_app("MobileNetV3Small", (32, 32, 3), embedding_dim=16)
    >>> net.output_shape
    (None, 16)
    """
    shape = _check_input_shape(application, input_shape)
    if int(embedding_dim) < 1:
        raise ValueError(
            "Invalid value for argument `embedding_dim`. Expected a positive int. "
            f"Received: embedding_dim={embedding_dim!r}"
        )
    backbone = build_backbone(application, shape, weights)
    backbone.trainable = bool(trainable_backbone)
    inputs = keras.Input(shape=shape, name="image")
    x = inputs
    if shape[2] == 1:
        x = layers.Concatenate(axis=-1, name="to_rgb")([x, x, x])
    x = ImageNetPreprocessing(preprocessing_mode(application), name="preprocess")(x)
    x = backbone(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dense(int(embedding_dim), name="projection")(x)
    if projection_bn:
        x = layers.BatchNormalization(momentum=bn_momentum, name="projection_bn")(x)
    if l2_normalize:
        x = l2_normalize_layer()(x)
    return keras.Model(inputs, x, name=EMBEDDING_NAME)


def find_backbone(model: keras.Model) -> keras.Model:
    """The nested backbone of a :func:`keras_app` network, or of a model holding one (an
    online, triplet, siamese ... model whose layer "embedding" is such a network)."""
    names = [layer.name for layer in model.layers]
    if BACKBONE_NAME in names:
        return model.get_layer(BACKBONE_NAME)
    if "embedding" in names:
        return find_backbone(model.get_layer("embedding"))
    raise ValueError(
        f"Invalid value for argument `model`. Expected a keras_app network or a model holding "
        f"one (a layer named {BACKBONE_NAME!r}). Received: model {model.name!r} with layers "
        f"{names[:8]}"
    )


def set_backbone_trainable(model: keras.Model, trainable: bool = True) -> keras.Model:
    """Freeze or unfreeze the backbone of ``model`` (see :func:`find_backbone`); returns it.

    The usual fine-tuning recipe: build with ``trainable_backbone=False``, fit a few hundred
    steps (only the projection learns), then ``set_backbone_trainable(model)``, compile again
    (a new optimizer, often a lower learning rate: Keras builds an optimizer for the weights
    that were trainable when it first ran) and fit on.
    """
    backbone = find_backbone(model)
    backbone.trainable = bool(trainable)
    return backbone
