"""Reducers against numpy loops over explicit tuples: per-sample values (B,) whose batch mean is
the reduction; repeated anchors, anchors without tuples, no tuples at all; gradients;
``reduce``; graph mode; ``get_reducer``; serialization."""

from __future__ import annotations

import doctest
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import oneshot.reducers.means
import oneshot.reducers.parts
from oneshot.distances import LpDistance
from oneshot.reducers import (
    REDUCERS,
    MeanNonZeroReducer,
    MeanReducer,
    PerAnchorReducer,
    PerPartReducer,
    Reducer,
    SumReducer,
    get_reducer,
)

SEEDS = [0, 1, 2, 3]
ALL = {name: make() for name, make in REDUCERS.items() if name != "per_part"}  # one part
every_reducer = pytest.mark.parametrize("reducer", list(ALL.values()), ids=list(ALL))


# ----------------------------------------------------------------------------- references
def reference_value(reducer: Reducer, losses: np.ndarray, anchors: np.ndarray, b: int) -> float:
    """The reduction itself, written out."""
    if isinstance(reducer, MeanReducer):
        return sum(losses) / max(len(losses), 1)
    if isinstance(reducer, MeanNonZeroReducer):
        return sum(losses) / max(sum(1 for v in losses if v > 0), 1)
    if isinstance(reducer, SumReducer):
        return float(sum(losses))
    if isinstance(reducer, PerAnchorReducer):  # mean over the batch of each sample's mean
        means = []
        for i in range(b):
            own = [v for v, a in zip(losses, anchors, strict=True) if a == i]
            means.append(sum(own) / len(own) if own else 0.0)
        return sum(means) / b
    raise AssertionError(reducer)


def reference_per_sample(reducer: Reducer, losses: np.ndarray, anchors: np.ndarray, b: int):
    """Each sample's share: its tuples' losses, scaled so that the batch mean is the value."""
    t, nonzero = len(losses), sum(1 for v in losses if v > 0)
    out = np.zeros(b)
    for i in range(b):
        own = [v for v, a in zip(losses, anchors, strict=True) if a == i]
        if isinstance(reducer, PerAnchorReducer):
            out[i] = sum(own) / len(own) if own else 0.0
        elif isinstance(reducer, MeanReducer):
            out[i] = sum(own) * b / max(t, 1)
        elif isinstance(reducer, MeanNonZeroReducer):
            out[i] = sum(own) * b / max(nonzero, 1)
        else:
            out[i] = sum(own) * b
    return out


def random_tuples(seed: int, b: int = 6, t: int = 11):
    """Hinge-like losses (about a third exactly 0), anchors with repeats and samples left out."""
    rng = np.random.default_rng(seed)
    losses = np.maximum(rng.normal(0.3, 1.0, size=t), 0.0)
    anchors = rng.choice(b - 2, size=t)  # samples b-2 and b-1 anchor nothing
    assert len(set(anchors)) < t and 0 < np.sum(losses == 0) < t
    return losses, anchors.astype(np.int32), b


def run(reducer, losses, anchors, b, dtype=tf.float64):
    return reducer(tf.constant(losses, dtype), tf.constant(anchors, tf.int32), b)


# ----------------------------------------------------------------------------- values
@every_reducer
@pytest.mark.parametrize("seed", SEEDS)
def test_per_sample_values_match_brute_force(reducer, seed):
    losses, anchors, b = random_tuples(seed)
    per_sample = run(reducer, losses, anchors, b)
    assert per_sample.shape == (b,) and per_sample.dtype == tf.float64
    np.testing.assert_allclose(per_sample, reference_per_sample(reducer, losses, anchors, b))
    assert np.all(per_sample.numpy()[b - 2 :] == 0.0)  # samples without tuples
    want = reference_value(reducer, losses, anchors, b)
    assert float(tf.reduce_mean(per_sample)) == pytest.approx(want, rel=1e-12)
    assert float(reducer.reduce(tf.constant(losses))) == pytest.approx(
        want if not isinstance(reducer, PerAnchorReducer) else np.mean(losses), rel=1e-12
    )


def test_hand_worked_example():
    """Losses [1, 0, 2, 3] anchored at [0, 0, 2, 2], batch of 4 (samples 1 and 3 anchor
    nothing). Per-sample sums [1, 0, 5, 0]; T = 4 tuples, 3 of them non-zero.

    - mean:         [1, 0, 5, 0] x 4/4 = [1, 0, 5, 0];       batch mean 1.5  = 6 / 4
    - mean_nonzero: [1, 0, 5, 0] x 4/3 = [4/3, 0, 20/3, 0];  batch mean 2.0  = 6 / 3
    - sum:          [1, 0, 5, 0] x 4   = [4, 0, 20, 0];      batch mean 6.0  = 6
    - per_anchor:   own means [1/2, 0, 5/2, 0];              batch mean 0.75 = 3 / 4
    """
    losses, anchors = [1.0, 0.0, 2.0, 3.0], [0, 0, 2, 2]
    expected = {
        "mean": ([1.0, 0.0, 5.0, 0.0], 1.5),
        "mean_nonzero": ([4 / 3, 0.0, 20 / 3, 0.0], 2.0),
        "sum": ([4.0, 0.0, 20.0, 0.0], 6.0),
        "per_anchor": ([0.5, 0.0, 2.5, 0.0], 0.75),
    }
    for name, (per_sample, mean) in expected.items():
        got = run(get_reducer(name), losses, anchors, 4)
        np.testing.assert_allclose(got, per_sample, rtol=1e-15)
        assert float(tf.reduce_mean(got)) == pytest.approx(mean, rel=1e-15)
    # reduce(): each loss its own anchor
    for reducer, value in [
        (MeanReducer(), 1.5),
        (MeanNonZeroReducer(), 2.0),
        (SumReducer(), 6.0),
        (PerAnchorReducer(), 1.5),
    ]:
        assert float(reducer.reduce(tf.constant(losses))) == pytest.approx(value, rel=1e-6)


@pytest.mark.parametrize("module", [oneshot.reducers.means, oneshot.reducers.parts])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, raise_on_error=False, verbose=False)
    assert result.attempted > 0 and result.failed == 0


def test_all_zero_losses_give_zeros():
    for reducer in ALL.values():
        got = run(reducer, np.zeros(5), [0, 0, 1, 2, 2], 4)
        np.testing.assert_array_equal(got, np.zeros(4))


@every_reducer
def test_no_tuples_give_finite_zeros_and_zero_gradient(reducer):
    weights = tf.Variable([1.0, 2.0, 3.0])
    with tf.GradientTape() as tape:
        losses = 2.0 * tf.gather(weights, tf.zeros((0,), tf.int32))
        per_sample = reducer(losses, tf.zeros((0,), tf.int32), 5)
        reduced = reducer.reduce(losses)
        total = tf.reduce_mean(per_sample) + reduced
    np.testing.assert_array_equal(per_sample, np.zeros(5, np.float32))
    assert float(reduced) == 0.0  # reduce_mean of nothing would be NaN
    grad = tape.gradient(total, weights)
    np.testing.assert_array_equal(tf.convert_to_tensor(grad), np.zeros(3, np.float32))


# ----------------------------------------------------------------------------- gradients
@every_reducer
@pytest.mark.parametrize("seed", SEEDS[:2])
def test_gradients_match_the_reduction(reducer, seed):
    """d(batch mean)/d(loss_t): 1/T (mean), 1/#non-zero (mean_nonzero; the count is a constant),
    1 (sum), 1/(B x #tuples of t's anchor) (per_anchor)."""
    losses, anchors, b = random_tuples(seed)
    x = tf.Variable(losses)
    with tf.GradientTape() as tape:
        total = tf.reduce_mean(reducer(x, tf.constant(anchors), b))
    grad = tape.gradient(total, x).numpy()
    counts = np.bincount(anchors, minlength=b)
    want = {
        MeanReducer: np.full(len(losses), 1 / len(losses)),
        MeanNonZeroReducer: np.full(len(losses), 1 / np.sum(losses > 0)),
        SumReducer: np.ones(len(losses)),
        PerAnchorReducer: 1 / (b * counts[anchors]),
    }[type(reducer)]
    np.testing.assert_allclose(grad, want, rtol=1e-12)


# ----------------------------------------------------------------------------- graph mode, dtypes
@every_reducer
def test_graph_mode_with_unknown_sizes(reducer):
    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.float32),
            tf.TensorSpec([None], tf.int64),
            tf.TensorSpec([], tf.int32),
        ]
    )
    def both(losses, anchors, b):
        return reducer(losses, anchors, b), reducer.reduce(losses)

    for seed in SEEDS[:2]:
        losses, anchors, b = random_tuples(seed)
        per_sample, reduced = both(
            tf.constant(losses, tf.float32), tf.constant(anchors, tf.int64), tf.constant(b)
        )
        np.testing.assert_allclose(
            per_sample, reference_per_sample(reducer, losses, anchors, b), rtol=1e-5, atol=1e-6
        )
        assert np.isfinite(float(reduced))
    per_sample, reduced = both(tf.zeros((0,)), tf.zeros((0,), tf.int64), tf.constant(3))
    np.testing.assert_array_equal(per_sample, np.zeros(3, np.float32))
    assert float(reduced) == 0.0
    assert both.experimental_get_tracing_count() == 1


@every_reducer
def test_losses_of_any_shape_are_flattened(reducer):
    losses, anchors, b = random_tuples(0, t=12)
    flat = run(reducer, losses, anchors, b)
    np.testing.assert_allclose(run(reducer, losses.reshape(3, 4), anchors, b), flat)


# ----------------------------------------------------------------------------- get_reducer, errors
def test_get_reducer_accepts_names_objects_dicts_and_none():
    assert REDUCERS == {
        "mean": MeanReducer,
        "mean_nonzero": MeanNonZeroReducer,
        "per_anchor": PerAnchorReducer,
        "sum": SumReducer,
        "per_part": PerPartReducer,
    }
    for name, cls in REDUCERS.items():
        assert type(get_reducer(name)) is cls
    reducer = SumReducer()
    assert get_reducer(reducer) is reducer
    assert get_reducer(None) == MeanReducer()
    assert get_reducer(None, default=MeanNonZeroReducer) == MeanNonZeroReducer()
    for reducer in ALL.values():
        assert get_reducer(keras.saving.serialize_keras_object(reducer)) == reducer


@pytest.mark.parametrize(
    "bad",
    [
        "avg",
        "Mean",
        "",
        0,
        MeanReducer,
        {"class_name": "Nope", "config": {}},
        keras.saving.serialize_keras_object(LpDistance()),
    ],
    ids=["avg", "capitalised", "empty", "int", "class", "unknown_dict", "distance_dict"],
)
def test_get_reducer_rejects_bad_values_naming_the_argument(bad):
    with pytest.raises(ValueError, match=r"argument `reducer`.*Received: reducer="):
        get_reducer(bad)


# ----------------------------------------------------------------------------- serialization
@every_reducer
def test_serialization_round_trip(reducer):
    config = keras.saving.serialize_keras_object(reducer)
    assert config["registered_name"] == f"oneshot>{type(reducer).__name__}"
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(config)))
    assert type(restored) is type(reducer)
    assert restored == reducer and hash(restored) == hash(reducer)
    assert repr(restored) == f"{type(reducer).__name__}()"
    losses, anchors, b = random_tuples(1)
    np.testing.assert_array_equal(
        run(restored, losses, anchors, b), run(reducer, losses, anchors, b)
    )


def test_equality_is_on_type():
    assert MeanReducer() == MeanReducer() != MeanNonZeroReducer()
    assert SumReducer() != "sum"
    assert len(set(ALL.values())) == len(ALL)


# ----------------------------------------------------------------------------- parts
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("inner", ["mean_nonzero", "mean", "sum"])
def test_per_part_reducer_adds_the_reduction_of_each_part(seed, inner):
    """Two parts (a pair loss's positive and negative terms): ``PerPartReducer(inner)``'s batch
    mean is inner(part 1) + inner(part 2), the brute force written out; every other reducer
    reduces the two parts as one list."""
    pos, pos_anchors, b = random_tuples(seed, t=5)
    neg, neg_anchors, _ = random_tuples(seed + 10, t=9)
    parts = [
        (tf.constant(pos), tf.constant(pos_anchors)),
        (tf.constant(neg), tf.constant(neg_anchors)),
    ]
    reducer = PerPartReducer(inner)
    want = reference_value(reducer.reducer, pos, pos_anchors, b) + reference_value(
        reducer.reducer, neg, neg_anchors, b
    )
    got = reducer.reduce_parts(parts, b)
    assert got.shape == (b,)
    assert float(tf.reduce_mean(got)) == pytest.approx(want, rel=1e-12)
    one_list = reference_value(
        get_reducer(inner),
        np.concatenate([pos, neg]),
        np.concatenate([pos_anchors, neg_anchors]),
        b,
    )
    together = get_reducer(inner).reduce_parts(parts, b)
    assert float(tf.reduce_mean(together)) == pytest.approx(one_list, rel=1e-12)
    # on one list of tuples it is its inner reducer
    np.testing.assert_allclose(
        run(reducer, pos, pos_anchors, b), run(reducer.reducer, pos, pos_anchors, b)
    )


def test_per_part_reducer_hand_worked_and_round_trip():
    """Positive terms [1, 0] at anchors 0, 1, negative terms [3, 1] at 0, 2, batch of 4: the
    non-zero means are 1/1 and 4/2, sum 3; one mean over all four terms would be 5/4."""
    parts = [(tf.constant([1.0, 0.0]), tf.constant([0, 1])),
             (tf.constant([3.0, 1.0]), tf.constant([0, 2]))]  # fmt: skip
    assert float(tf.reduce_mean(PerPartReducer().reduce_parts(parts, 4))) == 3.0
    assert float(tf.reduce_mean(MeanReducer().reduce_parts(parts, 4))) == 1.25
    reducer = PerPartReducer("mean")
    config = keras.saving.serialize_keras_object(reducer)
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(config)))
    assert restored == reducer and hash(restored) == hash(reducer)
    assert repr(restored) == "PerPartReducer(reducer=MeanReducer())"
    assert get_reducer("per_part") == PerPartReducer(MeanNonZeroReducer())
    with pytest.raises(ValueError, match="argument `reducer`"):
        PerPartReducer(PerPartReducer())
    with pytest.raises(ValueError, match="argument `reducer`"):
        PerPartReducer("median")
