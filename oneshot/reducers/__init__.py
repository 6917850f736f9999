"""Reducers: per-tuple losses -> per-sample values whose batch mean is the loss (see ``base``)."""

from __future__ import annotations

from oneshot.pieces import resolve
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
    return resolve(reducer, Reducer, REDUCERS, "reducer", default=default)
