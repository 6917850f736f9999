"""A reducer that reduces each part of a loss on its own, then adds the parts."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from oneshot.pieces import resolve
from oneshot.reducers.base import Reducer, register
from oneshot.reducers.means import MEAN_REDUCERS, MeanNonZeroReducer


@register
class PerPartReducer(Reducer):
    """Reduce each part of a loss (a pair loss's positive pairs, its negative pairs) with
    ``reducer`` separately and add the results: ``mean(positive terms) + mean(negative
    terms)`` instead of one mean over all the pairs, so the many negative pairs do not drown
    the few positive ones. pytorch-metric-learning's pair losses reduce this way.

    Losses with parts call :meth:`Reducer.reduce_parts`; on a single list of tuples this
    reducer is ``reducer`` itself.

    Args:
        reducer: the reduction of each part: a reducer or its name. Defaults to
            ``MeanNonZeroReducer()`` (the mean over the non-zero terms of each part).

    Example: positive terms [1, 0] anchored at 0, 1 and negative terms [3, 1] anchored at
    0, 2, in a batch of 4: the non-zero means are 1 and 2, so the batch mean is 3.

    >>> parts = [(tf.constant([1.0, 0.0]), tf.constant([0, 1])),
    ...          (tf.constant([3.0, 1.0]), tf.constant([0, 2]))]
    >>> float(tf.reduce_mean(PerPartReducer().reduce_parts(parts, 4)))
    3.0
    """

    def __init__(self, reducer: Reducer | str | dict | None = None) -> None:
        self.reducer = resolve(
            reducer, Reducer, MEAN_REDUCERS, "reducer", default=MeanNonZeroReducer
        )
        if isinstance(self.reducer, PerPartReducer):
            raise ValueError(
                "Invalid value for argument `reducer`. Expected the reduction of one part "
                f"(e.g. MeanNonZeroReducer()). Received: reducer={reducer!r}"
            )

    def __call__(self, losses: tf.Tensor, anchors: tf.Tensor, batch_size: tf.Tensor) -> tf.Tensor:
        return self.reducer(losses, anchors, batch_size)

    def reduce_parts(self, parts, batch_size) -> tf.Tensor:
        return tf.add_n([self.reducer(losses, anchors, batch_size) for losses, anchors in parts])

    def __repr__(self) -> str:
        return f"PerPartReducer(reducer={self.reducer!r})"

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.reducer))

    def get_config(self) -> dict[str, Any]:
        return {"reducer": keras.saving.serialize_keras_object(self.reducer)}
