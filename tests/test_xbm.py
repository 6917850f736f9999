"""CrossBatchMemory (XBM): the batch mined against a queue of recent embeddings.

Values are checked against a brute-force numpy loop over explicit tuples with a numpy queue
(the paper's rule: the batch is enqueued first, its samples are the anchors, the queue's rows
their partners, an anchor never pairs with its own row); the queue's first-in first-out
wrap-around by hand; save/load, a one-step fit, an interrupted and resumed run through the
runner (bit for bit, same kernels) and, in a subprocess with two logical CPU devices, a
mirrored strategy whose replicas enqueue the global batch and sum to the one-device loss.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import run_script_for_json

import oneshot
from oneshot.distances import LpDistance
from oneshot.losses import (
    CrossBatchMemory,
    GlobalBatchLoss,
    MultiSimilarityLoss,
    ProxyAnchorLoss,
    TripletMarginLoss,
)
from oneshot.miners import BatchHardMiner
from oneshot.models import LOSS_HEAD, build_online, saveable_model
from oneshot.models.networks import build_network
from oneshot.reducers import MeanReducer

RTOL, ATOL = 1e-5, 1e-6


def batch_hard(margin: float = 0.1) -> TripletMarginLoss:
    return TripletMarginLoss(
        margin, distance=LpDistance(), miner=BatchHardMiner(), reducer=MeanReducer()
    )


class NumpyQueue:
    """The paper's queue by hand: rows written in order, the oldest overwritten."""

    def __init__(self, size: int, dim: int) -> None:
        self.emb, self.lab, self.count = np.zeros((size, dim)), np.zeros(size, int), 0

    def enqueue(self, labels, embeddings) -> np.ndarray:
        slots = (self.count + np.arange(len(labels))) % len(self.lab)
        self.emb[slots], self.lab[slots] = embeddings, labels
        self.count += len(labels)
        return slots

    def partners(self, slot: int) -> list[int]:
        """The filled rows other than the anchor's own."""
        return [j for j in range(min(self.count, len(self.lab))) if j != slot]


def brute_batch_hard(queue, slots, labels, x, margin):
    """Mean over anchors with a positive and a negative of max(d_ap - d_an + margin, 0),
    hardest positive and negative among the queue's rows."""
    losses = []
    for i, slot in enumerate(slots):
        d = {j: np.linalg.norm(x[i] - queue.emb[j]) for j in queue.partners(slot)}
        pos = [d[j] for j in d if queue.lab[j] == labels[i]]
        neg = [d[j] for j in d if queue.lab[j] != labels[i]]
        if pos and neg:
            losses.append(max(max(pos) - min(neg) + margin, 0.0))
    return np.mean(losses) if losses else 0.0


def brute_multi_similarity(queue, slots, labels, x, alpha=2.0, beta=50.0, base=0.5):
    """The paper's formula on cosine similarities, every pair, mean over the anchors with a
    positive and a negative."""
    losses = []
    unit = queue.emb / np.linalg.norm(queue.emb, axis=1, keepdims=True).clip(1e-12)
    for i, slot in enumerate(slots):
        s = {j: x[i] @ unit[j] / np.linalg.norm(x[i]) for j in queue.partners(slot)}
        pos = [s[j] for j in s if queue.lab[j] == labels[i]]
        neg = [s[j] for j in s if queue.lab[j] != labels[i]]
        if pos and neg:
            losses.append(
                np.log1p(np.sum(np.exp(-alpha * (np.array(pos) - base)))) / alpha
                + np.log1p(np.sum(np.exp(beta * (np.array(neg) - base)))) / beta
            )
    return np.mean(losses) if losses else 0.0


@pytest.mark.parametrize(
    "make, brute",
    [
        (lambda: batch_hard(0.1), lambda q, s, y, x: brute_batch_hard(q, s, y, x, 0.1)),
        (lambda: MultiSimilarityLoss(), brute_multi_similarity),
    ],
    ids=["batch_hard", "multi_similarity"],
)
def test_values_match_brute_force_over_the_queue(make, brute):
    """Six batches of 6 into a queue of 16: before it is full, full, and wrapped around."""
    rng = np.random.default_rng(0)
    loss = CrossBatchMemory(make(), memory_size=16)
    queue = NumpyQueue(16, 5)
    for _ in range(6):
        labels = rng.integers(0, 4, 6)
        x = rng.normal(size=(6, 5)).astype(np.float32)
        got = float(loss(labels, x))
        slots = queue.enqueue(labels, x)
        assert got == pytest.approx(brute(queue, slots, labels, x), rel=RTOL, abs=ATOL)
    np.testing.assert_allclose(loss.head.embeddings.numpy(), queue.emb, rtol=0, atol=0)
    np.testing.assert_array_equal(loss.head.labels.numpy(), queue.lab)


def test_queue_is_first_in_first_out_and_wraps_around():
    loss = CrossBatchMemory(batch_hard(), memory_size=5)
    batches = [np.full((2, 3), float(k)) + np.arange(2)[:, None] / 10 for k in range(3)]
    for k, x in enumerate(batches):
        loss(np.array([k, k + 10]), x.astype(np.float32))
    # rows 0-1 batch 0, 2-3 batch 1, 4 and then 0 batch 2: row 1 is the oldest left
    np.testing.assert_array_equal(loss.head.labels.numpy(), [12, 10, 1, 11, 2])
    np.testing.assert_allclose(loss.head.embeddings.numpy()[:, 0], [2.1, 0.1, 1.0, 1.1, 2.0])
    assert int(loss.head.count.numpy()) == 6 and int(loss.head.steps.numpy()) == 3


def test_an_anchor_never_pairs_with_its_own_copy():
    """An empty queue and a batch whose sample 0 is alone in its class: it has no positive
    (its own copy does not count), so only anchors 1 and 2 have a triplet."""
    inner = TripletMarginLoss(1.0, distance=LpDistance(), miner=BatchHardMiner(),
                              reducer=MeanReducer(), reduction="none")  # fmt: skip
    loss = CrossBatchMemory(inner, memory_size=8)
    x = np.array([[0.0, 0.0], [0.0, 1.0], [0.0, 2.0]], np.float32)
    values = loss(np.array([0, 1, 1]), x).numpy()
    # anchors 1, 2: d_ap = 1, hardest negative sample 0 at 1 and 2: losses 1 and 0; mean 0.5
    np.testing.assert_allclose(values, [0.0, 1.5, 0.0], atol=1e-6)


def test_gradient_flows_through_the_anchors_only():
    """The gradient on x_a is that of the brute-force loss with the queue's rows constant:
    for each active triplet, (u(x_a - q_p) - u(x_a - q_n)) / T, u the unit vector."""
    rng = np.random.default_rng(3)
    loss = CrossBatchMemory(batch_hard(0.5), memory_size=12)
    queue = NumpyQueue(12, 3)
    for _ in range(2):
        labels = rng.integers(0, 3, 6)
        x = tf.constant(rng.normal(size=(6, 3)).astype(np.float32))
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = loss(labels, x)
        grad = tape.gradient(value, x).numpy()
        slots = queue.enqueue(labels, x.numpy())
        expected, count = np.zeros((6, 3)), 0
        for i, slot in enumerate(slots):
            partners = queue.partners(slot)
            d = {j: np.linalg.norm(x.numpy()[i] - queue.emb[j]) for j in partners}
            pos = [j for j in d if queue.lab[j] == labels[i]]
            neg = [j for j in d if queue.lab[j] != labels[i]]
            if not (pos and neg):
                continue
            count += 1
            p, n = max(pos, key=d.get), min(neg, key=d.get)
            if d[p] - d[n] + 0.5 > 0:
                expected[i] += (x.numpy()[i] - queue.emb[p]) / d[p]
                expected[i] -= (x.numpy()[i] - queue.emb[n]) / d[n]
        np.testing.assert_allclose(grad, expected / count, rtol=1e-4, atol=1e-6)


def test_batch_gradient_with_a_one_batch_memory_is_the_wrapped_loss():
    """With ``memory_size`` = B the queue is the batch: the same tuples and value as the wrapped
    loss; with ``batch_gradient`` the same gradient too, without it only the anchors' part."""
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, 8)
    x = tf.constant(rng.normal(size=(8, 3)).astype(np.float32))
    grads = {}
    for key, loss in {
        "plain": batch_hard(0.5),
        "xbm": CrossBatchMemory(batch_hard(0.5), memory_size=8),
        "xbm_batch": CrossBatchMemory(batch_hard(0.5), memory_size=8, batch_gradient=True),
    }.items():
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = loss(labels, x)
        grads[key] = (float(value), tape.gradient(value, x).numpy())
    for key in ("xbm", "xbm_batch"):
        assert grads[key][0] == pytest.approx(grads["plain"][0], rel=RTOL)
    np.testing.assert_allclose(grads["xbm_batch"][1], grads["plain"][1], rtol=1e-4, atol=1e-6)
    assert not np.allclose(grads["xbm"][1], grads["plain"][1], atol=1e-3)
    config = CrossBatchMemory(batch_hard(), batch_gradient=True).get_config()
    assert config["batch_gradient"] is True
    assert keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(CrossBatchMemory(batch_hard(), batch_gradient=True))
    ).batch_gradient
    assert "batch_gradient" not in CrossBatchMemory(batch_hard()).get_config()


def test_identical_samples_give_a_finite_gradient():
    x = tf.constant([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [1.0, 2.0]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = CrossBatchMemory(batch_hard(0.5), memory_size=8)(np.array([0, 0, 1, 1]), x)
    assert np.all(np.isfinite(tape.gradient(value, x).numpy()))


def test_warmup_trains_on_the_batch_alone_and_leaves_the_queue_empty():
    rng = np.random.default_rng(1)
    loss = CrossBatchMemory(batch_hard(), memory_size=12, warmup_steps=2)
    for step in range(3):
        labels, x = rng.integers(0, 3, 6), rng.normal(size=(6, 4)).astype(np.float32)
        if step < 2:
            assert float(loss(labels, x)) == pytest.approx(float(batch_hard()(labels, x)))
            assert int(loss.head.count.numpy()) == 0
        else:
            queue = NumpyQueue(12, 4)
            slots = queue.enqueue(labels, x)
            expected = brute_batch_hard(queue, slots, labels, x, 0.1)
            assert float(loss(labels, x)) == pytest.approx(expected, rel=RTOL)
            assert int(loss.head.count.numpy()) == 6


def test_in_a_graph_it_computes_the_eager_values():
    rng = np.random.default_rng(2)
    eager = CrossBatchMemory(batch_hard(), memory_size=10, warmup_steps=1)
    graph = CrossBatchMemory(batch_hard(), memory_size=10, warmup_steps=1)
    graph.head.build((None, 4))
    step = tf.function(lambda y, x: graph(y, x))
    for _ in range(4):
        labels, x = rng.integers(0, 3, 4), rng.normal(size=(4, 4)).astype(np.float32)
        assert float(step(labels, x)) == pytest.approx(float(eager(labels, x)), rel=RTOL)
    np.testing.assert_allclose(graph.head.embeddings.numpy(), eager.head.embeddings.numpy())


def test_config_round_trip_and_refusals():
    loss = CrossBatchMemory(batch_hard(0.3), memory_size=64, warmup_steps=5)
    copy = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert isinstance(copy, CrossBatchMemory) and copy.get_config() == loss.get_config()
    assert copy.loss.margin == 0.3 and copy.head is not loss.head
    assert copy.distance == LpDistance() and "memory_size=64" in repr(copy)
    with pytest.raises(ValueError, match="argument `loss`.*triplets or pairs"):
        CrossBatchMemory(ProxyAnchorLoss(10))
    with pytest.raises(ValueError, match="GlobalBatchLoss\\(CrossBatchMemory"):
        CrossBatchMemory(GlobalBatchLoss(batch_hard()))
    with pytest.raises(ValueError, match="`memory_size`.*Received: memory_size=0"):
        CrossBatchMemory(batch_hard(), memory_size=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="memory_size"):
        CrossBatchMemory(batch_hard(), memory_size=3)(np.arange(4) % 2, np.ones((4, 2)))


def small_model(loss, seed=0):
    keras.utils.set_random_seed(seed)
    net = build_network("conv4", (28, 28, 1), 8, width=8)
    return build_online(net, loss=loss, optimizer=keras.optimizers.Adam(1e-3))


def test_one_step_fit_checkpoint_and_saved_model(tmp_path):
    """A fit step fills the queue with the batch; the weights file (the run checkpoint) holds
    the queue and restores it into a fresh model; model.keras is the embedding alone."""
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 28, 28, 1)).astype(np.float32), np.repeat(np.arange(4), 4)
    loss = CrossBatchMemory(batch_hard(), memory_size=40)
    model = small_model(loss)
    assert getattr(model, LOSS_HEAD) is loss.head
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])
    assert int(loss.head.count.numpy()) == 16
    np.testing.assert_array_equal(loss.head.labels.numpy()[:16], y)
    queue = loss.head.embeddings.numpy()
    assert np.all(np.isfinite(queue)) and not np.allclose(queue[:16], 0.0)
    with pytest.raises(ValueError, match="already holds the queue"):
        build_online(build_network("conv4", (28, 28, 1), 8, width=8), loss=loss)

    model.save_weights(tmp_path / "run.weights.h5")
    fresh = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    other = small_model(fresh, seed=1)
    other.optimizer.build(other.trainable_variables)
    other.load_weights(tmp_path / "run.weights.h5")
    np.testing.assert_array_equal(fresh.head.embeddings.numpy(), queue)
    assert int(fresh.head.count.numpy()) == 16 and int(fresh.head.steps.numpy()) == 1

    saveable_model(model).save(tmp_path / "model.keras")
    loaded = oneshot.load_model(tmp_path / "model.keras")
    assert not hasattr(loaded, LOSS_HEAD)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))

    model.save(tmp_path / "compiled.keras")  # the training model, its loss and queue included
    compiled = keras.saving.load_model(tmp_path / "compiled.keras")
    assert isinstance(compiled.loss, CrossBatchMemory) and compiled.loss.memory_size == 40
    compiled.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    assert int(compiled.loss.head.steps.numpy()) >= 1


def test_an_interrupted_run_resumes_to_the_uninterrupted_one(tmp_path, data_dir):
    """Through the runner: the queue is in the run checkpoint, so the loss curve and the final
    weights (queue included) of an interrupted and resumed run are the uninterrupted run's."""
    from oneshot.experiments import OnlineRun
    from oneshot.training.runner import train_run

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    config = OnlineRun(
        name="xbm", loss=CrossBatchMemory(batch_hard(), memory_size=40), dataset="mnist",
        network="conv4", embedding_dim=8, network_kwargs={"width": 8}, learning_rate=1e-3,
        steps=4, log_every=2, classes_per_batch=4, samples_per_class=4,
    )  # fmt: skip
    whole = train_run(config, tmp_path / "whole", data_dir, seed=3)
    with pytest.raises(KeyboardInterrupt):
        train_run(config, tmp_path / "cut", data_dir, seed=3, extra_callbacks=[Interrupt()])
    resumed = train_run(config, tmp_path / "cut", data_dir, seed=3, resume=True)
    assert int(resumed.loss_head.count.numpy()) == 64
    for a, b in zip(whole.variables, resumed.variables, strict=True):  # the queue included
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    curves = [(tmp_path / d / "history.csv").read_text().splitlines() for d in ("whole", "cut")]
    column = curves[0][0].split(",").index("loss")
    assert [r.split(",")[column] for r in curves[0]] == [r.split(",")[column] for r in curves[1]]


STRATEGY_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
)
import keras
tf.get_logger().setLevel("ERROR")
from oneshot.distances import LpDistance
from oneshot.losses import CrossBatchMemory, GlobalBatchLoss, TripletMarginLoss
from oneshot.miners import BatchHardMiner
from oneshot.models import build_online
from oneshot.models.networks import build_network
from oneshot.reducers import MeanReducer

def make():
    inner = TripletMarginLoss(0.1, distance=LpDistance(), miner=BatchHardMiner(),
                              reducer=MeanReducer())
    return CrossBatchMemory(inner, memory_size=20)

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
rng = np.random.default_rng(0)
one = make()
with strategy.scope():
    wrapped = GlobalBatchLoss(make())
    wrapped.head.build((None, 4))

def halves(array):
    return strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(array[4 * ctx.replica_id_in_sync_group:][:4]))

@tf.function
def step(ys, xs):
    with tf.GradientTape() as tape:
        tape.watch(xs)
        value = wrapped(ys, xs)
    return value, tape.gradient(value, xs)

errors, grad_errors = [], []
for _ in range(4):  # 32 rows into a queue of 20: it wraps around
    y = rng.integers(0, 3, 8)
    x = rng.normal(size=(8, 4)).astype(np.float32)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        expected = one(y, xt)
    expected_grad = tape.gradient(expected, xt).numpy()
    value, grad = strategy.run(step, (halves(y), halves(x)))
    total = sum(float(v) for v in strategy.experimental_local_results(value))
    errors.append(abs(total - float(expected)) / abs(float(expected)))
    # Keras scales each replica's loss by 1/R: the replicas' halves of the gradient of
    # mean_r(value_r) * 2 / 2 ... each replica's gradient is of its own (global-mean) loss
    local = np.concatenate([g.numpy() for g in strategy.experimental_local_results(grad)])
    grad_errors.append(float(np.max(np.abs(local - expected_grad))))
memories = [v.numpy() for v in strategy.experimental_local_results(wrapped.head.embeddings)]
with strategy.scope():
    keras.utils.set_random_seed(0)
    model = build_online(build_network("conv4", (28, 28, 1), 8, width=8),
                         loss=GlobalBatchLoss(make()))
images = rng.random((16, 28, 28, 1)).astype(np.float32)
history = model.fit(images, np.repeat(np.arange(4), 4), batch_size=8, epochs=1, verbose=0)
print(json.dumps({
    "errors": errors,
    "grad_errors": grad_errors,
    "replicas_agree": bool(all(np.array_equal(m, memories[0]) for m in memories)),
    "memory_error": float(np.max(np.abs(memories[0] - one.head.embeddings.numpy()))),
    "labels_equal": bool(np.array_equal(wrapped.head.labels.numpy(), one.head.labels.numpy())),
    "count": int(wrapped.head.count.numpy()),
    "fit_loss": history.history["loss"],
    "fit_count": int(model.loss_head.count.numpy()),
}))
"""


@pytest.fixture(scope="module")
def strategy_results(tmp_path_factory) -> dict:
    script = tmp_path_factory.mktemp("xbm") / "xbm_mirrored.py"
    script.write_text(STRATEGY_SCRIPT)
    return run_script_for_json(script)


def test_replicas_enqueue_the_global_batch_and_sum_to_the_one_device_loss(strategy_results):
    r = strategy_results
    assert max(r["errors"]) < RTOL
    assert max(r["grad_errors"]) < 1e-5
    assert r["replicas_agree"] and r["labels_equal"] and r["count"] == 32
    assert r["memory_error"] < 1e-6


def test_fit_under_a_mirrored_strategy_fills_the_queue(strategy_results):
    r = strategy_results
    assert np.all(np.isfinite(r["fit_loss"])) and r["fit_count"] == 16


def test_the_chosen_memory_size_is_the_best_committed_tuning_run():
    """``CHOSEN_MEMORY`` is the size whose ``omniglot-xbm-tuning`` run scores best on the
    validation alphabets (the selection task of the loss comparison)."""
    from pathlib import Path

    from oneshot.experiments.cross_batch import CHOSEN_MEMORY, MEMORY_SIZES, run_name
    from oneshot.experiments.losses import SELECTION_TASK
    from oneshot.runs import METRICS_FILE, headline_metrics

    tuning = Path(__file__).resolve().parents[1] / "results" / "omniglot-xbm-tuning"
    scores = {
        size: headline_metrics(json.loads((tuning / run_name(size) / METRICS_FILE).read_text()))[
            SELECTION_TASK
        ]
        for size in MEMORY_SIZES
    }
    assert max(scores, key=scores.get) == CHOSEN_MEMORY, scores
