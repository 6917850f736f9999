"""Losses with a layer of their own (``loss.head``) train through plain Keras, or refuse.

- ``keras.Model(...).compile(loss=ArcFaceLoss(...))`` then ``fit`` (graph or eager) or
  ``evaluate`` is refused with an error naming ``oneshot.losses.attach``: it would train
  without the class weights (before, with ``run_eagerly=True``, it did so silently);
- :func:`oneshot.losses.attach` puts the head in the model: ``fit`` then trains the class
  weights, which are in ``model.trainable_weights``;
- ``evaluate`` leaves SphereFace's step and the XBM queue and counters alone, ``fit``
  advances them, and ``evaluate`` gives the value a training step would compute;
- the training model saves and loads back with its head (``model.save``), and
  ``saveable_model`` gives the embedding model alone.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

import oneshot
from oneshot.losses import (
    ArcFaceLoss,
    CosFaceLoss,
    CrossBatchMemory,
    GlobalBatchLoss,
    LossHeadModel,
    NormalizedSoftmaxLoss,
    ProxyAnchorLoss,
    ProxyNCALoss,
    SoftTripleLoss,
    SphereFaceLoss,
    SubCenterArcFaceLoss,
    TripletMarginLoss,
    attach,
)
from oneshot.miners import BatchHardMiner
from oneshot.models import LOSS_HEAD, build_online, saveable_model
from oneshot.models.networks import build_network

CLASSES, DIM = 4, 8
HEAD_LOSSES = {
    "normalized_softmax": lambda: NormalizedSoftmaxLoss(CLASSES),
    "cosface": lambda: CosFaceLoss(CLASSES),
    "arcface": lambda: ArcFaceLoss(CLASSES),
    "sub_center_arcface": lambda: SubCenterArcFaceLoss(CLASSES),
    "sphereface": lambda: SphereFaceLoss(CLASSES),
    "proxy_anchor": lambda: ProxyAnchorLoss(CLASSES),
    "proxy_nca": lambda: ProxyNCALoss(CLASSES),
    "soft_triple": lambda: SoftTripleLoss(CLASSES),
    "xbm": lambda: CrossBatchMemory(TripletMarginLoss(0.1, miner=BatchHardMiner()), 48),
    "global_arcface": lambda: GlobalBatchLoss(ArcFaceLoss(CLASSES)),
}


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((16, 6, 6, 1)).astype("float32"), np.repeat(np.arange(CLASSES), 4)


def plain_model() -> keras.Model:
    """A functional model images (6, 6, 1) -> embeddings (DIM,), nothing of oneshot in it."""
    images = keras.Input((6, 6, 1))
    return keras.Model(images, keras.layers.Dense(DIM)(keras.layers.Flatten()(images)))


@pytest.mark.parametrize("eager", [False, True], ids=["graph", "run_eagerly"])
@pytest.mark.parametrize("name", HEAD_LOSSES)
def test_plain_compile_and_fit_is_refused_naming_attach(name, eager):
    x, y = data()
    loss = HEAD_LOSSES[name]()
    model = plain_model()
    model.compile(optimizer="adam", loss=loss, run_eagerly=eager)
    weights = [w.numpy().copy() for w in model.weights]
    for run in (
        lambda: model.fit(x, y, batch_size=16, epochs=1, verbose=0),
        lambda: model.evaluate(x, y, verbose=0),
        lambda: model.train_on_batch(x, y),
    ):
        with pytest.raises(ValueError, match=r"not part of the model.*oneshot\.losses\.attach"):
            run()
    for before, after in zip(weights, model.weights, strict=True):  # nothing trained
        np.testing.assert_array_equal(before, after.numpy())


@pytest.mark.parametrize("eager", [False, True], ids=["graph", "run_eagerly"])
@pytest.mark.parametrize("name", HEAD_LOSSES)
def test_attach_makes_plain_fit_train_the_head(name, eager):
    x, y = data()
    loss = HEAD_LOSSES[name]()
    model = attach(plain_model(), loss)
    assert isinstance(model, LossHeadModel) and getattr(model, LOSS_HEAD) is loss.head
    assert loss.head.built and all(any(v is w for w in model.weights) for v in loss.head.weights)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss, run_eagerly=eager)
    before = [v.numpy().copy() for v in loss.head.weights]
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
    assert np.all(np.isfinite(history.history["loss"]))
    trained = {id(w) for w in model.trainable_weights}
    if loss.head.trainable:  # class weights: trained by fit
        assert loss.head.trainable_weights
        assert all(id(v) in trained for v in loss.head.trainable_weights)
    after = [v.numpy() for v in loss.head.weights]
    assert any(not np.array_equal(b, a) for b, a in zip(before, after, strict=True))  # XBM: queue


def test_attach_refuses_a_loss_without_a_head_a_subclassed_model_and_a_second_model():
    with pytest.raises(ValueError, match="no layer of its own"):
        attach(plain_model(), TripletMarginLoss())

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="`model`.*functional"):
        attach(Subclassed(), ArcFaceLoss(CLASSES))
    loss = ArcFaceLoss(CLASSES)
    first = attach(plain_model(), loss)
    with pytest.raises(ValueError, match="belongs to one model"):
        attach(plain_model(), loss)
    assert attach(first, loss) is first  # attaching again to its model changes nothing


def test_a_loss_head_model_compiled_with_another_head_loss_is_refused():
    """A model holds one loss's head: compiling it with another loss that owns one is refused
    (it would go on training the first head too), the way out named; its own loss is fine."""
    x, y = data()
    loss = ArcFaceLoss(CLASSES)
    model = attach(plain_model(), loss)
    with pytest.raises(ValueError, match=r"holds the layer of another loss.*attach\(keras"):
        model.compile(optimizer="adam", loss=CosFaceLoss(CLASSES))
    model.compile(optimizer="adam", loss=loss)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)


def online(loss, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    network = build_network("conv4", (28, 28, 1), DIM, width=8)
    return build_online(network, loss=loss, optimizer=keras.optimizers.Adam(1e-3))


def mnist_like(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((16, 28, 28, 1)).astype("float32"), np.repeat(np.arange(CLASSES), 4)


def sphereface_state(loss) -> list[np.ndarray]:
    return [int(loss.head.step.numpy())]


def xbm_state(loss) -> list:
    head = loss.head
    return [int(head.count.numpy()), int(head.steps.numpy()), head.embeddings.numpy().copy(),
            head.labels.numpy().copy()]  # fmt: skip


def same(a: list, b: list) -> bool:
    return all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))


@pytest.mark.parametrize(
    ("make", "state", "advanced"),
    [
        (lambda: SphereFaceLoss(CLASSES), sphereface_state, lambda s: s[0] == 1),
        (lambda: GlobalBatchLoss(SphereFaceLoss(CLASSES)), sphereface_state, lambda s: s[0] == 1),
        (lambda: CrossBatchMemory(TripletMarginLoss(0.1, miner=BatchHardMiner()), 48),
         xbm_state, lambda s: s[:2] == [16, 1]),
        (lambda: CrossBatchMemory(TripletMarginLoss(0.1, miner=BatchHardMiner()), 48,
                                  warmup_steps=1), xbm_state, lambda s: s[:2] == [0, 1]),
    ],
    ids=["sphereface", "global_sphereface", "xbm", "xbm_warmup"],
)  # fmt: skip
def test_evaluate_changes_no_state_and_fit_advances_it(make, state, advanced):
    x, y = mnist_like()
    loss = make()
    model = online(loss)
    start = state(loss)
    for run_eagerly in (False, True):
        model.compile(optimizer=model.optimizer, loss=loss, run_eagerly=run_eagerly)
        model.evaluate(x, y, batch_size=16, verbose=0)
        model.predict(x, verbose=0)
        assert same(state(loss), start)
    model.compile(optimizer=model.optimizer, loss=loss)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    trained = state(loss)
    assert advanced(trained), trained
    model.evaluate(x, y, batch_size=16, verbose=0)
    assert same(state(loss), trained)


@pytest.mark.parametrize(
    "make",
    [
        lambda: SphereFaceLoss(CLASSES),
        lambda: CrossBatchMemory(TripletMarginLoss(0.1, miner=BatchHardMiner()), 40),
        lambda: CrossBatchMemory(TripletMarginLoss(0.1, miner=BatchHardMiner()), 20),  # wraps
    ],
    ids=["sphereface", "xbm", "xbm_wrapping"],
)
def test_evaluate_gives_the_value_a_training_step_computes(make):
    """After a fit step, evaluate's loss on a batch equals the loss computed directly (a call
    outside any model, which counts as a step: SphereFace at the same step, XBM with the batch
    enqueued)."""
    x, y = mnist_like()
    loss = make()
    model = online(loss)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    x2, _ = mnist_like(seed=1)
    evaluated = model.evaluate(x2, y, batch_size=16, verbose=0)
    direct = float(loss(y, model.predict(x2, verbose=0)))  # advances the state
    assert evaluated == pytest.approx(direct, rel=1e-5)


@pytest.mark.parametrize("name", ["arcface", "sphereface", "xbm"])
def test_the_training_model_saves_and_loads_back_with_its_head(name, tmp_path):
    x, y = mnist_like()
    loss = HEAD_LOSSES[name]()
    model = online(loss)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    model.save(tmp_path / "training.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. unmatched variables, or compile() not called
        loaded = oneshot.load_model(tmp_path / "training.keras")
    assert isinstance(loaded, LossHeadModel) and getattr(loaded, LOSS_HEAD) is loaded.loss.head
    for a, b in zip(model.weights, loaded.weights, strict=True):  # the head's included
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    loaded.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)  # trains its head
    assert not np.array_equal(loaded.loss.head.weights[0].numpy(), loss.head.weights[0].numpy())

    saveable_model(model).save(tmp_path / "model.keras")
    embedding = oneshot.load_model(tmp_path / "model.keras")
    assert not isinstance(embedding, LossHeadModel) and not hasattr(embedding, LOSS_HEAD)
    np.testing.assert_allclose(embedding.predict(x, verbose=0), model.predict(x, verbose=0))
