"""Classification and proxy losses (ArcFace, CosFace, SphereFace, normalized softmax, sub-centre
ArcFace, ProxyAnchor, ProxyNCA, SoftTriple) and their class weights (``ClassProxies``).

Values and gradients (w.r.t. the embeddings AND the proxies) are checked against brute-force
numpy references written as loops over samples and classes (float64, relative error < 1e-5;
gradients by central finite differences of the reference). Then: hand-worked cases, finite
gradients at zero embeddings and at embeddings equal (or opposite) to a proxy, the SphereFace
schedule, bad input, serialization, the learning-rate multiplier under Adam, one ``fit`` step
per loss on real MNIST P x K batches, exact resume from a run checkpoint, and a saved
``model.keras`` that holds the embedding network alone.
"""

from __future__ import annotations

import io
import math
import warnings
import zipfile

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

import oneshot
from oneshot.data import load_mnist
from oneshot.data.samplers import pk_dataset
from oneshot.distances import CosineSimilarity
from oneshot.losses import (
    ArcFaceLoss,
    ClassProxies,
    CosFaceLoss,
    NormalizedSoftmaxLoss,
    ProxyAnchorLoss,
    ProxyNCALoss,
    SoftTripleLoss,
    SphereFaceLoss,
    SubCenterArcFaceLoss,
    sphereface_lambda,
)
from oneshot.models import DISTANCE_TAG, LOSS_HEAD, build_online, saveable_model
from oneshot.models.networks import conv4
from oneshot.training.callbacks import RunCheckpoint, read_checkpoint, restore_checkpoint

F64 = "float64"
RTOL = 1e-5
LABELS = np.array([0, 0, 1, 1, 2, 2, 3, 4])  # class 5 of 6 is absent from the batch
NUM_CLASSES, DIM = 6, 3


# --- brute-force references: loops over samples and classes ------------------------------------


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def cosines(x: np.ndarray, w: np.ndarray, k: int = 1) -> np.ndarray:
    """(B, C, K): cosine of sample i with centre j of class c (row c * K + j of w)."""
    out = np.zeros((len(x), len(w) // k, k))
    for i, c, j in np.ndindex(out.shape):
        out[i, c, j] = unit(x[i]) @ unit(w[c * k + j])
    return out


def cross_entropy(logits: np.ndarray, labels) -> np.ndarray:
    out = []
    for row, y in zip(logits, labels, strict=True):
        top = row.max()
        out.append(top + math.log(sum(math.exp(v - top) for v in row)) - row[y])
    return np.array(out)


def ref_normalized_softmax(x, w, y, temperature=0.05):
    return cross_entropy(cosines(x, w)[:, :, 0] / temperature, y)


def ref_cosface(x, w, y, scale=64.0, margin=0.35):
    logits = cosines(x, w)[:, :, 0]
    for i, c in enumerate(y):
        logits[i, c] -= margin
    return cross_entropy(scale * logits, y)


def ref_arcface(x, w, y, scale=64.0, margin=0.5, k=1):
    logits = cosines(x, w, k).max(axis=-1)
    for i, c in enumerate(y):
        logits[i, c] = math.cos(math.acos(logits[i, c]) + margin)
    return cross_entropy(scale * logits, y)


def ref_sphereface(x, w, y, lam, margin=4):
    logits = np.zeros((len(x), len(w)))
    for i, c in np.ndindex(logits.shape):
        norm, cos = np.linalg.norm(x[i]), unit(x[i]) @ unit(w[c])
        if c != y[i]:
            logits[i, c] = norm * cos
            continue
        theta = math.acos(cos)
        k = min(math.floor(margin * theta / math.pi), margin - 1)
        psi = (-1) ** k * math.cos(margin * theta) - 2 * k
        logits[i, c] = norm * (lam * cos + psi) / (1 + lam)
    return cross_entropy(logits, y)


def ref_proxy_anchor(x, w, y, alpha=32.0, delta=0.1):
    cos = cosines(x, w)[:, :, 0]
    present = sorted(set(y))
    pull = sum(
        math.log(
            1 + sum(math.exp(-alpha * (cos[i, c] - delta)) for i in range(len(x)) if y[i] == c)
        )
        for c in present
    )
    push = sum(
        math.log(1 + sum(math.exp(alpha * (cos[i, c] + delta)) for i in range(len(x)) if y[i] != c))
        for c in range(len(w))
    )
    return np.full(len(x), pull / len(present) + push / len(w))


def ref_proxy_nca(x, w, y, scale=1.0):
    logits = np.zeros((len(x), len(w)))
    for i, c in np.ndindex(logits.shape):
        logits[i, c] = -scale * np.sum((unit(x[i]) - unit(w[c])) ** 2)
    return cross_entropy(logits, y)


def ref_soft_triple(x, w, y, k=10, la=20.0, gamma=0.1, tau=0.2, delta=0.01):
    cos = cosines(x, w, k)
    logits = np.zeros(cos.shape[:2])
    for i, c in np.ndindex(logits.shape):
        weights = np.exp(cos[i, c] / gamma) / np.exp(cos[i, c] / gamma).sum()
        logits[i, c] = la * (weights @ cos[i, c] - (delta if c == y[i] else 0.0))
    n = len(w) // k
    reg = 0.0
    for c in range(n):
        for t in range(k):
            for s in range(t + 1, k):
                reg += math.sqrt(2 + 1e-5 - 2 * unit(w[c * k + t]) @ unit(w[c * k + s]))
    reg = reg / (n * k * (k - 1)) if k > 1 else 0.0
    return cross_entropy(logits, y) + tau * reg


# name: (loss class, its kwargs, reference on (x, w, y), centres per class)
CASES = {
    "normalized_softmax": (NormalizedSoftmaxLoss, {}, ref_normalized_softmax, 1),
    "normalized_softmax_t0.5": (
        NormalizedSoftmaxLoss,
        {"temperature": 0.5},
        lambda x, w, y: ref_normalized_softmax(x, w, y, 0.5),
        1,
    ),
    "cosface": (CosFaceLoss, {}, ref_cosface, 1),
    "cosface_s4": (
        CosFaceLoss,
        {"scale": 4.0, "margin": 0.2},
        lambda x, w, y: ref_cosface(x, w, y, 4.0, 0.2),
        1,
    ),
    "arcface": (ArcFaceLoss, {}, ref_arcface, 1),
    "arcface_s4_lr3": (
        ArcFaceLoss,
        {"scale": 4.0, "margin": 0.3, "lr_multiplier": 3.0},
        lambda x, w, y: ref_arcface(x, w, y, 4.0, 0.3),
        1,
    ),
    "sub_center_arcface": (
        SubCenterArcFaceLoss,
        {"scale": 8.0},
        lambda x, w, y: ref_arcface(x, w, y, 8.0, 0.5, k=3),
        3,
    ),
    "proxy_anchor": (ProxyAnchorLoss, {}, ref_proxy_anchor, 1),
    "proxy_anchor_a4": (
        ProxyAnchorLoss,
        {"alpha": 4.0, "delta": 0.3, "lr_multiplier": 1.0},
        lambda x, w, y: ref_proxy_anchor(x, w, y, 4.0, 0.3),
        1,
    ),
    "proxy_nca": (ProxyNCALoss, {}, ref_proxy_nca, 1),
    "proxy_nca_s9": (ProxyNCALoss, {"scale": 9.0}, lambda x, w, y: ref_proxy_nca(x, w, y, 9.0), 1),
    "soft_triple": (SoftTripleLoss, {}, ref_soft_triple, 10),
    "soft_triple_k3": (
        SoftTripleLoss,
        {"centers_per_class": 3, "la": 5.0, "gamma": 0.5, "tau": 1.0, "delta": 0.2},
        lambda x, w, y: ref_soft_triple(x, w, y, 3, 5.0, 0.5, 1.0, 0.2),
        3,
    ),
    # SphereFace at step 3 of lambda = max(30 (1 + 0.5 t)^-1, 2) = 12; and at lambda_min = 0.5
    "sphereface": (
        SphereFaceLoss,
        {"base": 30.0, "gamma": 0.5, "lambda_min": 2.0},
        lambda x, w, y: ref_sphereface(x, w, y, 12.0),
        1,
    ),
    "sphereface_m3": (
        SphereFaceLoss,
        {"margin": 3, "base": 0.5, "lambda_min": 0.5},
        lambda x, w, y: ref_sphereface(x, w, y, 0.5, margin=3),
        1,
    ),
}


def batch(seed: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(len(LABELS), DIM)), rng.normal(size=(NUM_CLASSES * k, DIM))


def numeric_gradient(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[idx] = h
        grad[idx] = (f(x + step) - f(x - step)) / (2 * h)
    return grad


def loss_with_proxies(cls, kwargs, w: np.ndarray, dtype: str = F64):
    """The loss with its proxies built and set to ``w`` (raw = w / lr_multiplier)."""
    loss = cls(NUM_CLASSES, **kwargs, embedding_dim=DIM, dtype=dtype)
    loss.head.build((None, DIM))
    loss.head.raw.assign((w / loss.head.lr_multiplier).astype(dtype))
    if isinstance(loss, SphereFaceLoss):
        loss.head.step.assign(3)
    return loss


def value_and_gradients(loss, x: np.ndarray, labels=LABELS):
    """Per-sample values and the gradients of their mean w.r.t. the embeddings and the proxies
    W (= the gradient w.r.t. the stored raw variable / lr_multiplier)."""
    xv = tf.Variable(x)
    with tf.GradientTape() as tape:
        per_sample = loss.compute(labels, xv)
        mean = tf.reduce_mean(per_sample)
    gx, graw = tape.gradient(mean, [xv, loss.head.raw])
    return per_sample.numpy(), gx.numpy(), graw.numpy() / loss.head.lr_multiplier


@pytest.mark.parametrize("case", CASES)
def test_values_and_gradients_match_brute_force(case):
    cls, kwargs, reference, k = CASES[case]
    x, w = batch(seed=len(case), k=k)
    loss = loss_with_proxies(cls, kwargs, w)
    per_sample, gx, gw = value_and_gradients(loss, x)
    want = reference(x, w, LABELS)
    assert per_sample.shape == (len(LABELS),) and want.mean() > 0
    np.testing.assert_allclose(per_sample, want, rtol=RTOL, atol=1e-12)
    want_gx = numeric_gradient(lambda z: reference(z, w, LABELS).mean(), x)
    want_gw = numeric_gradient(lambda v: reference(x, v, LABELS).mean(), w)
    for got, expected in ((gx, want_gx), (gw, want_gw)):
        assert np.abs(expected).max() > 1e-6  # not vacuous
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=1e-7 * np.abs(expected).max())
    if isinstance(loss, SphereFaceLoss):
        loss.head.step.assign(3)  # computing the loss advanced it
    assert float(loss(LABELS, x)) == pytest.approx(want.mean(), rel=RTOL)  # Keras's mean


def test_sphereface_margin_covers_every_interval_of_psi():
    """The reference cases reach k = 0..3 of psi for m = 4 (the piecewise definition)."""
    x, w = batch(seed=len("sphereface"), k=1)
    theta = np.arccos([cosines(x, w)[i, c, 0] for i, c in enumerate(LABELS)])
    assert len({min(int(4 * t / math.pi), 3) for t in theta}) >= 3


def test_hand_worked_cases():
    """Embedding = class 0's weight, class 1's weight orthogonal: cos = (1, 0).
    Normalized softmax (T = 0.5): log(1 + e^(-2)). CosFace (s = 2, m = 0.5): log(1 + e^(-1)).
    ArcFace (s = 2, m = pi/2): cos(0 + pi/2) = 0, so log(2). ProxyNCA (s = 1): distances
    (0, 2), log(1 + e^(-2)). ProxyAnchor (alpha = 1, delta = 0): log(1 + e^-1) for the pull
    of class 0, and (log 1 + log(1 + e^0)) / 2 for the pushes."""
    w = np.array([[1.0, 0.0], [0.0, 1.0]])
    x, y = np.array([[3.0, 0.0]]), np.array([0])

    def value(loss):
        loss.head.build((None, 2))
        loss.head.raw.assign(w / loss.head.lr_multiplier)
        return float(loss(y, x))

    kw = {"num_classes": 2, "dtype": F64}
    assert value(NormalizedSoftmaxLoss(temperature=0.5, **kw)) == pytest.approx(np.log1p(np.e**-2))
    assert value(CosFaceLoss(scale=2.0, margin=0.5, **kw)) == pytest.approx(np.log1p(np.e**-1))
    assert value(ArcFaceLoss(scale=2.0, margin=math.pi / 2, **kw)) == pytest.approx(np.log(2))
    assert value(ProxyNCALoss(**kw)) == pytest.approx(np.log1p(np.e**-2))
    pa = ProxyAnchorLoss(alpha=1.0, delta=0.0, **kw)
    assert value(pa) == pytest.approx(np.log1p(np.e**-1) + np.log(2) / 2)


# --- numerically safe ----------------------------------------------------------------------------

LOSSES = {
    "normalized_softmax": NormalizedSoftmaxLoss,
    "cosface": CosFaceLoss,
    "arcface": ArcFaceLoss,
    "sub_center_arcface": SubCenterArcFaceLoss,
    "sphereface": SphereFaceLoss,
    "proxy_anchor": ProxyAnchorLoss,
    "proxy_nca": ProxyNCALoss,
    "soft_triple": SoftTripleLoss,
}


@pytest.mark.parametrize("dtype", ["float32", F64])
@pytest.mark.parametrize("name", LOSSES)
def test_gradients_are_finite_at_zero_and_at_a_proxy(name, dtype):
    loss = LOSSES[name](NUM_CLASSES, dtype=dtype)
    loss.head.build((None, DIM))
    w = loss.head.proxies.numpy()
    own = w[LABELS * loss.head.centers_per_class]
    for x in (np.zeros((len(LABELS), DIM)), own, -own, 1e-30 * own):
        per_sample, gx, gw = value_and_gradients(loss, x.astype(dtype))
        assert np.all(np.isfinite(per_sample)), (name, x[0])
        assert np.all(np.isfinite(gx)) and np.all(np.isfinite(gw)), (name, x[0])


def test_sphereface_lambda_schedule_and_its_step_counter():
    """lambda(t) = max(1000 / (1 + 0.12 t), 5): 1000 at t = 0, 5 from t = 1659 on."""
    steps = np.array([0, 1, 10, 100, 1658, 1659, 10**6])
    want = np.maximum(1000.0 / (1.0 + 0.12 * steps), 5.0)
    np.testing.assert_allclose(sphereface_lambda(steps), want, rtol=1e-12)
    np.testing.assert_allclose(sphereface_lambda(tf.constant(steps)).numpy(), want, rtol=1e-12)
    assert sphereface_lambda(1658) > 5.0 and sphereface_lambda(1659) == 5.0
    assert sphereface_lambda(4, base=8.0, gamma=0.5, power=2.0, lambda_min=0.1) == 8.0 / 9
    loss = SphereFaceLoss(NUM_CLASSES)
    assert loss.current_lambda() == 1000.0
    x, _ = batch(seed=0, k=1)
    for _ in range(3):
        loss(LABELS, x)
    assert int(loss.head.step.numpy()) == 3
    assert loss.current_lambda() == pytest.approx(1000.0 / 1.36)
    assert not loss.head.step.trainable


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda: ArcFaceLoss(1), "num_classes"),
        (lambda: ArcFaceLoss(2.5), "num_classes"),
        (lambda: CosFaceLoss(True), "num_classes"),
        (lambda: ArcFaceLoss(10, margin=-0.1), "margin"),
        (lambda: ArcFaceLoss(10, scale=-64.0), "scale"),
        (lambda: CosFaceLoss(10, margin=-0.35), "margin"),
        (lambda: CosFaceLoss(10, scale=0.0), "scale"),
        (lambda: NormalizedSoftmaxLoss(10, temperature=0.0), "temperature"),
        (lambda: NormalizedSoftmaxLoss(10, temperature=-0.05), "temperature"),
        (lambda: SphereFaceLoss(10, margin=0), "margin"),
        (lambda: SphereFaceLoss(10, margin=2.5), "margin"),
        (lambda: SphereFaceLoss(10, lambda_min=-1.0), "lambda_min"),
        (lambda: SubCenterArcFaceLoss(10, centers_per_class=0), "centers_per_class"),
        (lambda: ProxyAnchorLoss(10, alpha=-32.0), "alpha"),
        (lambda: ProxyAnchorLoss(10, delta=-0.1), "delta"),
        (lambda: ProxyAnchorLoss(10, lr_multiplier=0.0), "lr_multiplier"),
        (lambda: ProxyNCALoss(10, scale=-1.0), "scale"),
        (lambda: SoftTripleLoss(10, la=-20.0), "la"),
        (lambda: SoftTripleLoss(10, gamma=0.0), "gamma"),
        (lambda: SoftTripleLoss(10, tau=-0.2), "tau"),
        (lambda: SoftTripleLoss(10, delta=-0.01), "delta"),
        (lambda: SoftTripleLoss(10, centers_per_class=0), "centers_per_class"),
        (lambda: ClassProxies(10, embedding_dim=0), "embedding_dim"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(make, argument):
    with pytest.raises(ValueError, match=rf"`{argument}`"):
        make()


@pytest.mark.parametrize("labels", [[0, 6], [-1, 0], [0, 10]])
def test_labels_outside_the_classes_are_refused_naming_y_true_and_num_classes(labels):
    loss = ArcFaceLoss(NUM_CLASSES)
    x = np.ones((2, DIM), "float32")
    with pytest.raises(ValueError, match=r"`y_true`.*\[0, 6\).*`num_classes`"):
        loss(np.array(labels), x)
    loss.head.build((None, DIM))
    graph = tf.function(lambda y, e: loss(y, e))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`y_true`.*`num_classes`"):
        graph(tf.constant(labels), tf.constant(x))


def test_shapes_and_a_graph_without_built_proxies_are_refused():
    loss = ProxyNCALoss(NUM_CLASSES, embedding_dim=DIM)
    with pytest.raises(ValueError, match="`y_pred`"):
        loss(LABELS, np.ones((len(LABELS), DIM, 1)))
    with pytest.raises(ValueError, match="build_online"):
        tf.function(lambda y, e: loss(y, e))(LABELS, np.ones((len(LABELS), DIM), "float32"))
    with pytest.raises(ValueError, match="embedding size"):
        loss(LABELS, np.ones((len(LABELS), DIM + 1), "float32"))


# --- serialization --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", LOSSES)
def test_round_trip_gives_fresh_unbuilt_proxies_and_the_same_hyperparameters(name):
    loss = LOSSES[name](NUM_CLASSES, embedding_dim=DIM, lr_multiplier=7.0)
    x, _ = batch(seed=1, k=1)
    loss(LABELS, x.astype("float32"))  # builds (and trains nothing)
    copy = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(copy) is type(loss) and copy.get_config() == loss.get_config()
    assert copy.head is not loss.head and not copy.head.built
    assert copy.head.get_config() | {"name": None} == loss.head.get_config() | {"name": None}
    assert copy.distance == CosineSimilarity() and copy.head.lr_multiplier == 7.0
    assert repr(copy) == repr(loss)
    layer = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss.head))
    assert type(layer) is type(loss.head) and layer.get_config() == loss.head.get_config()


def test_a_loss_belongs_to_one_model():
    loss = ProxyAnchorLoss(NUM_CLASSES)
    model = build_online(conv4((28, 28, 1), 8, width=4), loss=loss)
    assert getattr(model, LOSS_HEAD) is loss.head and loss.head.built
    assert any(v is loss.head.raw for v in model.trainable_variables)
    assert model.get_layer(DISTANCE_TAG).distance == CosineSimilarity()
    with pytest.raises(ValueError, match="belongs to one model"):
        build_online(conv4((28, 28, 1), 8, width=4), loss=loss)


# --- the learning-rate multiplier ------------------------------------------------------------------


@pytest.mark.parametrize("multiplier", [10.0, 100.0])
def test_one_adam_step_moves_the_proxies_lr_multiplier_times_as_far(multiplier):
    """W = m * raw: one Adam step moves W m times as far as with m = 1 (Adam's epsilon acts
    as eps / m, far below the gradients here); plain SGD moves it m^2 times as far."""
    w0 = np.random.default_rng(0).normal(size=(NUM_CLASSES, DIM))
    grad = np.random.default_rng(1).normal(size=w0.shape)  # d loss / d W

    def step(m: float, optimizer) -> np.ndarray:
        layer = ClassProxies(NUM_CLASSES, DIM, lr_multiplier=m, dtype=F64)
        layer.build((None, DIM))
        layer.raw.assign(w0 / m)
        with tf.GradientTape() as tape:
            value = tf.reduce_sum(layer.proxies * grad)
        optimizer.apply_gradients([(tape.gradient(value, layer.raw), layer.raw)])
        return layer.proxies.numpy() - w0

    adam = step(multiplier, keras.optimizers.Adam(1e-3))
    # exactly m times the step of W itself under Adam with epsilon / m ...
    same = step(1.0, keras.optimizers.Adam(1e-3, epsilon=1e-7 / multiplier))
    np.testing.assert_allclose(adam, multiplier * same, rtol=1e-9)
    # ... which is m times the plain step up to that epsilon (1e-7 against |g| ~ 1)
    np.testing.assert_allclose(adam, multiplier * step(1.0, keras.optimizers.Adam(1e-3)), rtol=1e-3)
    sgd = step(multiplier, keras.optimizers.SGD(1e-3))
    np.testing.assert_allclose(sgd, multiplier**2 * step(1.0, keras.optimizers.SGD(1e-3)),
                               rtol=1e-9)  # fmt: skip


def test_initial_proxies_do_not_depend_on_the_multiplier():
    def first(m):
        keras.utils.set_random_seed(5)
        layer = ClassProxies(NUM_CLASSES, DIM, lr_multiplier=m)
        layer.build((None, DIM))
        return layer.proxies.numpy()

    np.testing.assert_allclose(first(100.0), first(1.0), rtol=1e-6)


# --- training on real MNIST -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist(data_dir):
    return load_mnist("train", data_dir)


def online_model(loss, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return build_online(conv4((28, 28, 1), 16, width=8), loss, keras.optimizers.Adam(1e-3))


@pytest.mark.parametrize("name", LOSSES)
def test_one_fit_step_on_mnist_trains_the_network_and_the_proxies(name, mnist):
    loss = LOSSES[name](10)  # the MNIST digits
    model = online_model(loss)
    net_before = [w.numpy().copy() for w in model.get_layer("embedding").trainable_weights]
    proxies_before = loss.head.proxies.numpy()
    data = pk_dataset(mnist.images, mnist.labels, p=4, k=4, seed=0)
    history = model.fit(data, steps_per_epoch=1, epochs=1, shuffle=False, verbose=0)
    value = history.history["loss"][0]
    assert np.isfinite(value) and value > 0
    assert not np.allclose(proxies_before, loss.head.proxies.numpy())
    net_after = model.get_layer("embedding").trainable_weights
    assert any(not np.allclose(b, a.numpy()) for b, a in zip(net_before, net_after, strict=True))


@pytest.mark.parametrize("name", ["arcface", "cosface"])
def test_margin_softmax_learns_an_embedding_when_its_classes_recur(name, mnist, data_dir):
    """With MNIST's 10 classes in every batch, 150 steps take conv4 from chance-like
    one-shot accuracy to far above it on unseen test digits (measured: ArcFace 0.95 and CosFace
    0.93 after 200 steps of the full conv4, untrained 0.34). A sign or scale error in the margin
    or the logits would leave it near the untrained network. (On Omniglot's 3,856 classes and
    1,000 steps, each class weight is seen about 8 times; see results/README.md.)"""
    from oneshot.evaluation import nway_accuracy
    from oneshot.evaluation.scoring import Scorer

    test = load_mnist("test", data_dir)
    keep = np.arange(2000)

    def accuracy(network):
        scorer = Scorer(network, distance="euclidean")
        embeddings = scorer.embed(test.images[keep])
        return nway_accuracy(
            scorer, embeddings, test.labels[keep], 10, episodes=300, seed=0
        ).accuracy

    keras.utils.set_random_seed(0)
    network = conv4(
        (28, 28, 1)
    )  # the README's network (64-d); the 16-d one of these tests is too small
    model = build_online(network, LOSSES[name](10), keras.optimizers.Adam(1e-3))
    untrained = accuracy(network)
    data = pk_dataset(mnist.images, mnist.labels, p=10, k=8, seed=0)
    model.fit(data, steps_per_epoch=150, epochs=1, shuffle=False, verbose=0)
    trained = accuracy(network)
    assert trained > 0.8 and trained > untrained + 0.3, (untrained, trained)


@pytest.mark.parametrize("make", [lambda: ProxyAnchorLoss(10), lambda: SphereFaceLoss(10)],
                         ids=["proxy_anchor", "sphereface"])  # fmt: skip
def test_resume_from_a_run_checkpoint_is_exact_and_model_keras_is_the_embedding(
    make, mnist, tmp_path
):
    """Train 2 steps with a RunCheckpoint, restore it into a model built from another seed: same
    proxies (and SphereFace step), same weights, and the same next step. The saved model.keras
    holds the embedding network only and loads without warnings."""
    batches = pk_dataset(mnist.images, mnist.labels, p=4, k=4, seed=0)
    first = online_model(make(), seed=0)
    checkpoint = RunCheckpoint(tmp_path, log_every=2, steps=4)
    first.fit(
        batches, steps_per_epoch=2, epochs=1, callbacks=[checkpoint], verbose=0, shuffle=False
    )
    saved = [v.numpy().copy() for v in first.variables]
    fresh_loss = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(first.loss)
    )
    second = online_model(fresh_loss, seed=1)
    assert not np.allclose(second.loss_head.proxies.numpy(), first.loss_head.proxies.numpy())
    restore_checkpoint(second, read_checkpoint(tmp_path))
    for a, b in zip(saved, second.variables, strict=True):
        np.testing.assert_array_equal(a, b.numpy())
    if isinstance(fresh_loss, SphereFaceLoss):
        assert int(second.loss_head.step.numpy()) == 2
    losses = [  # a new stream each (a dataset continues its random stream when re-iterated)
        m.fit(
            pk_dataset(mnist.images, mnist.labels, p=4, k=4, seed=0, skip=2),
            steps_per_epoch=1, epochs=1, verbose=0, shuffle=False,
        ).history["loss"][0]
        for m in (first, second)
    ]  # fmt: skip
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    np.testing.assert_allclose(
        first.loss_head.proxies.numpy(), second.loss_head.proxies.numpy(), rtol=1e-5, atol=1e-7
    )

    path = tmp_path / "model.keras"
    saveable_model(first).save(path)
    with zipfile.ZipFile(path) as archive:
        weights = h5py.File(io.BytesIO(archive.read("model.weights.h5")))
        names = []
        weights.visit(names.append)
    assert not any("loss" in n or "optimizer" in n for n in names), names
    for load in (oneshot.load_model, keras.saving.load_model):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # any warning (e.g. unmatched variables) fails
            loaded = load(path)
        assert not hasattr(loaded, LOSS_HEAD)
        trained = first.get_layer("embedding").weights
        for a, b in zip(trained, loaded.get_layer("embedding").weights, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        assert loaded.get_layer(DISTANCE_TAG).distance == CosineSimilarity()


class Interrupt(keras.callbacks.Callback):
    """Stops the process's training after the first chunk (its checkpoint is written)."""

    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt


def test_an_interrupted_run_resumes_to_the_uninterrupted_one(tmp_path, data_dir):
    """Through the runner (config -> fresh loss copy -> build_online -> checkpoints): the loss
    curve and weights of an interrupted and resumed run equal the uninterrupted run's, and its
    model.keras holds the embedding network alone."""
    from oneshot.experiments import OnlineRun
    from oneshot.training.runner import train_run

    config = OnlineRun(
        name="proxy", loss=ProxyAnchorLoss(10), dataset="mnist", network="conv4",
        embedding_dim=8, network_kwargs={"width": 8}, learning_rate=1e-3, steps=4, log_every=2,
        classes_per_batch=4, samples_per_class=4,
    )  # fmt: skip
    whole = train_run(config, tmp_path / "whole", data_dir, seed=3)
    with pytest.raises(KeyboardInterrupt):
        train_run(config, tmp_path / "cut", data_dir, seed=3, extra_callbacks=[Interrupt()])
    resumed = train_run(config, tmp_path / "cut", data_dir, seed=3, resume=True)
    for a, b in zip(whole.variables, resumed.variables, strict=True):  # proxies included
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    curves = [
        (d / "history.csv").read_text().splitlines() for d in (tmp_path / "whole", tmp_path / "cut")
    ]
    column = curves[0][0].split(",").index("loss")
    assert [r.split(",")[column] for r in curves[0]] == [r.split(",")[column] for r in curves[1]]
    loaded = oneshot.load_model(tmp_path / "cut" / "model.keras")
    assert len(loaded.weights) == len(resumed.get_layer("embedding").weights)


def test_num_classes_none_is_set_from_the_training_labels():
    from oneshot.data.datasets import LabelledImages
    from oneshot.training.configs import OnlineRun
    from oneshot.training.setup import build_model

    images = np.zeros((12, 28, 28), np.uint8)
    train = LabelledImages(images, np.repeat(np.arange(6), 2).astype(np.int32))
    config = OnlineRun(name="proxy", dataset="mnist", loss=ProxyAnchorLoss(num_classes=None))
    assert config.loss.num_classes is None and config.loss.head is None
    model = build_model(config, train)
    assert model.loss.num_classes == 6
    assert tuple(model.loss_head.raw.shape) == (6, config.embedding_dim)
    with pytest.raises(ValueError, match="num_classes.*None"):
        ProxyAnchorLoss(num_classes=None)(np.zeros(2, np.int32), np.ones((2, 3), np.float32))
    wrong = OnlineRun(name="proxy", dataset="mnist", loss=ProxyAnchorLoss(num_classes=4))
    with pytest.raises(ValueError, match="`num_classes`.*0 to 5 \\(6 classes\\).*num_classes=4"):
        build_model(wrong, train)


def test_arcface_margins_are_radians_and_a_margin_in_degrees_is_refused():
    """pytorch-metric-learning takes ArcFace's margin in degrees (28.6), oneshot in radians
    (0.4992): a margin above pi/2 is refused with the conversion in the message."""
    with pytest.raises(ValueError, match=r"radians; 28.6 looks like degrees: pass 0.4992"):
        ArcFaceLoss(4, margin=28.6)
    with pytest.raises(ValueError, match=r"argument `margin`.*\[0, pi/2\]"):
        SubCenterArcFaceLoss(4, margin=2.0)
    assert ArcFaceLoss(4, margin=math.pi / 2).margin == pytest.approx(math.pi / 2)
    # past theta > pi - m the target logit cos(theta + m) rises again (the paper's formula,
    # kept and documented): theta = pi gives cos(pi + m) = -cos(m) > cos(pi) = -1
    from oneshot.losses.margin_softmax import additive_angular_margin

    m = 0.5
    cos = tf.constant([math.cos(math.pi - m), -1.0], tf.float64)
    target = additive_angular_margin(cos, m).numpy()
    np.testing.assert_allclose(target, [-1.0, -math.cos(m)], atol=1e-6)
