"""Reducers: per-tuple losses -> per-sample values whose batch mean is the loss (see ``base``)."""

from __future__ import annotations

import keras

from oneshot.reducers.base import Reducer
from oneshot.reducers.means import MeanNonZeroReducer, MeanReducer, PerAnchorReducer, SumReducer

__all__ = [
    "REDUCERS",
    "MeanNonZeroReducer",
    "MeanReducer",
    "PerAnchorReducer",
    "Reducer",
    "SumReducer",
    "get_reducer",
]

REDUCERS = {
    "mean": MeanReducer,
    "mean_nonzero": MeanNonZeroReducer,
    "per_anchor": PerAnchorReducer,
    "sum": SumReducer,
}


def get_reducer(
    reducer: str | Reducer | dict | None, default: type[Reducer] = MeanReducer
) -> Reducer:
    """A :class:`Reducer` from an object, a name (``REDUCERS``) or a Keras config dict."""
    if reducer is None:
        return default()
    if isinstance(reducer, Reducer):
        return reducer
    if isinstance(reducer, dict):
        try:
            obj = keras.saving.deserialize_keras_object(reducer)
        except (TypeError, ValueError, KeyError) as error:
            raise ValueError(
                "Invalid value for argument `reducer`. Expected the Keras config of a "
                f"oneshot.reducers.Reducer. Received: reducer={reducer!r} ({error})"
            ) from error
        if isinstance(obj, Reducer):
            return obj
    if isinstance(reducer, str) and reducer in REDUCERS:
        return REDUCERS[reducer]()
    raise ValueError(
        "Invalid value for argument `reducer`. Expected a oneshot.reducers.Reducer or one of "
        f"{tuple(REDUCERS)}. Received: reducer={reducer!r}"
    )
