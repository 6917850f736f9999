"""EmbeddingIndex on real MNIST digits: exact search against a brute-force numpy sort, FAISS
against exact, labels and ids of both kinds, save/load, block sizes, the model fingerprint, and
one clear message per bad input.

Gallery: test digits 100..499; queries: test digits 0..99 (no query is in the gallery, so no
distance sits at 0, where a square root would magnify float32 rounding). "pixels" are the
flattened images in [0, 1] (784-D; the model is not the point there), "embeddings" come from
a small untrained conv4 (16-D, unit length).
"""

from __future__ import annotations

import importlib.util
import sys

import keras
import numpy as np
import pytest

from oneshot.applications import (
    EmbeddingIndex,
    IndexFileError,
    ModelIdentity,
    model_fingerprint,
    smallest_k,
)
from oneshot.data import load_mnist
from oneshot.distances import CosineSimilarity, LpDistance
from oneshot.models import build_online
from oneshot.models.networks import conv4

K = 10
needs_faiss = pytest.mark.skipif(
    importlib.util.find_spec("faiss") is None,
    reason="faiss is not installed (pip install faiss-cpu)",
)


@pytest.fixture(scope="module")
def digits(data_dir):
    test = load_mnist("test", data_dir)
    return test.images[:500], test.labels[:500].astype(np.int64)


@pytest.fixture(scope="module")
def pixels(digits):
    images, labels = digits
    flat = images.reshape(len(images), -1).astype(np.float32) / 255.0
    return flat[100:], labels[100:], flat[:100]


def small_net(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return conv4((28, 28, 1), embedding_dim=16, width=8)


@pytest.fixture(scope="module")
def net():
    return small_net(0)


@pytest.fixture(scope="module")
def embedded(net, digits):
    images, labels = digits
    vectors = net.predict(images.astype(np.float32)[..., None] / 255.0, verbose=0)
    return vectors[100:], labels[100:], vectors[:100]


def brute_force(queries, gallery, distance: str, k: int):
    """Every distance in float64, then a stable full sort (ties: smaller index)."""
    q, g = queries.astype(np.float64), gallery.astype(np.float64)
    if distance == "cosine":
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        g = g / np.linalg.norm(g, axis=1, keepdims=True)
        d = 1.0 - q @ g.T
    else:
        d = np.sqrt(((q[:, None, :] - g[None, :, :]) ** 2).sum(-1))
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, order, axis=1), order


# ----------------------------------------------------------------------------------- search
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_exact_search_matches_brute_force(pixels, distance):
    gallery, labels, queries = pixels
    index = EmbeddingIndex(distance)
    index.add(gallery, labels=labels)
    result = index.search(queries, k=K)
    want_d, want_i = brute_force(queries, gallery, distance, K)
    np.testing.assert_array_equal(result.indices, want_i)
    np.testing.assert_allclose(result.distances, want_d, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(result.labels, labels[want_i])
    np.testing.assert_array_equal(result.ids, want_i)  # default ids: the positions
    assert result.distances.dtype == np.float32 and result.indices.dtype == np.int64
    assert (np.diff(result.distances, axis=1) >= 0).all()


@needs_faiss
@pytest.mark.parametrize("distance", ["euclidean", "cosine", "squared_euclidean"])
def test_faiss_flat_gives_the_exact_neighbours_and_distances(embedded, distance):
    gallery, labels, queries = embedded
    results = {}
    for backend in ("exact", "faiss"):
        index = EmbeddingIndex(distance, backend=backend)
        index.add(gallery, labels=labels)
        results[backend] = index.search(queries, k=K)
    np.testing.assert_array_equal(results["faiss"].indices, results["exact"].indices)
    np.testing.assert_allclose(results["faiss"].distances, results["exact"].distances, atol=1e-4)
    np.testing.assert_array_equal(results["faiss"].labels, results["exact"].labels)


@needs_faiss
@pytest.mark.parametrize(
    "kind, params", [("hnsw", {"M": 16, "ef_search": 32}), ("ivf", {"nlist": 16, "nprobe": 4})]
)
def test_approximate_faiss_finds_most_exact_neighbours(embedded, kind, params):
    gallery, _, queries = embedded
    exact = EmbeddingIndex("cosine")
    exact.add(gallery)
    approx = EmbeddingIndex("cosine", backend="faiss", faiss_index=kind, faiss_params=params)
    approx.add(gallery)
    want, got = exact.search(queries, K), approx.search(queries, K)
    recall = np.mean(
        [len(set(a) & set(b)) / K for a, b in zip(want.indices, got.indices, strict=True)]
    )
    assert recall >= 0.9, recall
    found = got.indices >= 0  # where both found the same item, the same distance
    same = found & (got.indices == want.indices)
    np.testing.assert_allclose(got.distances[same], want.distances[same], atol=1e-4)


def test_small_blocks_give_the_results_of_one_block(embedded):
    gallery, labels, queries = embedded
    one = EmbeddingIndex("euclidean", block_elements=1 << 30)
    small = EmbeddingIndex("euclidean", block_elements=100)  # 10 queries x 6 gallery rows
    for index in (one, small):
        index.add(gallery, labels=labels)
    a, b = one.search(queries, K), small.search(queries, K)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_allclose(a.distances, b.distances, atol=1e-5)  # float32 rounding


def test_ties_go_to_the_smaller_index_whatever_the_blocks(embedded):
    """Each gallery digit three times (rows i, i + 400, i + 800): the copies tie exactly, and
    the earlier row comes first, with one block or many."""
    gallery, _, queries = embedded
    tripled = np.concatenate([gallery, gallery, gallery])
    for block in (1 << 30, 500, 100):
        index = EmbeddingIndex("euclidean", block_elements=block)
        index.add(tripled)
        result = index.search(queries[:20], k=6)
        first = result.indices[:, 0]
        np.testing.assert_array_equal(
            result.indices[:, :3], np.stack([first, first + 400, first + 800], 1)
        )
    distances = np.array([[1, 0, 0, 1, 0, 2], [3, 3, 3, 3, 3, 3]], np.float32)
    d, i = smallest_k(distances, np.broadcast_to(np.arange(6), (2, 6)), 4)
    np.testing.assert_array_equal(i, [[1, 2, 4, 0], [0, 1, 2, 3]])
    np.testing.assert_array_equal(d, [[0, 0, 0, 1], [3, 3, 3, 3]])


def test_k_larger_than_the_index_is_clipped(pixels):
    gallery, _, queries = pixels
    index = EmbeddingIndex()
    index.add(gallery[:5])
    result = index.search(queries[:3], k=K)
    assert result.distances.shape == (3, 5) and result.k == 5 and len(result) == 3


# ------------------------------------------------------------------------------ labels, ids
def test_string_labels_and_ids_round_trip(pixels, tmp_path):
    gallery, labels, queries = pixels
    names = np.array([f"digit-{n}" for n in labels])
    paths = [f"gallery/{i:04d}.png" for i in range(len(gallery))]
    index = EmbeddingIndex("cosine")
    index.add(gallery[:300], labels=list(names[:300]), ids=paths[:300])
    index.add(gallery[300:], labels=names[300:], ids=paths[300:])  # a second batch
    result = index.search(queries, k=K)
    assert result.labels.dtype.kind == "U" and result.ids.dtype.kind == "U"
    np.testing.assert_array_equal(result.labels, names[result.indices])
    np.testing.assert_array_equal(result.ids, np.array(paths)[result.indices])
    loaded = EmbeddingIndex.load(index.save(tmp_path / "named.npz"))
    again = loaded.search(queries, k=K)
    np.testing.assert_array_equal(again.labels, result.labels)
    np.testing.assert_array_equal(again.ids, result.ids)


def test_an_unlabelled_index_returns_no_labels(pixels):
    gallery, _, queries = pixels
    index = EmbeddingIndex()
    index.add(gallery, ids=np.arange(len(gallery)) + 1000)
    result = index.search(queries[:2], k=3)
    assert result.labels is None and (result.ids >= 1000).all()


# ------------------------------------------------------------------------------- save, load
@pytest.mark.parametrize(
    "backend, kind",
    [("exact", "flat"), pytest.param("faiss", "flat", marks=needs_faiss),
     pytest.param("faiss", "hnsw", marks=needs_faiss)],
)  # fmt: skip
def test_save_load_gives_identical_results(net, embedded, tmp_path, backend, kind):
    gallery, labels, queries = embedded
    index = EmbeddingIndex.for_model(net, distance=CosineSimilarity(), backend=backend,
                                     faiss_index=kind)  # fmt: skip
    index.add(gallery, labels=labels)
    path = index.save(tmp_path / "index.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["index.npz"]  # no temporary file left
    loaded = EmbeddingIndex.load(path)
    assert (loaded.distance, loaded.backend, loaded.model) == (index.distance, backend, index.model)
    assert loaded.faiss_index == kind and len(loaded) == len(index)
    a, b = index.search(queries, K), loaded.search(queries, K)
    for field in ("distances", "indices", "labels", "ids"):
        np.testing.assert_array_equal(getattr(b, field), getattr(a, field))
    exact = EmbeddingIndex.load(path, backend="exact").search(queries, K)  # e.g. without FAISS
    if kind == "flat":
        np.testing.assert_array_equal(exact.indices, a.indices)


def test_save_refuses_to_overwrite_and_is_atomic(pixels, tmp_path, monkeypatch):
    gallery, _, _ = pixels
    index = EmbeddingIndex()
    index.add(gallery[:10])
    path = index.save(tmp_path / "index.npz")
    before = path.read_bytes()
    with pytest.raises(IndexFileError, match="already exists; pass overwrite=True"):
        index.save(path)

    def broken_savez(handle, **arrays):
        handle.write(b"PK half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        index.save(path, overwrite=True)
    assert path.read_bytes() == before  # the old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["index.npz"]  # and no half-written file


def test_loading_what_is_not_an_index_names_the_path(tmp_path, pixels):
    text = tmp_path / "notes.npz"
    text.write_text("hello\n")
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    index = EmbeddingIndex()
    index.add(pixels[0][:10])
    good = index.save(tmp_path / "good.npz")
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[:-200])
    future = tmp_path / "future.npz"  # an index of another format version
    with np.load(good) as archive:
        arrays = dict(archive)
    arrays["metadata"] = np.array(
        str(arrays["metadata"]).replace('"format_version": 1', '"format_version": 9')
    )
    np.savez(future, **arrays)
    cases = {
        tmp_path / "missing.npz": "No such file",
        tmp_path: "is a folder",
        text: "is a text file starting with 'hello'",
        other: "without index metadata",
        cut: "damaged",
        future: "format version 9",
    }
    for path, message in cases.items():
        with pytest.raises(IndexFileError, match=message) as error:
            EmbeddingIndex.load(path)
        assert str(path) in str(error.value)


# ------------------------------------------------------------------------------- the model
def test_fingerprint_follows_the_weights(net):
    twin = keras.models.clone_model(net)
    twin.set_weights(net.get_weights())
    assert model_fingerprint(twin) == model_fingerprint(net)
    online = build_online(net, distance="cosine")  # a oneshot model: its "embedding" layer
    assert model_fingerprint(online) == model_fingerprint(net)
    other = small_net(1)
    assert model_fingerprint(other) != model_fingerprint(net)
    identity = ModelIdentity.of(net)
    assert identity.embedding_dim == 16 and identity.input_shape == (28, 28, 1)
    assert ModelIdentity.from_json(identity.to_json()) == identity


def test_queries_from_another_model_are_refused(net, digits, embedded, tmp_path):
    images, labels = digits
    online = build_online(net, distance="cosine")
    index = EmbeddingIndex.for_model(online)  # the distance the model records
    assert index.distance == CosineSimilarity()
    index.add_images(net, images[100:], labels=labels[100:])
    np.testing.assert_allclose(index.embeddings, embedded[0], atol=1e-6)
    loaded = EmbeddingIndex.load(index.save(tmp_path / "index.npz"))
    twin = keras.models.clone_model(net)
    twin.set_weights(net.get_weights())
    result = loaded.search_images(twin, images[:100], k=K)  # same weights: accepted
    np.testing.assert_array_equal(result.indices, index.search(embedded[2], K).indices)
    other = small_net(1)
    other = keras.Model(other.inputs, other.outputs, name="other_net")
    with pytest.raises(ValueError, match="query model 'other_net' .*'embedding' \\(sha256:"):
        loaded.search_images(other, images[:100], k=K)
    with pytest.raises(ValueError, match="is not the model"):
        loaded.add_images(other, images[:5], labels=labels[:5])
    bare = EmbeddingIndex()
    with pytest.raises(ValueError, match="Expected images of shape \\(N, 28, 28, 1\\)"):
        bare.add_images(net, images[:5, :20])
    assert bare.model is None and bare.dim is None  # a refused add adopts nothing
    bare.add(embedded[0])
    with pytest.raises(ValueError, match="records no model"):
        bare.search_images(net, images[:5])
    with pytest.raises(ValueError, match="records no distance"):
        EmbeddingIndex.for_model(net)


# ------------------------------------------------------------------------------- bad input
def test_bad_inputs_are_refused_with_a_clear_message(pixels, digits):
    gallery, labels, queries = pixels
    index = EmbeddingIndex()
    with pytest.raises(ValueError, match="index is empty"):
        index.search(queries, k=1)
    index.add(gallery, labels=labels)
    images = digits[0][:4]
    bad_queries = {
        "width D=784": queries[:, :10],
        "1 rows with NaN or inf": np.where(np.arange(784) == 3, np.nan, queries[:1]),
        "dtype uint8 .*embed them first": images,
        "dtype int64 .*embed them first": images.reshape(4, -1).astype(np.int64),
        "shape \\(784,\\)": queries[0],
        "at least one embedding": queries[:0],
    }
    for message, bad in bad_queries.items():
        with pytest.raises(ValueError, match=message):
            index.search(bad, k=3)
    for k in (0, -1, 2.5, "3", True):
        with pytest.raises(ValueError, match="argument `k`. Expected an int >= 1"):
            index.search(queries, k=k)
    with pytest.raises(ValueError, match="Expected one per embedding \\(2\\). Received: 3"):
        index.add(gallery[:2], labels=[1, 2, 3])
    with pytest.raises(ValueError, match="labels are integers"):
        index.add(gallery[:2], labels=["a", "b"])
    with pytest.raises(ValueError, match="index is labelled"):
        index.add(gallery[:2])
    with pytest.raises(ValueError, match="integers or of strings.*float64"):
        index.add(gallery[:2], labels=[1.5, 2.5])
    with pytest.raises(
        ValueError, match="ids unique in the index. Received: 1 repeated, e.g. \\[7\\]"
    ):
        index.add(gallery[:2], labels=[1, 2], ids=[7, 1000])
    assert len(index) == len(gallery)  # refused adds changed nothing
    with pytest.raises(
        ValueError, match="argument `backend`. Expected one of \\('exact', 'faiss'\\)"
    ):
        EmbeddingIndex(backend="annoy")
    with pytest.raises(ValueError, match='backend="faiss".*Received: distance=LpDistance\\(p=1'):
        EmbeddingIndex(LpDistance(p=1), backend="faiss")
    with pytest.raises(ValueError, match="Expected some of \\('nlist', 'nprobe'\\)"):
        EmbeddingIndex(backend="faiss", faiss_index="ivf", faiss_params={"M": 8})
    with pytest.raises(ValueError, match="argument `block_elements`"):
        EmbeddingIndex(block_elements=0)


def test_missing_faiss_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # "import faiss" now fails
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        EmbeddingIndex(backend="faiss")
    EmbeddingIndex(backend="exact").add(np.eye(3, dtype=np.float32))  # needs no FAISS
