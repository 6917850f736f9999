"""Scorer: test-time shift averaging (still one-shot: no other labelled image is used), and a
trained model carries its distance: the scorer, the training monitor and a saved model all use
the distance the model was trained with, never a guessed one."""

from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import pytest

from oneshot.data import load_mnist
from oneshot.data.augment import rotate
from oneshot.data.samplers import pk_dataset
from oneshot.distances import CosineSimilarity, LpDistance
from oneshot.evaluation.episodes import nway_accuracy
from oneshot.evaluation.scoring import Scorer, shifted_views, trained_distance
from oneshot.losses import TripletMarginLoss
from oneshot.miners import BatchHardMiner
from oneshot.models import build_online, build_triplet
from oneshot.models.networks import conv4
from oneshot.training.callbacks import EpisodeMonitor


def test_shifted_views_move_the_content_one_pixel_each_way():
    image = np.zeros((1, 5, 5, 1), np.float32)
    image[0, 2, 2, 0] = 1.0
    spots = [tuple(np.argwhere(v[0, ..., 0])[0]) for v in shifted_views(image, 1)]
    assert spots == [(2, 2), (2, 1), (2, 3), (1, 2), (3, 2)]
    edge = np.zeros((1, 3, 3, 1), np.float32)
    edge[0, 0, 0, 0] = 1.0
    assert sum(v.sum() for v in shifted_views(edge, 1)) == 3.0  # two views push it out


def _flatten_model(unit: bool) -> keras.Model:
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Flatten()(inputs)
    if unit:
        x = keras.layers.UnitNormalization()(x)
    return keras.Model(inputs, x, name="embedding")


@pytest.mark.parametrize("unit", [False, True])
def test_shift_averaged_embedding_is_the_mean_of_the_views(unit):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 4, 4), dtype=np.uint8)
    model = _flatten_model(unit)
    x = images[..., None].astype(np.float32) / 255.0
    views = [model.predict(v, verbose=0) for v in shifted_views(x, 1)]
    expected = np.mean(views, axis=0)
    if unit:
        expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    got = Scorer(model, shifts=1).embed(images)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(Scorer(model).embed(images), views[0], rtol=1e-6)
    assert not np.allclose(got, views[0])


def test_negative_shifts_are_refused():
    with pytest.raises(ValueError, match="shifts"):
        Scorer(_flatten_model(False), shifts=-1)
    for bad in (-5, 90):
        with pytest.raises(ValueError, match="rotations"):
            Scorer(_flatten_model(False), rotations=bad)


def test_rotation_views_join_the_shift_views_in_the_average():
    """shifts=1, rotations=10: the five shift views and the +/-10 degree views, seven in all."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3, 4, 4), dtype=np.uint8)
    model = _flatten_model(False)
    x = images[..., None].astype(np.float32) / 255.0
    views = shifted_views(x, 1) + [rotate(x, 10).numpy(), rotate(x, -10).numpy()]
    expected = np.mean([model.predict(v, verbose=0) for v in views], axis=0)
    got = Scorer(model, shifts=1, rotations=10).embed(images)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    only_rotations = np.mean([model.predict(v, verbose=0) for v in [x, *views[5:]]], axis=0)
    np.testing.assert_allclose(
        Scorer(model, rotations=10).embed(images), only_rotations, rtol=1e-5, atol=1e-6
    )


def test_large_sets_are_embedded_in_blocks_with_the_same_numbers(data_dir, monkeypatch):
    """Blocks of whole batches (only a block is converted to float at once) give the embeddings
    of one call, shift averaging included, and a bad block is refused like the whole set."""
    from oneshot.evaluation import scoring as inference

    images = load_mnist("test", data_dir=data_dir).images[:300]
    for shifts in (0, 1):
        scorer = Scorer(conv4((28, 28, 1), 8, width=8), batch_size=64, shifts=shifts)
        whole = scorer.embed(images)
        calls = []
        real = scorer._predict
        monkeypatch.setattr(scorer, "_predict", lambda x, c=calls, r=real: c.append(len(x)) or r(x))
        monkeypatch.setattr(inference, "EMBED_BLOCK", 100)  # -> 128 images: 2 batches of 64
        blocked = scorer.embed(images)
        monkeypatch.undo()
        np.testing.assert_array_equal(blocked, whole)
        assert max(calls) == 128 and sum(calls) == 300 * (5 if shifts else 1)
    monkeypatch.setattr(inference, "EMBED_BLOCK", 100)
    floats = images.astype(np.float32) / 255.0
    floats[250] *= 255.0  # 0-255 floats in the last block only
    with pytest.raises(
        ValueError, match=r"floats in \[0, 1\]. Received float32 values in \[0, 255\]"
    ):
        Scorer(conv4((28, 28, 1), 8, width=8)).embed(floats)


def test_embed_checks_images_against_the_network(data_dir):
    """Colour into a grey network (or the reverse), another size, or 0-255 floats: a message
    saying how to convert, instead of an error deep inside TensorFlow or useless embeddings."""
    from oneshot.data import resize_area, to_grayscale

    grey_images = load_mnist("test", data_dir=data_dir).images[:20]
    rgb_images = np.stack([grey_images, grey_images // 2, 255 - grey_images], axis=-1)
    grey = Scorer(conv4((28, 28, 1), 8, width=8))
    colour = Scorer(conv4((28, 28, 3), 8, width=8))
    with pytest.raises(
        ValueError,
        match=r"`images`. The embedding model expects \(28, 28, 1\) images, got \(28, 28, 3\): "
        r"convert them to grey with oneshot.data.to_grayscale\(images\).*input_shape=\(28, 28, 3\)",
    ):
        grey.embed(rgb_images)
    assert grey.embed(to_grayscale(rgb_images)).shape == (20, 8)
    assert colour.embed(rgb_images).shape == (20, 8)
    with pytest.raises(
        ValueError, match=r"expects \(28, 28, 3\) images, got \(28, 28, 1\).*np.repeat"
    ):
        colour.embed(grey_images)
    with pytest.raises(
        ValueError,
        match=r"got \(35, 35, 1\): resize them with oneshot.data.resize_area\(images, \(28, 28\)\)",
    ):
        grey.embed(resize_area(grey_images, 35))
    with pytest.raises(ValueError, match=r"\[0, 255\]: divide them by 255"):
        grey.embed(grey_images.astype(np.float32))


# --- a trained model carries its distance --------------------------------------------------------

SHAPE = (28, 28, 1)
TRAINED = {"l1": LpDistance(p=1), "cosine": CosineSimilarity()}
MONITOR = dict(n_way=10, episodes=100, seed=3)  # 10-way 1-shot on 500 MNIST test digits


def brute_force(distance: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dissimilarity matrix by explicit loops over the rows (smaller = closer)."""
    out = np.empty((len(a), len(b)))
    for i, u in enumerate(a.astype(np.float64)):
        for j, v in enumerate(b.astype(np.float64)):
            if distance == "l1":
                out[i, j] = np.abs(u - v).sum()
            elif distance == "cosine":
                out[i, j] = 1.0 - u @ v / (np.linalg.norm(u) * np.linalg.norm(v))
            else:
                out[i, j] = np.linalg.norm(u - v)
    return out


@pytest.fixture(scope="module")
def mnist(data_dir):
    return load_mnist("train", data_dir=data_dir), load_mnist("test", data_dir=data_dir)


@pytest.fixture(scope="module")
def trained(mnist, tmp_path_factory):
    """An online model per distance: tiny conv4 (no L2 normalisation, so L1, cosine and
    Euclidean rank differently), batch-hard triplet loss, 3 steps on real MNIST 4 x 4 batches,
    with an EpisodeMonitor; each saved to a .keras file."""
    train, test = mnist
    out = {}
    for name, distance in TRAINED.items():
        keras.utils.set_random_seed(0)
        net = conv4(SHAPE, embedding_dim=8, width=8, l2_normalize=False)
        model = build_online(net, TripletMarginLoss(distance=distance, miner=BatchHardMiner()))
        monitor = EpisodeMonitor(test.images[:500], test.labels[:500], None, **MONITOR)
        history = model.fit(
            pk_dataset(train.images, train.labels, p=4, k=4, seed=0),
            steps_per_epoch=3, epochs=1, callbacks=[monitor], shuffle=False, verbose=0,
        )  # fmt: skip
        path = tmp_path_factory.mktemp(name) / "model.keras"
        model.save(path)
        out[name] = (model, monitor, history.history, path)
    return out


@pytest.mark.parametrize("name", TRAINED)
def test_scorer_from_a_trained_model_uses_its_distance(name, trained, mnist):
    """Scores are the trained distance's dissimilarity (L1; 1 - cos), checked against loops,
    and differ from the Euclidean distance a guess would have used."""
    model = trained[name][0]
    scorer = Scorer.from_model(model)
    assert scorer.distance == TRAINED[name] and trained_distance(model) == TRAINED[name]
    e = scorer.embed(mnist[1].images[:12])
    expected = brute_force(name, e[:6], e[6:])
    np.testing.assert_allclose(scorer.pairwise(e[:6], e[6:]), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(scorer.paired(e[:6], e[6:]), np.diag(expected), rtol=1e-4, atol=1e-5)
    assert not np.allclose(scorer.pairwise(e[:6], e[6:]), brute_force("euclidean", e[:6], e[6:]))


@pytest.mark.parametrize("name", TRAINED)
def test_saved_model_keeps_its_distance(name, trained, mnist):
    model, _, _, path = trained[name]
    loaded = keras.saving.load_model(path)
    scorer = Scorer.from_model(loaded)
    assert scorer.distance == TRAINED[name]
    images = mnist[1].images[:8]
    np.testing.assert_allclose(
        scorer.pairwise(scorer.embed(images)),
        Scorer.from_model(model).pairwise(Scorer.from_model(model).embed(images)),
        rtol=1e-5, atol=1e-6,
    )  # fmt: skip


def test_saved_models_load_in_a_fresh_process_after_only_import_oneshot(trained):
    """Nothing but ``import oneshot`` registers the layer, loss, miner and distance classes."""
    paths = [str(trained[name][3]) for name in TRAINED]
    script = (
        "import sys, keras, oneshot\n"
        "models = [keras.saving.load_model(p) for p in sys.argv[1:]]\n"
        "from oneshot.evaluation.scoring import Scorer\n"
        "for m in models: print(repr(Scorer.from_model(m).distance))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, *paths], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == [repr(d) for d in TRAINED.values()]


@pytest.mark.parametrize("name", TRAINED)
def test_episode_monitor_scores_with_the_trained_distance(name, trained, mnist):
    """The monitor's logged accuracy is the one of a Scorer built explicitly with the trained
    distance, on the same episodes, not the Euclidean one (which differs on these episodes)."""
    model, monitor, history, _ = trained[name]
    assert monitor.distance_used == TRAINED[name]
    test = mnist[1]

    def accuracy(distance) -> float:
        explicit = Scorer(model.get_layer("embedding"), distance=distance)
        result = nway_accuracy(explicit, explicit.embed(test.images[:500]), test.labels[:500],
                               MONITOR["n_way"], 1, MONITOR["episodes"], seed=MONITOR["seed"])  # fmt: skip
        return round(float(result.accuracy), 4)

    assert history["monitor_10way"] == [accuracy(TRAINED[name])]
    assert history["monitor_10way"] != [accuracy("euclidean")]


def test_episode_monitor_distance_overrides_the_models(trained, mnist):
    model = trained["l1"][0]
    test = mnist[1]
    monitor = EpisodeMonitor(test.images[:100], test.labels[:100], None, 10, n_way=5,
                             distance="euclidean")  # fmt: skip
    monitor.set_model(model)
    logs = {}
    monitor.on_epoch_end(0, logs)
    assert monitor.distance_used == LpDistance() and 0.0 <= logs["monitor_5way"] <= 1.0


def test_bare_network_needs_a_distance(trained):
    """The embedding network alone records no distance: refuse to guess, name `distance=`."""
    embedding = trained["l1"][0].get_layer("embedding")
    with pytest.raises(ValueError, match="distance="):
        Scorer.from_model(embedding)
    assert Scorer.from_model(embedding, distance="l1").distance == LpDistance(p=1)
    assert Scorer.from_model(embedding, distance=CosineSimilarity()).distance == CosineSimilarity()


def test_triplet_model_built_with_l1_is_scored_with_l1(tmp_path):
    """Its loss layer records the distance; the scorer's scores are the layer's d(a, p)."""
    model = build_triplet(conv4(SHAPE, embedding_dim=8, width=8), distance="l1")
    rng = np.random.default_rng(0)
    x1, x2 = (rng.random((5, *SHAPE), dtype=np.float32) for _ in range(2))
    out = np.asarray(model([x1, x2, x2]))
    path = tmp_path / "triplet.keras"
    model.save(path)
    for m in (model, keras.saving.load_model(path)):
        scorer = Scorer.from_model(m)
        assert scorer.distance == LpDistance(p=1)
        paired = scorer.paired(scorer.embed(x1), scorer.embed(x2))
        np.testing.assert_allclose(paired, out[:, 0], rtol=1e-4, atol=1e-5)
    override = Scorer.from_model(model, distance="euclidean")  # on purpose, it wins
    assert override.distance == LpDistance()
