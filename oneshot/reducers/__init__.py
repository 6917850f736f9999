"""Reducers: per-tuple losses -> per-sample values whose batch mean is the loss (see ``base``)."""

from __future__ import annotations

from oneshot.pieces import resolve
from oneshot.reducers.base import Reducer
from oneshot.reducers.means import (
    MEAN_REDUCERS,
    MeanNonZeroReducer,
    MeanReducer,
    PerAnchorReducer,
    SumReducer,
)
from oneshot.reducers.parts import PerPartReducer

__all__ = [
    "REDUCERS",
    "MeanNonZeroReducer",
    "MeanReducer",
    "PerAnchorReducer",
    "PerPartReducer",
    "Reducer",
    "SumReducer",
    "get_reducer",
]

REDUCERS = {**MEAN_REDUCERS, "per_part": PerPartReducer}


def get_reducer(
    reducer: str | Reducer | dict | None, default: type[Reducer] = MeanReducer
) -> Reducer:
    """A :class:`Reducer` from an object, a name (``REDUCERS``) or a Keras config dict."""
    return resolve(reducer, Reducer, REDUCERS, "reducer", default=default)
