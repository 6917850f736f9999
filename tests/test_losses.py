"""Offline losses: the pure functions, the siamese ``PairContrastiveLoss`` and the loss layers of
triplet and quadruplet models, against numpy loops (float64); hand-worked cases; bad input; and
saved models of every loss and layer loading after only ``import oneshot``.

The in-batch losses are tested in tests/test_inbatch_losses.py.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from oneshot.distances import DISTANCES, CosineSimilarity, LpDistance, get_distance
from oneshot.losses import (
    ArcFaceLoss,
    CircleLoss,
    ContrastiveLoss,
    CosFaceLoss,
    GeneralizedLiftedStructureLoss,
    LiftedStructureLoss,
    MarginLoss,
    MultiSimilarityLoss,
    NormalizedSoftmaxLoss,
    NPairsLoss,
    NTXentLoss,
    OnlineContrastiveLoss,
    OnlineQuadrupletLoss,
    OnlineTripletLoss,
    PairContrastiveLoss,
    ProxyAnchorLoss,
    ProxyNCALoss,
    QuadrupletLoss,
    QuadrupletLossLayer,
    SoftTripleLoss,
    SphereFaceLoss,
    SubCenterArcFaceLoss,
    SupConLoss,
    TripletLossLayer,
    TripletMarginLoss,
    attach,
    check_quadruplet_margins,
    contrastive_loss,
    quadruplet_loss,
    triplet_loss,
    triplet_loss_from_distances,
    tuple_adaptive_margins,
)
from oneshot.miners import (
    BatchHardMiner,
    DistanceWeightedMiner,
    HardPairMiner,
    MultiSimilarityMiner,
    SemiHardMiner,
)
from oneshot.reducers import MeanNonZeroReducer, MeanReducer, PerAnchorReducer, SumReducer

RTOL = 1e-5


def np_paired(a: np.ndarray, b: np.ndarray, distance: str) -> np.ndarray:
    """Dissimilarity of matching rows, one row at a time."""
    out = []
    for x, y in zip(a, b, strict=True):
        if distance == "euclidean":
            out.append(np.sqrt(np.sum((x - y) ** 2)))
        elif distance == "squared_euclidean":
            out.append(np.sum((x - y) ** 2))
        elif distance == "l1":
            out.append(np.sum(np.abs(x - y)))
        else:
            out.append(1.0 - x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))
    return np.array(out)


def numeric_gradient(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central finite differences of the scalar ``f`` at ``x``."""
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[idx] = h
        grad[idx] = (f(x + step) - f(x - step)) / (2 * h)
    return grad


# --- contrastive --------------------------------------------------------------------------------


def np_contrastive(y, d, margin, pos_margin=0.0):
    return np.array([yi * max(di - pos_margin, 0) ** 2 + (1 - yi) * max(margin - di, 0) ** 2
                     for yi, di in zip(y, d, strict=True)])  # fmt: skip


def test_contrastive_loss_matches_numpy_and_hand_case():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 50).astype(np.float64)
    d = rng.uniform(0, 2, 50)
    d[:5] = 0.0
    for pos_margin in (0.0, 0.3):
        got = contrastive_loss(y, d, margin=1.3, pos_margin=pos_margin).numpy()
        np.testing.assert_allclose(got, np_contrastive(y, d, 1.3, pos_margin), rtol=1e-12)
    # Same pair at 0.5: 0.5^2 = 0.25 (0.3^2 = 0.09 with pos_margin 0.2); different pair at 0.25:
    # (1 - 0.25)^2 = 0.5625; different pair at 3, beyond the margin: 0.
    got = contrastive_loss([[1.0], [0.0], [0.0]], [[0.5], [0.25], [3.0]]).numpy()
    np.testing.assert_allclose(got, [0.25, 0.5625, 0.0])
    assert float(contrastive_loss([1.0], [0.5], pos_margin=0.2)[0]) == pytest.approx(0.09)


def test_pair_contrastive_loss_on_labelled_distances():
    """Siamese: ``y_true`` 1 = same class, ``y_pred`` the model's pair distance (B,) or (B, 1)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 40).astype(np.float64)
    d = rng.uniform(0, 2, (40, 1))
    loss = PairContrastiveLoss(margin=1.3, dtype="float64")
    per_pair = np_contrastive(y, d[:, 0], 1.3)
    assert float(loss(y, d)) == pytest.approx(per_pair.mean(), rel=1e-12)
    weights = rng.uniform(0, 2, 40)
    weighted = float(loss(y, d, sample_weight=weights))
    assert weighted == pytest.approx((weights * per_pair).mean(), rel=1e-12)
    none = PairContrastiveLoss(1.3, reduction="none", dtype="float64")(y, d)
    np.testing.assert_allclose(none.numpy(), per_pair, rtol=1e-12)
    # Gradient: d/dd of the mean is (2 y d - 2 (1 - y) max(m - d, 0)) / B.
    x = tf.Variable(d)
    with tf.GradientTape() as tape:
        value = loss(y, x)
    want = (2 * y * d[:, 0] - 2 * (1 - y) * np.maximum(1.3 - d[:, 0], 0)) / 40
    np.testing.assert_allclose(tape.gradient(value, x).numpy()[:, 0], want, rtol=1e-12)
    clone = PairContrastiveLoss.from_config(loss.get_config())
    assert (clone.margin, clone.name, clone.dtype) == (1.3, "contrastive_loss", "float64")


@pytest.mark.parametrize("distance", DISTANCES)
def test_contrastive_gradient_is_finite_at_zero_distance(distance):
    e = tf.Variable(np.ones((4, 3)))
    with tf.GradientTape() as tape:
        d = get_distance(distance).paired(e, tf.ones((4, 3), tf.float64))
        loss = tf.reduce_mean(
            contrastive_loss([1.0, 0.0, 1.0, 0.0], get_distance(distance).dissimilarity(d))
        )
    grad = tape.gradient(loss, e)
    assert np.isfinite(float(loss)) and grad is not None and np.all(np.isfinite(grad.numpy()))


# --- triplet ------------------------------------------------------------------------------------


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("soft_margin", [False, True], ids=["hinge", "soft"])
def test_triplet_loss_matches_numpy(distance, soft_margin):
    rng = np.random.default_rng(0)
    a, p, n = (rng.normal(size=(20, 4)) for _ in range(3))

    def reference(x):
        diff = np_paired(x, p, distance) - np_paired(x, n, distance)
        return np.log1p(np.exp(diff)) if soft_margin else np.maximum(diff + 0.3, 0)

    for dist in (distance, get_distance(distance)):  # a legacy name or a Distance
        got = triplet_loss(a, p, n, margin=0.3, distance=dist, soft_margin=soft_margin)
        np.testing.assert_allclose(got.numpy(), reference(a), rtol=1e-10, atol=1e-12)
    assert reference(a).sum() > 0
    x = tf.Variable(a)
    with tf.GradientTape() as tape:
        value = tf.reduce_sum(triplet_loss(x, p, n, 0.3, distance, soft_margin))
    want = numeric_gradient(lambda z: reference(z).sum(), a)
    np.testing.assert_allclose(tape.gradient(value, x).numpy(), want, rtol=RTOL, atol=1e-8)


def test_triplet_hand_case_and_easy_batch_is_exactly_zero():
    rng = np.random.default_rng(0)
    a, p, n = np.array([[0.0, 0.0]]), np.array([[1.0, 0.0]]), np.array([[0.0, 1.5]])
    # squared (default): 1 - 2.25 + 0.2 < 0 -> 0; Euclidean, margin 0.6: 1 - 1.5 + 0.6 = 0.1.
    assert float(triplet_loss(a, p, n)[0]) == 0.0
    assert float(triplet_loss(a, p, n, 0.6, "euclidean")[0]) == pytest.approx(0.1)
    # cosine with a = (1, 1), p = (1, 0), n = (0, 1): d_ap = d_an = 1 - 1/sqrt(2) -> the margin.
    ones, n_cos = np.array([[1.0, 1.0]]), np.array([[0.0, 1.0]])
    assert float(triplet_loss(ones, p, n_cos, 0.2, "cosine")[0]) == pytest.approx(0.2)
    np.testing.assert_allclose(
        triplet_loss_from_distances([1.0, 0.2], [0.5, 2.0], margin=0.2).numpy(), [0.7, 0.0]
    )
    far = rng.normal(size=(16, 4)) + 10.0
    easy = triplet_loss(-far, -far + 0.01, far, margin=0.2, distance="euclidean")
    assert np.all(easy.numpy() == 0.0)


@pytest.mark.parametrize("distance", DISTANCES)
def test_triplet_gradients_finite_when_all_embeddings_coincide(distance):
    e = tf.Variable(np.ones((5, 4)))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(triplet_loss(e, e * 1.0, e * 1.0, distance=distance))
    grad = tape.gradient(loss, e)
    assert float(loss) == pytest.approx(0.2)  # d_ap = d_an = 0: the margin
    assert grad is not None and np.all(np.isfinite(grad.numpy()))


@pytest.mark.parametrize("distance", ["squared_euclidean", "cosine"])
def test_triplet_layer_adds_the_reduced_loss_and_returns_distances(distance):
    rng = np.random.default_rng(0)
    a, p, n = (rng.normal(size=(8, 5)) for _ in range(3))
    layer = TripletLossLayer(margin=0.5, distance=distance, dtype="float64")
    out = layer([a, p, n])
    assert out.shape == (8, 2) and layer.compute_output_shape([(None, 5)] * 3) == (None, 2)
    np.testing.assert_allclose(out[:, 0], np_paired(a, p, distance), rtol=1e-10)
    np.testing.assert_allclose(out[:, 1], np_paired(a, n, distance), rtol=1e-10)
    mean = float(tf.reduce_mean(triplet_loss(a, p, n, 0.5, distance)))
    assert mean > 0 and len(layer.losses) == 1
    assert float(layer.losses[0]) == pytest.approx(mean, rel=1e-12)  # MeanReducer by default
    summed = TripletLossLayer(0.5, distance, reducer=SumReducer(), dtype="float64")
    summed([a, p, n])
    assert float(summed.losses[0]) == pytest.approx(8 * mean, rel=1e-12)
    per_triplet = triplet_loss(a, p, n, 0.5, distance).numpy()
    nonzero = TripletLossLayer(0.5, distance, reducer=MeanNonZeroReducer(), dtype="float64")
    nonzero([a, p, n])
    want = per_triplet.sum() / (per_triplet > 0).sum()
    assert float(nonzero.losses[0]) == pytest.approx(want, rel=1e-12)
    clone = TripletLossLayer.from_config(layer.get_config())
    assert (clone.margin, clone.distance, clone.soft_margin) == (0.5, get_distance(distance), False)
    assert clone.reducer == MeanReducer()


# --- quadruplet ---------------------------------------------------------------------------------


def np_quadruplet(dap, dan, dnn, a1, a2, squared, adaptive):
    if squared:
        dap, dan, dnn = dap**2, dan**2, dnn**2
    if adaptive:
        gap = max(np.concatenate([dan, dnn]).mean() - dap.mean(), 0.0)
        a1, a2 = gap, 0.5 * gap
    return np.maximum(dap - dan + a1, 0) + np.maximum(dap - dnn + a2, 0)


@pytest.mark.parametrize("squared", [True, False], ids=["squared", "plain"])
@pytest.mark.parametrize("adaptive", [False, True], ids=["fixed", "adaptive"])
def test_quadruplet_loss_matches_numpy(squared, adaptive):
    rng = np.random.default_rng(0)
    dap, dan, dnn = (rng.uniform(0, 1, 64) for _ in range(3))
    dap[:4] = 0.0
    got = quadruplet_loss(dap, dan, dnn, 0.4, 0.1, squared=squared, adaptive_margin=adaptive)
    want = np_quadruplet(dap, dan, dnn, 0.4, 0.1, squared, adaptive)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-15)
    assert want.sum() > 0
    if adaptive:  # its margins' gradient: test_adaptive_margin_is_constant_for_the_gradient
        return
    x = tf.Variable(dap)
    with tf.GradientTape() as tape:
        value = tf.reduce_sum(quadruplet_loss(x, dan, dnn, 0.4, 0.1, squared=squared))
    want_grad = numeric_gradient(
        lambda z: np_quadruplet(z, dan, dnn, 0.4, 0.1, squared, False).sum(), dap
    )
    np.testing.assert_allclose(tape.gradient(value, x).numpy(), want_grad, rtol=RTOL, atol=1e-8)


def test_quadruplet_hand_case_and_easy_batch():
    # g^2: 0.01 - 0.64 + 0.5 < 0 -> 0; 0.01 - 0.25 + 0.3 = 0.06.
    got = quadruplet_loss([0.1], [0.8], [0.5], alpha1=0.5, alpha2=0.3).numpy()
    np.testing.assert_allclose(got, [0.06], rtol=1e-5)
    easy = quadruplet_loss(np.zeros(8), np.ones(8), np.ones(8), alpha1=0.5, alpha2=0.25)
    assert np.all(easy.numpy() == 0.0)


def test_adaptive_margin_is_constant_for_the_gradient():
    dap = tf.Variable([0.1, 0.3, 0.2], dtype=tf.float64)
    dan = tf.constant([0.5, 0.6, 0.7], tf.float64)
    dnn = tf.constant([0.4, 0.9, 0.8], tf.float64)
    with tf.GradientTape() as tape:
        adaptive = tf.reduce_sum(
            quadruplet_loss(dap, dan, dnn, squared=False, adaptive_margin=True)
        )
    grad_adaptive = tape.gradient(adaptive, dap).numpy()
    a1, a2 = (float(x) for x in tuple_adaptive_margins(dap, dan, dnn))
    np.testing.assert_allclose([a1, a2], [0.45, 0.225])  # mu_n 0.65, mu_p 0.2
    with tf.GradientTape() as tape:
        fixed = tf.reduce_sum(quadruplet_loss(dap, dan, dnn, a1, a2, squared=False))
    np.testing.assert_allclose(grad_adaptive, tape.gradient(fixed, dap).numpy())
    assert float(adaptive) == pytest.approx(float(fixed))


def test_unreachable_margin_warns_and_reachable_does_not():
    with pytest.warns(UserWarning, match="alpha1=1.0 can never be met"):
        QuadrupletLossLayer(alpha1=1.0, alpha2=0.5, max_distance=1.0)
    with pytest.warns(UserWarning, match="alpha2=0.5 can never be met"):
        check_quadruplet_margins(0.4, 0.5, max_distance=0.5, squared=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        QuadrupletLossLayer(alpha1=0.5, alpha2=0.25, max_distance=1.0)
        QuadrupletLossLayer(alpha1=1.0, alpha2=0.5, max_distance=2.0)  # L2 on the unit sphere
        QuadrupletLossLayer(alpha1=1.0, alpha2=0.5, max_distance=1.0, adaptive_margin=True)


@pytest.mark.parametrize("adaptive", [False, True], ids=["fixed", "adaptive"])
def test_quadruplet_layer_adds_the_reduced_loss(adaptive):
    rng = np.random.default_rng(0)
    d = [rng.uniform(0, 1, (6, 1)) for _ in range(3)]
    kwargs = dict(alpha1=0.6, alpha2=0.3, squared=False, adaptive_margin=adaptive)
    layer = QuadrupletLossLayer(**kwargs, dtype="float64")
    out = layer(d)
    assert out.shape == (6, 3) and layer.compute_output_shape([(None, 1)] * 3) == (None, 3)
    np.testing.assert_allclose(out.numpy(), np.concatenate(d, axis=1))
    mean = float(tf.reduce_mean(quadruplet_loss(*d, **kwargs)))
    want = np_quadruplet(*(x[:, 0] for x in d), 0.6, 0.3, False, adaptive).mean()
    assert mean == pytest.approx(want, rel=1e-12) and want > 0
    assert float(layer.losses[0]) == pytest.approx(mean, rel=1e-12)  # MeanReducer by default
    summed = QuadrupletLossLayer(**kwargs, reducer="sum", dtype="float64")
    summed(d)
    assert float(summed.losses[0]) == pytest.approx(6 * mean, rel=1e-12)
    config = QuadrupletLossLayer.from_config(layer.get_config()).get_config()
    assert config == layer.get_config()


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda: PairContrastiveLoss(margin=-1.0), "margin"),
        (lambda: PairContrastiveLoss(margin=float("nan")), "margin"),
        (lambda: TripletLossLayer(margin=-0.2), "margin"),
        (lambda: TripletLossLayer(distance="dot"), "distance"),
        (lambda: TripletLossLayer(reducer="median"), "reducer"),
        (lambda: QuadrupletLossLayer(alpha1=-1.0), "alpha1"),
        (lambda: QuadrupletLossLayer(alpha2=-0.1), "alpha2"),
        (lambda: QuadrupletLossLayer(w2=-0.5, adaptive_margin=True), "w2"),
        (
            lambda: triplet_loss(np.ones((2, 2)), np.ones((2, 2)), np.ones((2, 2)), distance="l3"),
            "distance",
        ),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(make, argument):
    with pytest.raises(ValueError, match=rf"`{argument}\b"):
        make()


# --- save / load of every loss and layer --------------------------------------------------------


def serialization_cases() -> dict[str, object]:
    """One instance of every loss class and loss layer (several in-batch configurations)."""
    return {
        "triplet_batch_hard": TripletMarginLoss(0.3, miner=BatchHardMiner(), reducer=MeanReducer()),
        "triplet_semi_hard_cosine": TripletMarginLoss(
            miner=SemiHardMiner(fallback="hardest"), distance=CosineSimilarity()
        ),
        "contrastive_ms": ContrastiveLoss(
            0.1, 0.9, miner=MultiSimilarityMiner(), reducer=PerAnchorReducer()
        ),
        "quadruplet_adaptive": QuadrupletLoss(adaptive_margin=True, distance=LpDistance(power=2)),
        "online_triplet": OnlineTripletLoss("batch_all", 0.3, distance="l1"),
        "online_quadruplet": OnlineQuadrupletLoss(0.4, 0.2, adaptive=False),
        "online_contrastive": OnlineContrastiveLoss("all", 1.2),
        "pair_contrastive": PairContrastiveLoss(margin=0.8),
        "triplet_layer": TripletLossLayer(0.4, "euclidean", soft_margin=True, reducer=SumReducer()),
        "quadruplet_layer": QuadrupletLossLayer(0.5, 0.25, squared=False, max_distance=1.0),
        # classification / proxy losses (labels 0..4): their class weights are built by the
        # first loss computation and saved with the compiled loss
        "arcface": ArcFaceLoss(5, scale=8.0),
        "cosface": CosFaceLoss(5, scale=8.0, lr_multiplier=10.0),
        "sphereface": SphereFaceLoss(5, base=5.0, lambda_min=5.0),  # lambda = 5 at every step
        "normalized_softmax": NormalizedSoftmaxLoss(5, temperature=0.5),
        "sub_center_arcface": SubCenterArcFaceLoss(5, centers_per_class=2, scale=8.0),
        "proxy_anchor": ProxyAnchorLoss(5, alpha=4.0),
        "proxy_nca": ProxyNCALoss(5, embedding_dim=3),
        "soft_triple": SoftTripleLoss(5, centers_per_class=3),
        "lifted_hard_pairs": LiftedStructureLoss(0.8, miner=HardPairMiner(0.1, 1.0)),
        "generalized_lifted": GeneralizedLiftedStructureLoss(0.5, distance=CosineSimilarity()),
        "multi_similarity": MultiSimilarityLoss(miner=MultiSimilarityMiner(0.1)),
        "margin_distance_weighted_unit": MarginLoss(
            0.2, 1.0, miner=DistanceWeightedMiner(3, seed=0)
        ),
        "npairs": NPairsLoss(),
        "ntxent": NTXentLoss(0.2, miner=MultiSimilarityMiner(0.2)),
        "supcon": SupConLoss(reducer=SumReducer()),
        "circle_unit": CircleLoss(gamma=64.0, margin=0.25),
    }


@pytest.mark.parametrize("name", list(serialization_cases()))
def test_serialize_deserialize_round_trip(name):
    obj = serialization_cases()[name]
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj))
    assert type(restored) is type(obj)
    assert restored.get_config() == obj.get_config()


def model_for(name: str, obj) -> tuple[keras.Model, dict[str, np.ndarray]]:
    """A tiny model using ``obj`` and a batch for it (inputs x0, x1, ...; labels y if any)."""
    rng = np.random.default_rng(len(name))
    if name.endswith("_layer"):
        width = 1 if name.startswith("quadruplet") else 4
        inputs = [keras.Input((width,)) for _ in range(3)]
        dense = keras.layers.Dense(width, activation="sigmoid")
        model = keras.Model(inputs, obj([dense(x) for x in inputs]))
        model.compile(keras.optimizers.Adam(1e-3))
        return model, {f"x{i}": rng.normal(size=(8, width)).astype("float32") for i in range(3)}
    if name == "pair_contrastive":
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="softplus")])
        model.compile(keras.optimizers.Adam(1e-3), loss=obj)
        return model, {"x0": rng.normal(size=(8, 4)).astype("float32"), "y": np.tile([0, 1], 4)}
    unit = [keras.layers.UnitNormalization()] if name.endswith("_unit") else []
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), *unit])
    if getattr(obj, "head", None) is not None:  # class weights or a queue: in the model
        model = attach(model, obj)
    model.compile(keras.optimizers.Adam(1e-3), loss=obj)
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 4])
    return model, {"x0": rng.normal(size=(12, 4)).astype("float32"), "y": labels}


def model_loss(model: keras.Model, data) -> float:
    """The compiled loss plus the layers' added losses on the saved batch."""
    x = [data[k] for k in sorted(data) if k.startswith("x")]
    x = x[0] if len(x) == 1 else x
    return float(model.compute_loss(x=x, y=data["y"] if "y" in data else None, y_pred=model(x)))


LOAD_SCRIPT = f"""
import json, sys
import numpy as np
import oneshot  # the only oneshot import: it must register every class the models hold
import keras
{inspect.getsource(model_loss)}
out = {{}}
for path in sys.argv[1:]:
    model = keras.saving.load_model(path)
    with np.load(path + ".npz") as data:
        loss = keras.saving.serialize_keras_object(model.loss)
        out[path] = [model.get_config(), loss, model_loss(model, data)]
print(json.dumps(out))
"""


def test_every_loss_and_layer_saves_and_loads_after_only_import_oneshot(tmp_path):
    """.keras files loaded by a fresh interpreter that imports nothing of oneshot but the
    package: same configs, same loss values."""
    expected = {}
    for name, obj in serialization_cases().items():
        model, data = model_for(name, obj)
        path = str(tmp_path / f"{name}.keras")
        model.save(path)
        np.savez(path + ".npz", **data)
        config = [model.get_config(), keras.saving.serialize_keras_object(model.loss)]
        expected[path] = [*json.loads(json.dumps(config)), model_loss(model, data)]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # this checkout's oneshot
    path = os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))
    env = {
        **os.environ,
        "KERAS_BACKEND": "tensorflow",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONPATH": path,
    }
    result = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, *expected],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    for path, (config, loss, value) in expected.items():
        got_config, got_loss, got_value = loaded[path]
        assert got_config == config and got_loss == loss, path
        assert got_value == pytest.approx(value, rel=1e-6) and value > 0, path


def test_every_triplet_entry_point_defaults_to_the_euclidean_distance():
    """One default for ``triplet_loss``, ``TripletLossLayer``, ``build_triplet``,
    ``TripletRun`` and ``TripletMarginLoss``: the Euclidean distance (Eric's experiments pass
    ``"squared_euclidean"`` explicitly)."""
    import inspect

    from oneshot.models import build_triplet
    from oneshot.training.configs import TripletRun

    a, p, n = np.zeros((1, 2)), np.array([[3.0, 4.0]]), np.array([[6.0, 8.0]])
    assert float(triplet_loss(a, p, n, margin=0.0)[0]) == 0.0  # 5 - 10 < 0 in L2, also squared
    assert float(triplet_loss(a, n, p, margin=0.0)[0]) == pytest.approx(5.0)  # 10 - 5, not 75
    assert TripletLossLayer().distance == LpDistance()
    assert TripletMarginLoss().distance == LpDistance()
    assert inspect.signature(build_triplet).parameters["distance"].default == "euclidean"
    assert TripletRun(name="x").distance == "euclidean"
