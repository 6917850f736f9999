"""The building blocks every model of oneshot shares: the names of its nested networks, the
input-shape check, the L2-normalisation layer and the small serializable layers that compare
embeddings (pair distance, the distance tag of an online model, |e1 - e2|, the learned
metric's output).

Every model nests ONE embedding network as the layer named :data:`EMBEDDING_NAME`; the
quadruplet model's learned metric is :data:`METRIC_NAME` and a siamese model's similarity head
:data:`SIMILARITY_NAME`. :meth:`oneshot.evaluation.scoring.Scorer.from_model` finds them by
these names.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf
from keras import layers

from oneshot.distances import Distance, get_distance
from oneshot.pieces import register

SIMILARITY_NAME = "pair_similarity"
EMBEDDING_NAME = "embedding"
METRIC_NAME = "metric"


def check_input_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    """``input_shape`` as a tuple of 3 positive ints (H, W, C), else a ValueError."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(
            "Invalid value for argument `input_shape`. Expected (height, width, channels): "
            f"channels 1 for grey images, 3 for colour. Received: input_shape={tuple(input_shape)!r}"
        )
    return shape  # type: ignore[return-value]


def l2_normalize_layer() -> layers.Layer:
    """The serializable L2-normalisation layer used by every network (finite gradient at 0)."""
    return layers.UnitNormalization(axis=-1, name="l2_normalize")


@register
class PairDistance(keras.layers.Layer):
    """Dissimilarity (B, 1) between matching rows of two embedding batches ``[e1, e2]``."""

    def __init__(self, distance: Distance | str | dict = "euclidean", **kwargs) -> None:
        super().__init__(**kwargs)
        self.distance = get_distance(distance)

    def call(self, inputs):
        d = self.distance
        return d.dissimilarity(d.paired(inputs[0], inputs[1]))[:, None]

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 1)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "distance": keras.saving.serialize_keras_object(self.distance),
        }


@register
class EmbeddingDistance(keras.layers.Layer):
    """Identity on the embeddings that records the distance they are compared with.

    The online model ends with it, so the saved model carries the distance it was trained with
    and ``oneshot.evaluation.scoring.Scorer.from_model`` evaluates with that one (nothing guesses).
    """

    def __init__(self, distance: Distance | str | dict | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.distance = get_distance(distance)

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "distance": keras.saving.serialize_keras_object(self.distance),
        }


@register
class AbsoluteDifference(keras.layers.Layer):
    """``|e1 - e2|`` element-wise (Koch's L1 head input); symmetric in its two inputs."""

    def call(self, inputs):
        return tf.abs(inputs[0] - inputs[1])

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@register
class MetricDistance(keras.layers.Layer):
    """Column 0 of the learned metric's softmax output (B, 2): the distance g, shape (B, 1)."""

    def call(self, inputs):
        return inputs[:, :1]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)
