"""Distances against brute force (scipy's ``cdist`` or explicit loops); exact self-distances;
finite gradients at zero distance; the slope -1 dissimilarity; blocks; graph mode;
``get_distance``; serialization; the memory of L1 over 13,180 evaluation embeddings."""

from __future__ import annotations

import doctest
import json
import math
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.spatial import distance as sp

import oneshot.distances.base as distances_base
import oneshot.distances.lp
import oneshot.distances.similarities
from oneshot.distances import (
    DISTANCES,
    CosineSimilarity,
    Distance,
    DotProductSimilarity,
    LpDistance,
    RBFSimilarity,
    check_distance,
    distance_name,
    get_distance,
    paired_distances,
    pairwise_dissimilarity_numpy,
    pairwise_distances,
)
from oneshot.reducers import MeanReducer

SEEDS = [0, 1, 2]
SIGMA = 0.7
ALL = {
    "euclidean": LpDistance(),
    "squared_euclidean": LpDistance(power=2),
    "l1": LpDistance(p=1),
    "cosine": CosineSimilarity(),
    "dot": DotProductSimilarity(),
    "rbf": RBFSimilarity(sigma=SIGMA),
    "euclidean_normalized": LpDistance(normalize_embeddings=True),
    "squared_euclidean_normalized": LpDistance(power=2, normalize_embeddings=True),
    "l1_normalized": LpDistance(p=1, normalize_embeddings=True),
    "dot_normalized": DotProductSimilarity(normalize_embeddings=True),
    "rbf_normalized": RBFSimilarity(sigma=SIGMA, normalize_embeddings=True),
}
SELF_VALUE = {Distance: 0.0, CosineSimilarity: 1.0, RBFSimilarity: 1.0}
every_distance = pytest.mark.parametrize("distance", list(ALL.values()), ids=list(ALL))
exact_self = pytest.mark.parametrize(
    "distance",
    [d for d in ALL.values() if type(d) is not DotProductSimilarity],
    ids=[k for k, d in ALL.items() if type(d) is not DotProductSimilarity],
)


# ----------------------------------------------------------------------------- references
def self_value(distance: Distance) -> float:
    return SELF_VALUE.get(type(distance), 0.0)


def normalized(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def reference_pairwise(distance: Distance, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """float64 values (N, M): scipy's cdist where it has the metric, else a loop."""
    if distance.normalize_embeddings:
        x, y = normalized(x), normalized(y)
    if isinstance(distance, LpDistance):
        metric = {(2, 1): "euclidean", (2, 2): "sqeuclidean", (1, 1): "cityblock"}
        return sp.cdist(x, y, metric[distance.p, distance.power])
    if isinstance(distance, CosineSimilarity):
        return 1.0 - sp.cdist(x, y, "cosine")
    if isinstance(distance, DotProductSimilarity):
        return np.array([[sum(a * b for a, b in zip(u, v, strict=True)) for v in y] for u in x])
    if isinstance(distance, RBFSimilarity):
        return np.exp(-sp.cdist(x, y, "sqeuclidean") / (2 * distance.sigma**2))
    raise AssertionError(distance)


def reference_paired(distance: Distance, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """float64 values (N,), one explicit pair at a time."""
    return np.array(
        [reference_pairwise(distance, u[None], v[None])[0, 0] for u, v in zip(x, y, strict=True)]
    )


def embeddings(seed: int, n: int = 7, m: int = 5, dim: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, dim)), rng.normal(size=(m, dim))


def assert_close(actual, expected, rtol: float = 1e-5, atol: float = 1e-12) -> None:
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=rtol, atol=atol)


# ----------------------------------------------------------------------------- values
@every_distance
@pytest.mark.parametrize("seed", SEEDS)
def test_pairwise_and_paired_match_brute_force(distance, seed):
    x, y = embeddings(seed)
    got_xy = distance.pairwise(tf.constant(x), tf.constant(y))
    got_xx = distance.pairwise(tf.constant(x))
    got_paired = distance.paired(tf.constant(x[:5]), tf.constant(y))
    assert got_xy.dtype == got_xx.dtype == got_paired.dtype == tf.float64
    assert got_xy.shape == (7, 5) and got_xx.shape == (7, 7) and got_paired.shape == (5,)
    assert_close(got_xy, reference_pairwise(distance, x, y))
    assert_close(got_xx, reference_pairwise(distance, x, x))
    assert_close(got_paired, reference_paired(distance, x[:5], y))


def test_hand_worked_values():
    """(0, 0), (3, 4) and (1, 0): Euclidean 5, squared 25, L1 7, cosine of (3, 4) and (1, 0) 0.6,
    dot product 3, RBF with sigma = 5: exp(-25 / 50)."""
    x = tf.constant([[0.0, 0.0], [3.0, 4.0]])
    assert LpDistance().pairwise(x).numpy().tolist() == [[0.0, 5.0], [5.0, 0.0]]
    assert LpDistance(power=2).paired(x[:1], x[1:]).numpy().tolist() == [25.0]
    assert LpDistance(p=1).paired(x[:1], x[1:]).numpy().tolist() == [7.0]
    unit = tf.constant([[1.0, 0.0]])
    assert CosineSimilarity().paired(x[1:], unit).numpy() == pytest.approx([0.6])
    assert DotProductSimilarity().paired(x[1:], unit).numpy().tolist() == [3.0]
    rbf = RBFSimilarity(sigma=5.0).pairwise(x).numpy()
    assert rbf == pytest.approx(np.array([[1.0, math.exp(-0.5)], [math.exp(-0.5), 1.0]]))


@pytest.mark.parametrize("module", [oneshot.distances.lp, oneshot.distances.similarities])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, raise_on_error=False, verbose=False)
    assert result.attempted > 0 and result.failed == 0


@every_distance
def test_pairwise_numpy_equals_pairwise(distance):
    x, y = embeddings(3)
    for got, want in [
        (distance.pairwise_numpy(x, y), distance.pairwise(tf.constant(x), tf.constant(y))),
        (distance.pairwise_numpy(x), distance.pairwise(tf.constant(x))),
    ]:
        assert isinstance(got, np.ndarray) and got.dtype == np.float32
        assert_close(got, np.asarray(want), atol=1e-6)


@pytest.mark.parametrize("rows", [1, 2, 3])
@every_distance
def test_small_blocks_give_the_one_block_result(distance, rows, monkeypatch):
    """Blocks of ``rows`` rows (7 rows: the last block is short) equal one block, both for the
    eager ``pairwise`` (row blocks for L1) and for ``pairwise_numpy`` (row blocks for all)."""
    distance = type(distance).from_config(distance.get_config())  # patched below: a copy
    x, y = embeddings(4)
    one_block = {
        "xy": np.asarray(distance.pairwise(tf.constant(x), tf.constant(y))),
        "xx": np.asarray(distance.pairwise(tf.constant(x))),
        "numpy_xy": distance.pairwise_numpy(x, y),
        "numpy_xx": distance.pairwise_numpy(x),
    }
    dim = x.shape[1]
    for key, m in [("xy", len(y)), ("xx", len(x))]:
        per_row = m * (dim if isinstance(distance, LpDistance) and distance.p == 1 else 1)
        monkeypatch.setattr(distances_base, "CHUNK_ELEMENTS", rows * per_row)
        calls = []
        inner = distance._pairwise
        monkeypatch.setattr(
            distance,
            "_pairwise",
            lambda a, b, calls=calls, inner=inner: calls.append(len(a)) or inner(a, b),
        )
        other = None if key == "xx" else tf.constant(y)
        eager = np.asarray(distance.pairwise(tf.constant(x), other))
        eager_calls, calls[:] = list(calls), []
        numpy_ = distance.pairwise_numpy(x, None if key == "xx" else y)
        assert calls == [rows] * (len(x) // rows) + [len(x) % rows] * bool(len(x) % rows)
        if isinstance(distance, LpDistance) and distance.p == 1:
            assert eager_calls == calls  # the eager path used the same blocks
        else:
            assert eager_calls == [len(x)]  # matmul distances: one block
        np.testing.assert_allclose(eager, one_block[key], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(numpy_, one_block["numpy_" + key], rtol=1e-6, atol=1e-6)
        monkeypatch.undo()


def test_eager_blocks_set_the_diagonal_of_every_block(monkeypatch):
    """The eager block path sets each block's slice of the diagonal (offset = its first row):
    forced onto a matmul distance with large norms, the diagonal is exactly 0 and the rest
    equals the one-block result."""
    x = 1e3 * np.random.default_rng(5).normal(size=(9, 4)).astype(np.float32) + 1e4
    for distance, value in [(LpDistance(), 0.0), (RBFSimilarity(sigma=1e3), 1.0)]:
        whole = distance.pairwise(tf.constant(x)).numpy()
        monkeypatch.setattr(distances_base, "CHUNK_ELEMENTS", 2 * 9 * 4)
        monkeypatch.setattr(distance, "_per_entry_cost_is_dim", True)
        blocks = distance.pairwise(tf.constant(x)).numpy()
        monkeypatch.undo()
        assert np.all(np.diag(blocks) == value)
        np.testing.assert_allclose(blocks, whole, rtol=1e-4)


# ----------------------------------------------------------------------------- exact self-values
@exact_self
def test_self_values_are_exact_even_for_large_norms(distance):
    """|x|^2 - 2 x.x + |x|^2 cancels badly at norms ~1e5 in float32; the diagonal is set."""
    rng = np.random.default_rng(6)
    x = (1e4 * rng.normal(size=(20, 16)) + 1e5).astype(np.float32)
    want = self_value(distance)
    assert np.all(np.diag(distance.pairwise(tf.constant(x)).numpy()) == want)
    assert np.all(np.diag(distance.pairwise_numpy(x)) == want)
    graph = tf.function(distance.pairwise, input_signature=[tf.TensorSpec([None, 16])])
    assert np.all(np.diag(graph(tf.constant(x)).numpy()) == want)
    assert np.all(np.diag(pairwise_distances(tf.constant(x), distance=distance).numpy()) == 0.0)
    assert np.all(np.diag(pairwise_dissimilarity_numpy(x, distance=distance)) == 0.0)


@pytest.mark.parametrize("name", DISTANCES)
def test_legacy_names_have_zero_self_dissimilarity(name):
    x = tf.constant(np.random.default_rng(7).normal(size=(6, 3)) * 100 + 1000)
    assert np.all(np.diag(pairwise_distances(x, distance=name).numpy()) == 0.0)


# ----------------------------------------------------------------------------- gradients
@every_distance
def test_gradients_are_finite_at_zero_distance(distance):
    """Identical rows (and two zero rows): the distance is 0 where sqrt has an infinite slope."""
    x = tf.Variable(
        [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [0.5, -1.0, 2.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    )
    with tf.GradientTape() as tape:
        total = (
            tf.reduce_sum(distance.pairwise(x))
            + tf.reduce_sum(distance.pairwise(x, x))
            + tf.reduce_sum(distance.paired(x, x))
            + tf.reduce_sum(distance.dissimilarity(distance.paired(x, tf.reverse(x, [0]))))
        )
    grad = tape.gradient(total, x)
    assert np.isfinite(total.numpy())
    assert np.all(np.isfinite(grad.numpy()))


@every_distance
def test_gradients_match_finite_differences(distance):
    """At distinct points, the analytic Jacobian equals the numerical one (float64)."""
    x, y = embeddings(8, n=4, m=3, dim=3)

    def f(a, b):
        return distance.pairwise(a, b), distance.paired(a[:3], b)

    for index in range(2):
        theoretical, numerical = tf.test.compute_gradient(
            lambda a, b, i=index: f(a, b)[i], [tf.constant(x), tf.constant(y)], delta=1e-6
        )
        for t, n in zip(theoretical, numerical, strict=True):
            np.testing.assert_allclose(t, n, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- dissimilarity
@every_distance
def test_dissimilarity_has_slope_minus_one_for_similarities(distance):
    """d_ap - d_an == s_an - s_ap for a similarity, == d_ap - d_an for a distance: a margin
    keeps its size whatever the kind."""
    values = tf.constant([0.3, -0.2, 0.9, 1.0], tf.float64)
    shifted = distance.dissimilarity(values + 0.25) - distance.dissimilarity(values)
    slope = -1.0 if distance.is_similarity else 1.0
    assert_close(shifted, np.full(4, 0.25 * slope))
    x, y = embeddings(9)
    values = distance.pairwise(tf.constant(x), tf.constant(y)).numpy()
    dis = distance.dissimilarity(tf.constant(values)).numpy()
    ap, an = values[:, 0], values[:, 1]
    hinge = dis[:, 0] - dis[:, 1]
    assert_close(hinge, an - ap if distance.is_similarity else ap - an)


@every_distance
def test_dissimilarity_orders_like_a_distance(distance):
    """Smaller = closer: the dissimilarity ranks like the distance the similarity stands for
    (Euclidean for RBF, angle for cosine, -dot for the dot product)."""
    x, y = embeddings(10, n=6, m=8)
    dis = pairwise_distances(tf.constant(x), tf.constant(y), distance=distance).numpy()
    if distance.normalize_embeddings:
        x, y = normalized(x), normalized(y)
    if isinstance(distance, RBFSimilarity):
        ranking = sp.cdist(x, y)
    elif isinstance(distance, DotProductSimilarity):
        ranking = -(x @ y.T)
    else:
        ranking = reference_pairwise(distance, x, y)
    np.testing.assert_array_equal(np.argsort(dis, axis=1), np.argsort(ranking, axis=1))
    assert distance.is_similarity == isinstance(distance, (DotProductSimilarity, RBFSimilarity))
    # normalising is idempotent, so the (normalised) rows give the same paired values
    paired = paired_distances(tf.constant(x), tf.constant(y[:6]), distance=distance)
    assert_close(paired, np.diag(dis[:, :6]))


@every_distance
def test_pairwise_distances_is_the_dissimilarity_of_pairwise(distance):
    x, y = embeddings(11)
    for args in [(x,), (x, y)]:
        tensors = [tf.constant(a) for a in args]
        want = distance.dissimilarity(distance.pairwise(*tensors)).numpy()
        assert_close(pairwise_distances(*tensors, distance=distance), want)
        assert_close(pairwise_dissimilarity_numpy(*args, distance=distance), want, atol=1e-6)
    want = distance.dissimilarity(distance.paired(tf.constant(x[:5]), tf.constant(y))).numpy()
    assert_close(paired_distances(tf.constant(x[:5]), tf.constant(y), distance=distance), want)


# ----------------------------------------------------------------------------- inputs, graph mode
def test_inputs_are_cast_to_one_dtype():
    x64 = tf.constant(np.random.default_rng(12).normal(size=(3, 2)))
    y32 = tf.cast(x64, tf.float32)
    assert LpDistance().pairwise(x64, y32).dtype == tf.float64
    assert LpDistance().pairwise(y32, x64).dtype == tf.float32
    assert LpDistance().paired(x64, y32).dtype == tf.float64
    assert LpDistance().pairwise(tf.constant([[0, 0], [3, 4]])).numpy().tolist() == [
        [0.0, 5.0],
        [5.0, 0.0],
    ]
    assert LpDistance().pairwise(x64, [[0.1, 0.2]]).numpy()[0, 0] == pytest.approx(
        np.linalg.norm(x64.numpy()[0] - [0.1, 0.2]),
        rel=1e-12,  # not rounded to float32
    )
    with pytest.raises(ValueError, match="shape"):
        LpDistance().pairwise(tf.zeros((2, 3, 4)))


@pytest.mark.parametrize("name", DISTANCES)
def test_images_are_refused_with_advice(name):
    """Images where embeddings belong (uint8, or (N, H, W[, C])) say to embed them first,
    rather than being cast and compared pixel by pixel."""
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    advice = r"got images of shape \({}\) \({}\): embed them first with Scorer.embed"
    for call, shape, dtype in [
        (lambda: pairwise_distances(images, distance=name), "4, 28, 28", "uint8"),
        (lambda: pairwise_distances(images.reshape(4, -1), distance=name), "4, 784", "uint8"),
        (lambda: paired_distances(images, images, distance=name), "4, 28, 28", "uint8"),
        (
            lambda: pairwise_dissimilarity_numpy(images[..., None] / 255.0, distance=name),
            "4, 28, 28, 1",
            "float64",
        ),
        (
            lambda: pairwise_dissimilarity_numpy(images.reshape(4, -1), distance=name),
            "4, 784",
            "uint8",
        ),
    ]:
        with pytest.raises(ValueError, match=advice.format(shape, dtype)):
            call()


@every_distance
def test_graph_mode_with_unknown_batch_size(distance):
    x, y = embeddings(13)
    spec = tf.TensorSpec([None, x.shape[1]], tf.float64)

    @tf.function(input_signature=[spec, spec])
    def all_three(a, b):
        return distance.pairwise(a), distance.pairwise(a, b), distance.paired(a[:5], b)

    for graph, eager in zip(
        all_three(tf.constant(x), tf.constant(y)),
        [
            distance.pairwise(tf.constant(x)),
            distance.pairwise(tf.constant(x), tf.constant(y)),
            distance.paired(tf.constant(x[:5]), tf.constant(y)),
        ],
        strict=True,
    ):
        assert_close(graph, eager.numpy(), rtol=1e-12)
    # a second batch size reuses the same graph
    assert all_three(tf.constant(x[:3]), tf.constant(y[:3]))[0].shape == (3, 3)
    assert all_three.experimental_get_tracing_count() == 1


# ----------------------------------------------------------------------------- get_distance, errors
def test_get_distance_accepts_objects_names_dicts_and_none():
    d = RBFSimilarity(sigma=2.0)
    assert get_distance(d) is d
    assert get_distance(None) == LpDistance()
    assert get_distance("euclidean") == LpDistance()
    assert get_distance("squared_euclidean") == LpDistance(p=2, power=2)
    assert get_distance("l1") == LpDistance(p=1)
    assert get_distance("cosine") == CosineSimilarity()
    assert DISTANCES == ("euclidean", "squared_euclidean", "l1", "cosine")
    for distance in ALL.values():
        assert get_distance(keras.saving.serialize_keras_object(distance)) == distance
    assert check_distance("l1") == "l1"
    assert [distance_name(name) for name in DISTANCES] == list(DISTANCES)
    assert distance_name(LpDistance(p=1)) == "l1"
    assert distance_name(d) == "RBFSimilarity(sigma=2.0, normalize_embeddings=False)"


@pytest.mark.parametrize(
    "bad",
    [
        "l3",
        "Euclidean",
        "",
        3,
        LpDistance,
        {"class_name": "Nope", "config": {}},
        keras.saving.serialize_keras_object(MeanReducer()),
    ],
    ids=["l3", "capitalised", "empty", "int", "class", "unknown_dict", "reducer_dict"],
)
def test_get_distance_rejects_bad_values_naming_the_argument(bad):
    with pytest.raises(ValueError, match=r"argument `distance`.*Received: distance="):
        get_distance(bad)
    with pytest.raises(ValueError, match="`distance`"):
        check_distance(bad)


@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda: LpDistance(p=3), "p"),
        (lambda: LpDistance(p=0), "p"),
        (lambda: LpDistance(p=1, power=2), "power"),
        (lambda: LpDistance(power=3), "power"),
        (lambda: RBFSimilarity(sigma=0.0), "sigma"),
        (lambda: RBFSimilarity(sigma=-1.0), "sigma"),
        (lambda: RBFSimilarity(sigma=float("nan")), "sigma"),
    ],
    ids=["p3", "p0", "power2_p1", "power3", "sigma0", "sigma_negative", "sigma_nan"],
)
def test_constructor_errors_name_the_argument(make, argument):
    with pytest.raises(ValueError, match=rf"Invalid value for argument `{argument}`.*Received"):
        make()


# ----------------------------------------------------------------------------- serialization
@every_distance
def test_serialization_round_trip(distance):
    config = keras.saving.serialize_keras_object(distance)
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(config)))
    assert type(restored) is type(distance)
    assert restored == distance and hash(restored) == hash(distance)
    assert restored.get_config() == distance.get_config()
    assert repr(restored) == repr(distance)
    x, y = embeddings(14)
    np.testing.assert_array_equal(restored.pairwise(x, y).numpy(), distance.pairwise(x, y).numpy())


def test_equality_is_on_type_and_config():
    assert LpDistance() == LpDistance(p=2, power=1, normalize_embeddings=False)
    assert LpDistance() != LpDistance(power=2)
    assert LpDistance() != LpDistance(normalize_embeddings=True)
    assert LpDistance(p=1) != LpDistance()
    assert RBFSimilarity(1) == RBFSimilarity(1.0) != RBFSimilarity(2.0)
    assert CosineSimilarity() != DotProductSimilarity(normalize_embeddings=True)
    assert LpDistance() != "euclidean"
    assert len(set(ALL.values())) == len(ALL)


# ----------------------------------------------------------------------------- memory
MEMORY_CODE = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
from oneshot.distances import LpDistance, pairwise_distances
e = np.random.default_rng(0).normal(size=(13180, 64)).astype(np.float32)
if sys.argv[1] == "pairwise_numpy":
    out = LpDistance(p=1).pairwise_numpy(e)
else:
    out = pairwise_distances(e, distance="l1")
assert out.shape == (13180, 13180), out.shape
row = np.abs(e[:3, None, :] - e[None, :, :]).sum(-1)
np.testing.assert_allclose(np.asarray(out[:3]), row, rtol=1e-5, atol=1e-4)
# VmHWM: this program's own peak RSS. (ru_maxrss would not do: Linux keeps it across execve,
# so it starts at the RSS of the parent that forked us, e.g. a pytest process of 2.8 GB.)
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
print(int(hwm.split()[1]) * 1024)
"""


@pytest.mark.parametrize("path", ["pairwise_numpy", "pairwise_distances"])
def test_l1_over_13180_embeddings_stays_under_2_5_gb(path):
    """13,180 x 64 float32 embeddings (the Omniglot evaluation set): the (N, N) float32 result
    is 0.69 GB; the N x N x D differences would be 44 GB. Peak RSS (TensorFlow included,
    ~0.7 GB) must stay under 2.5 GB. Measured on 2 busy cores: ~35 s and 1.56 GB for
    ``pairwise_numpy``, 2.32 GB for the eager ``pairwise_distances``."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(MEMORY_CODE), path],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    peak = int(result.stdout.split()[-1])
    assert peak < 2.5e9, f"{path}: peak RSS {peak / 1e9:.2f} GB"
