"""GlobalBatchLoss: in-batch losses mined and computed on the global batch of all replicas.

The strategy checks run in one subprocess (two logical CPU devices must be configured before
TensorFlow initialises), on one real MNIST P x K batch (P = 8, K = 4) whose classes are split
2 + 2 across the two replicas. For batch-hard, batch-all and semi-hard triplets, the
multi-similarity and contrastive pair losses, SupCon and ProxyAnchor (trainable proxies), the
replicas' Keras-scaled losses summed, and their gradients summed as Keras's optimizer does
(network weights and proxies), equal the one-device loss and gradients on the whole batch;
without the wrapper they differ, so a broken gather would be caught. Uneven slices (12 + 20)
give the one-device per-sample values and gradient of the summed loss; and a few ``fit`` steps
under the strategy train. In-process: the wrapper is the wrapped loss bit for bit without a
strategy, forwards what the models read from a loss, round-trips through its config and a
saved compiled model, and refuses what is not a Keras loss.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import run_script_for_json

import oneshot
from oneshot.data import load_mnist
from oneshot.data.samplers import pk_dataset
from oneshot.losses import GlobalBatchLoss, ProxyAnchorLoss, SupConLoss, TripletMarginLoss
from oneshot.miners import BatchHardMiner
from oneshot.models import DISTANCE_TAG, LOSS_HEAD, build_online, loss_head
from oneshot.models.networks import build_network

RTOL = 1e-5

STRATEGY_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
)
import keras
tf.get_logger().setLevel("ERROR")  # retracing notes: one small function per loss
from oneshot.data import load_mnist
from oneshot.data.samplers import pk_dataset
from oneshot.losses import (ContrastiveLoss, GlobalBatchLoss, MultiSimilarityLoss,
                            ProxyAnchorLoss, SupConLoss, TripletMarginLoss)
from oneshot.miners import BatchAllMiner, BatchHardMiner, SemiHardMiner
from oneshot.models import build_online
from oneshot.models.networks import build_network

LOSSES = {
    "batch_hard": lambda **kw: TripletMarginLoss(miner=BatchHardMiner(), **kw),
    "batch_all": lambda **kw: TripletMarginLoss(miner=BatchAllMiner(0.2), **kw),
    "semi_hard": lambda **kw: TripletMarginLoss(miner=SemiHardMiner(), **kw),
    "multi_similarity": lambda **kw: MultiSimilarityLoss(**kw),
    "contrastive": lambda **kw: ContrastiveLoss(**kw),
    "supcon": lambda **kw: SupConLoss(**kw),
    "proxy_anchor": lambda **kw: ProxyAnchorLoss(10, **kw),
}

mnist = load_mnist("train", sys.argv[1])
x, y = next(iter(pk_dataset(mnist.images, mnist.labels, p=8, k=4, seed=0)))
x, y = x.numpy(), y.numpy()
# every class split 2 + 2: replica 0 holds the first two images of each class, replica 1 the rest
by_class = np.argsort(y, kind="stable")
order = np.concatenate([by_class[np.arange(32) % 4 < 2], by_class[np.arange(32) % 4 >= 2]])
x, y = x[order], y[order]
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


def network():
    keras.utils.set_random_seed(0)
    return build_network("conv4", (28, 28, 1), 16, width=8)


def online(net, loss):  # attaches and builds a proxy loss's head
    build_online(net, loss=loss, optimizer=None)
    return net.trainable_weights + ([] if loss_head(loss) is None else loss_head(loss).weights)


def loss_head(loss):
    return getattr(loss, "head", None)


def split(array, sizes):
    starts = np.cumsum((0,) + sizes)
    return strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(array[starts[ctx.replica_id_in_sync_group] :
                                      starts[ctx.replica_id_in_sync_group + 1]])
    )


def distributed(net, loss, weights, sizes=(16, 16)):
    # per replica: Keras-scaled loss and tape gradients; SUM-reduced as Keras's optimizer does
    @tf.function
    def step(xs, ys):
        with tf.GradientTape() as tape:
            value = loss(ys, net(xs, training=False))
            total = tf.reduce_sum(value)
        return value, tape.gradient(total, weights)

    value, grads = strategy.run(step, (split(x, sizes), split(y, sizes)))
    local = [v.numpy() for v in strategy.experimental_local_results(value)]
    return local, [strategy.reduce("SUM", g, axis=None).numpy() for g in grads]


def rel(a, b):  # max absolute error over max magnitude, across a list of arrays
    a = np.concatenate([np.ravel(v) for v in a])
    b = np.concatenate([np.ravel(v) for v in b])
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def one_device_and_mirrored(make):
    # the one-device value and gradients (of the summed values) on the whole batch, and a
    # mirrored copy (same weights) of the network with the wrapped loss
    net, loss = network(), make()
    weights = online(net, loss)
    with tf.GradientTape() as tape:
        one = loss(y, net(x, training=False))
        total = tf.reduce_sum(one)
    one_grads = [g.numpy() for g in tape.gradient(total, weights)]
    with strategy.scope():
        net2, wrapped = network(), GlobalBatchLoss(make())
        weights2 = online(net2, wrapped)
    for w2, w in zip(weights2, weights, strict=True):
        w2.assign(w.numpy())
    return one.numpy(), one_grads, len(net.trainable_weights), (net2, wrapped, weights2)


results = {}
for name, make in LOSSES.items():
    one, one_grads, n, mirrored = one_device_and_mirrored(make)
    local, grads = distributed(*mirrored)
    net2, wrapped, weights2 = mirrored
    plain_local, plain = distributed(net2, wrapped.loss, weights2)
    results[name] = {
        "one": float(one),
        "global": float(np.sum(local)),
        "grad_error": rel(grads, one_grads),
        "plain": float(np.sum(plain_local)),
        "plain_grad_error": rel(plain, one_grads),
        "head_weights": len(grads) - n,
        "head_grad_error": rel(grads[n:], one_grads[n:]) if len(grads) > n else None,
    }

# uneven slices 12 + 20: per-sample values ("none") and the gradient of their sum
one, one_grads, _, mirrored = one_device_and_mirrored(
    lambda: LOSSES["batch_hard"](reduction="none")
)
local, grads = distributed(*mirrored, sizes=(12, 20))
results["uneven"] = {
    "sizes": [len(v) for v in local],
    "value_error": rel([np.concatenate(local)], [one]),
    "grad_error": rel(grads, one_grads),
}

# a few fit steps of a compiled model with a wrapped proxy loss under the strategy
with strategy.scope():
    keras.utils.set_random_seed(0)
    loss = GlobalBatchLoss(ProxyAnchorLoss(10))
    model = build_online(build_network("conv4", (28, 28, 1), 16, width=8), loss=loss)
    before = loss.head.proxies.numpy()
history = model.fit(pk_dataset(mnist.images, mnist.labels, p=8, k=4, seed=1),
                    steps_per_epoch=3, epochs=1, verbose=0)
results["fit"] = {
    "loss": history.history["loss"],
    "proxies_moved": float(np.max(np.abs(loss.head.proxies.numpy() - before))),
    "replicas": model.distribute_strategy.num_replicas_in_sync,
}
print(json.dumps(results))
"""

CASES = (
    "batch_hard",
    "batch_all",
    "semi_hard",
    "multi_similarity",
    "contrastive",
    "supcon",
    "proxy_anchor",
)


@pytest.fixture(scope="module")
def strategy_results(tmp_path_factory, data_dir) -> dict:
    """The strategy script's measurements (one subprocess for every strategy check)."""
    script = tmp_path_factory.mktemp("global") / "global_mining.py"
    script.write_text(STRATEGY_SCRIPT)
    return run_script_for_json(script, str(data_dir))


@pytest.mark.parametrize("name", CASES)
def test_replicas_sum_to_the_one_device_loss_and_gradients(strategy_results, name):
    result = strategy_results[name]
    assert result["global"] == pytest.approx(result["one"], rel=RTOL)
    assert result["grad_error"] < RTOL
    # without the wrapper each replica mines its own slice: the loss or its gradient differs
    plain_off = abs(result["plain"] - result["one"]) / abs(result["one"])
    assert max(plain_off, result["plain_grad_error"]) > 1e-3
    if name == "proxy_anchor":  # the proxies' gradient, summed over replicas, is exact too
        assert result["head_weights"] == 1 and result["head_grad_error"] < RTOL


def test_uneven_slices_give_the_one_device_values_and_gradients(strategy_results):
    result = strategy_results["uneven"]
    assert result["sizes"] == [12, 20]
    assert result["value_error"] < RTOL
    assert result["grad_error"] < RTOL


def test_fit_under_a_mirrored_strategy_trains_network_and_proxies(strategy_results):
    result = strategy_results["fit"]
    assert result["replicas"] == 2
    assert np.all(np.isfinite(result["loss"]))
    assert result["proxies_moved"] > 0


# --- in process: no strategy -------------------------------------------------------------------


@pytest.fixture(scope="module")
def batch(data_dir) -> tuple[np.ndarray, np.ndarray]:
    """One real MNIST P x K batch (8 x 4), images and int labels."""
    mnist = load_mnist("train", data_dir)
    x, y = next(iter(pk_dataset(mnist.images, mnist.labels, p=8, k=4, seed=0)))
    return x.numpy(), y.numpy()


@pytest.mark.parametrize(
    "make",
    [
        lambda: TripletMarginLoss(miner=BatchHardMiner()),
        lambda: SupConLoss(),
        lambda: ProxyAnchorLoss(10, embedding_dim=16),
    ],
    ids=["batch_hard", "supcon", "proxy_anchor"],
)
def test_without_a_strategy_it_is_the_wrapped_loss_bit_for_bit(batch, make):
    x, y = batch
    keras.utils.set_random_seed(0)
    net = build_network("conv4", (28, 28, 1), 16, width=8)
    inner = make()
    wrapped = GlobalBatchLoss(inner)
    head = loss_head(inner)
    if head is not None:
        head.build((None, 16))
    weights = net.trainable_weights + ([] if head is None else head.trainable_weights)
    values = {}
    for loss in (inner, wrapped):
        with tf.GradientTape() as tape:
            value = loss(y, net(x))
        values[loss.name] = [value.numpy()] + [g.numpy() for g in tape.gradient(value, weights)]
    first, second = values.values()
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    embeddings = net(x)
    graph = tf.function(lambda e: wrapped(y, e))  # the default replica context inside a graph
    inner_graph = tf.function(lambda e: inner(y, e))
    # bit for bit against the inner loss in a graph too (the same kernels run) ...
    assert np.array_equal(graph(embeddings).numpy(), inner_graph(embeddings).numpy())
    # ... but only close to the eager value: TensorFlow's graph optimiser may fuse the ops
    # differently from eager execution on some processors (seen on an AVX2-only host)
    np.testing.assert_allclose(graph(embeddings).numpy(), first[0], rtol=1e-6)


def test_it_forwards_what_the_models_read_from_a_loss():
    triplet = GlobalBatchLoss(TripletMarginLoss(distance="cosine", miner=BatchHardMiner()))
    assert triplet.distance == triplet.loss.distance
    assert triplet.miner == BatchHardMiner()
    assert loss_head(triplet) is None and not hasattr(triplet, "attach")
    model = build_online(build_network("conv4", (28, 28, 1), 16, width=8), loss=triplet)
    assert model.get_layer(DISTANCE_TAG).distance == triplet.loss.distance
    assert model.loss is triplet

    proxy = GlobalBatchLoss(ProxyAnchorLoss(10))
    model = build_online(build_network("conv4", (28, 28, 1), 16, width=8), loss=proxy)
    assert getattr(model, LOSS_HEAD) is proxy.loss.head and proxy.head.built
    assert any(w is proxy.head.raw for w in model.trainable_weights)
    with pytest.raises(ValueError, match="already trains"):  # attach is the wrapped loss's
        build_online(build_network("conv4", (28, 28, 1), 16, width=8), loss=proxy)
    copy = GlobalBatchLoss(ProxyAnchorLoss(None)).with_num_classes(7)
    assert isinstance(copy, GlobalBatchLoss) and copy.num_classes == 7
    assert repr(triplet).startswith("GlobalBatchLoss(TripletMarginLoss(")
    assert triplet.name == "global_triplet_margin_loss"
    assert proxy.reduction == proxy.loss.reduction and proxy.dtype == proxy.loss.dtype


def test_config_round_trip_and_a_saved_compiled_model(tmp_path, batch):
    loss = GlobalBatchLoss(TripletMarginLoss(margin=0.3, miner=BatchHardMiner()), name="g")
    copy = GlobalBatchLoss.from_config(loss.get_config())
    assert repr(copy) == repr(loss) and copy.name == "g"
    config = keras.saving.serialize_keras_object(loss)
    again = keras.saving.deserialize_keras_object(config)
    assert isinstance(again, GlobalBatchLoss) and repr(again) == repr(loss)

    x, y = batch
    model = build_online(build_network("conv4", (28, 28, 1), 16, width=8), loss=loss)
    model.train_on_batch(x, y)  # the optimizer's state is saved and reloaded too
    model.save(tmp_path / "model.keras")
    assert config["registered_name"] == "oneshot>GlobalBatchLoss"  # by `import oneshot`
    expected = model.evaluate(x, y, batch_size=32, verbose=0)
    for load in (oneshot.load_model, keras.saving.load_model):
        loaded = load(tmp_path / "model.keras")
        assert isinstance(loaded.loss, GlobalBatchLoss) and repr(loaded.loss) == repr(loss)
        evaluated = loaded.evaluate(x, y, batch_size=32, verbose=0)
        assert evaluated == pytest.approx(expected, rel=RTOL)


@pytest.mark.parametrize(
    "bad",
    ["triplet", keras.losses.mean_squared_error, None, GlobalBatchLoss(SupConLoss())],
    ids=["name", "function", "none", "already_global"],
)
def test_what_is_not_a_keras_loss_is_refused_naming_the_argument(bad):
    with pytest.raises(ValueError, match=r"Invalid value for argument `loss`.*Received: loss="):
        GlobalBatchLoss(bad)
