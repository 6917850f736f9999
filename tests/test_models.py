"""Model builders: wiring, symmetry, gradients per branch, save/load, Scorer view, training."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from oneshot.data import load_mnist, to_model_input
from oneshot.distances import CosineSimilarity, LpDistance, get_distance, pairwise_distances
from oneshot.evaluation.scoring import Scorer
from oneshot.losses import (
    TripletMarginLoss,
    contrastive_loss,
    quadruplet_loss,
    triplet_loss_from_distances,
)
from oneshot.models import (
    DISTANCE_TAG,
    SIAMESE_HEADS,
    build_online,
    build_quadruplet,
    build_siamese,
    build_triplet,
    siamese_loss,
)
from oneshot.models.networks import conv4

SHAPE = (28, 28, 1)


@keras.saving.register_keras_serializable(package="oneshot_tests")
class StandInOnlineLoss(keras.losses.Loss):
    """Trivial in-batch loss for the online model: all-pairs contrastive on the distance matrix."""

    def __init__(self, margin: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.margin = margin

    def call(self, y_true, y_pred):
        labels = tf.reshape(tf.cast(y_true, tf.int32), [-1])
        same = tf.cast(labels[:, None] == labels[None, :], y_pred.dtype)
        d = pairwise_distances(y_pred, distance="euclidean")
        pair = same * tf.square(d) + (1 - same) * tf.square(tf.maximum(self.margin - d, 0.0))
        return tf.reduce_mean(pair, axis=1)

    def get_config(self) -> dict:
        return {**super().get_config(), "margin": self.margin}


def small_net() -> keras.Model:
    return conv4(SHAPE, embedding_dim=16, width=16)


def make_model(kind: str) -> keras.Model:
    if kind.startswith("siamese_"):
        return build_siamese(small_net(), head=kind.removeprefix("siamese_"))
    if kind == "triplet":
        return build_triplet(small_net(), margin=0.5)
    if kind == "quadruplet":
        return build_quadruplet(small_net(), alpha1=0.5, alpha2=0.25)
    if kind == "quadruplet_l2":
        return build_quadruplet(small_net(), metric="euclidean", alpha1=0.5, alpha2=0.25)
    return build_online(small_net(), loss=StandInOnlineLoss())


KINDS = [f"siamese_{h}" for h in SIAMESE_HEADS] + [
    "triplet",
    "quadruplet",
    "quadruplet_l2",
    "online",
]


def n_inputs(kind: str) -> int:
    return {"triplet": 3, "quadruplet": 4, "quadruplet_l2": 4, "online": 1}.get(kind, 2)


def random_images(n: int, count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random((count, *SHAPE), dtype=np.float32) for _ in range(n)]


# --- wiring ------------------------------------------------------------------------------------


def test_siamese_heads_are_symmetric_except_concat():
    x1, x2 = random_images(2, 6)
    for head in SIAMESE_HEADS:
        model = build_siamese(small_net(), head=head)
        forward = np.asarray(model([x1, x2]))
        backward = np.asarray(model([x2, x1]))
        assert forward.shape == (6, 1)
        if head == "concat":
            assert np.max(np.abs(forward - backward)) > 1e-4, "concat head should not be symmetric"
        else:
            np.testing.assert_allclose(forward, backward, rtol=1e-5, atol=1e-6)


def test_tuple_models_share_one_embedding_and_one_metric():
    for kind in ("triplet", "quadruplet", "online"):
        model = make_model(kind)
        embeddings = [layer for layer in model.layers if layer.name == "embedding"]
        assert len(embeddings) == 1 and isinstance(embeddings[0], keras.Model)
        # All branches call the same nested network (one node per input).
        assert len(embeddings[0]._inbound_nodes) == n_inputs(kind)
    quad = make_model("quadruplet")
    assert [layer.name for layer in quad.layers].count("metric") == 1
    assert quad.output_shape == (None, 3)
    assert "metric" not in [layer.name for layer in make_model("quadruplet_l2").layers]


def test_bad_arguments_raise_value_errors():
    with pytest.raises(ValueError, match="Received: head='dot'"):
        build_siamese(small_net(), head="dot")
    with pytest.raises(ValueError, match="Received: metric='rbf'"):
        build_quadruplet(small_net(), metric="rbf")
    net = small_net()
    renamed = keras.Model(net.inputs, net.outputs, name="net")
    with pytest.raises(ValueError, match="named 'embedding'"):
        build_triplet(renamed)
    with pytest.warns(UserWarning, match="can never be met"):
        build_quadruplet(small_net())  # the paper's alpha1 = 1 with g in [0, 1]


def test_online_model_records_the_distance_of_its_loss():
    """The last layer is an identity that records the loss's distance (what the saved model is
    evaluated with); a conflicting ``distance`` is refused."""
    l1 = build_online(small_net(), loss=TripletMarginLoss(distance=LpDistance(p=1)))
    assert l1.layers[-1].name == DISTANCE_TAG
    assert l1.get_layer(DISTANCE_TAG).distance == LpDistance(p=1)
    (x,) = random_images(1, 3)
    np.testing.assert_array_equal(np.asarray(l1(x)), np.asarray(l1.get_layer("embedding")(x)))
    uncompiled = build_online(small_net(), distance="cosine")
    assert uncompiled.get_layer(DISTANCE_TAG).distance == CosineSimilarity()
    assert build_online(small_net()).get_layer(DISTANCE_TAG).distance == LpDistance()
    with pytest.raises(ValueError, match="distance"):
        build_online(small_net(), loss=TripletMarginLoss(distance="l1"), distance="cosine")


# --- gradients: every branch alone reaches the shared weights -----------------------------------


def branch_loss(model: keras.Model, kind: str, embs: list[tf.Tensor]) -> tf.Tensor:
    """The model's own head/loss layers applied to given embeddings."""
    if kind.startswith("siamese_"):
        head = kind.removeprefix("siamese_")
        layer = model.get_layer("distance" if head == "contrastive" else "pair_similarity")
        y = tf.constant([1.0, 0.0] * (len(embs[0]) // 2))
        out = layer(embs)
        if head == "contrastive":
            return tf.reduce_mean(contrastive_loss(y, out))
        return siamese_loss(head)(y, out)
    if kind == "triplet":
        d = model.get_layer("triplet_loss")(embs)
        return tf.reduce_mean(triplet_loss_from_distances(d[:, 0], d[:, 1], margin=0.5))
    g = model.get_layer("metric")
    pairs = [(0, 1), (0, 2), (2, 3)]
    values = [g(tf.concat([embs[i], embs[j]], axis=1))[:, 0] for i, j in pairs]
    return tf.reduce_mean(quadruplet_loss(*values, alpha1=0.5, alpha2=0.25))


@pytest.mark.parametrize("kind", [k for k in KINDS if k not in ("online", "quadruplet_l2")])
def test_each_branch_alone_gives_gradients_to_the_shared_embedding(kind):
    model = make_model(kind)
    emb = model.get_layer("embedding")
    inputs = random_images(n_inputs(kind), 8, seed=3)
    for branch in range(len(inputs)):
        with tf.GradientTape() as tape:
            embs = [emb(x, training=True) for x in inputs]
            embs = [e if i == branch else tf.stop_gradient(e) for i, e in enumerate(embs)]
            loss = branch_loss(model, kind, embs)
        grads = tape.gradient(loss, emb.trainable_weights)
        assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)
        total = sum(float(tf.reduce_sum(tf.abs(g))) for g in grads)
        assert total > 0, f"branch {branch} of {kind} sends no gradient to the embedding"


def test_online_model_gradients_reach_the_embedding():
    model = make_model("online")
    (x,) = random_images(1, 8)
    y = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    with tf.GradientTape() as tape:
        loss = model.loss(y, model(x, training=True))
    grads = tape.gradient(loss, model.get_layer("embedding").trainable_weights)
    assert sum(float(tf.reduce_sum(tf.abs(g))) for g in grads) > 0


# --- save / load and the inference view ----------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_round_trips_and_scores_pairs_like_the_model(kind, tmp_path):
    """Save + load gives the same outputs; Scorer.from_model(loaded) scores with the model's head."""
    model = make_model(kind)
    x1, x2 = random_images(2, 5, seed=7)
    inputs = [x1, x2, x2, x2][: n_inputs(kind)] if kind != "online" else x1
    path = tmp_path / f"{kind}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    out = np.asarray(loaded(inputs))
    np.testing.assert_allclose(out, np.asarray(model(inputs)), rtol=1e-5, atol=1e-6)
    assert loaded.loss is not None or kind.startswith(("triplet", "quadruplet"))

    scorer = Scorer.from_model(loaded)
    e1, e2 = scorer.embed(x1), scorer.embed(x2)
    paired, matrix = scorer.paired(e1, e2), scorer.pairwise(e1, e2)
    assert paired.shape == (5,) and matrix.shape == (5, 5)
    np.testing.assert_allclose(np.diag(matrix), paired, rtol=1e-4, atol=1e-5)
    if kind in ("siamese_contrastive", "triplet", "quadruplet", "quadruplet_l2"):
        expected = out[:, 0]  # the model's own d(x1, x2) or g(x1, x2)
    elif kind.startswith("siamese_"):
        expected = 1.0 - out[:, 0]  # 1 - P(same) or 1 - cosine similarity
    else:
        expected = np.sqrt(np.sum((e1 - e2) ** 2, axis=1))
    np.testing.assert_allclose(paired, expected, rtol=1e-4, atol=1e-5)
    # fixed-distance kinds record theirs (the triplet model's default: Euclidean); the stand-in
    # loss has none, so the online model records the Euclidean distance (learned heads do not
    # use it)
    assert scorer.distance == get_distance("euclidean")


# --- smoke training on real MNIST ----------------------------------------------------------------


def mnist_tuples(images, labels, kind: str, count: int, rng) -> tuple[list[np.ndarray], np.ndarray]:
    """Random tuples (numpy), labels y for pairs / online batches (P=8 classes x K=4)."""
    by_class = [np.flatnonzero(labels == c) for c in range(10)]

    def pick(classes):
        return np.array([rng.choice(by_class[c]) for c in classes])

    def other(*exclude):
        return np.array(
            [rng.choice([c for c in range(10) if c not in ex]) for ex in zip(*exclude, strict=True)]
        )

    def x(classes):
        return to_model_input(images[pick(classes)])

    a = rng.integers(0, 10, count)
    if kind == "online":
        batches = [rng.choice(10, 8, replace=False).repeat(4) for _ in range(count // 32)]
        classes = np.concatenate(batches)
        return [x(classes)], classes
    if kind.startswith("siamese_"):
        same = np.arange(count) % 2 == 0
        b = np.where(same, a, other(a))
        return [x(a), x(b)], same.astype(np.float32)
    n = other(a)
    tuples = [x(a), x(a), x(n), x(other(a, n))]
    return tuples[: n_inputs(kind)], np.zeros(count)


@pytest.fixture(scope="module")
def mnist(data_dir):
    return load_mnist("train", data_dir=data_dir), load_mnist("test", data_dir=data_dir)


def train_and_compare(kind: str, steps: int, mnist, lr: float = 3e-3) -> tuple[float, float]:
    rng = np.random.default_rng(11)
    train, test = mnist
    model = make_model(kind)
    model.optimizer.learning_rate = lr
    xs, y = mnist_tuples(train.images, train.labels, kind, steps * 32, rng)
    xv, yv = mnist_tuples(test.images, test.labels, kind, 256, rng)
    has_y = kind.startswith("siamese_") or kind == "online"
    if kind == "online":  # a single-input model takes the bare array
        xs, xv = xs[0], xv[0]

    def evaluate() -> float:
        """Held-out loss, eager, with BatchNorm on batch statistics (training=True).

        In inference mode an untrained conv4 uses its initial moving statistics, which squash
        all embeddings together: a meaningless (often tiny) "before" loss. The call also
        moves the BN moving statistics, so the weights are restored afterwards.
        """
        weights = model.get_weights()
        out = model(xv, training=True)
        loss = model.loss(yv, out) if has_y else sum(model.losses)  # layer loss + decay
        model.set_weights(weights)
        return float(loss)

    before = evaluate()
    model.fit(xs, y if has_y else None, batch_size=32, epochs=1, shuffle=False, verbose=0)
    return before, evaluate()


@pytest.mark.parametrize("kind", ["siamese_contrastive", "triplet", "quadruplet", "online"])
def test_short_training_on_mnist_lowers_the_loss(kind, mnist):
    before, after = train_and_compare(kind, 40, mnist)
    assert after < 0.9 * before, f"{kind}: held-out loss {before:.4f} -> {after:.4f}"


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_200_steps_on_mnist_lower_the_loss(kind, mnist):
    before, after = train_and_compare(kind, 200, mnist)
    assert after < 0.8 * before, f"{kind}: held-out loss {before:.4f} -> {after:.4f}"
