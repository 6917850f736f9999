"""The application tasks on real data with the committed trained models: search (precision@k,
MAP@R leave-one-out), verification (a threshold at a FAR, the saved Verifier), identification
(rank-1, open-set DIR), clustering (NMI, AMI), novelty (AUROC); images fitted to a model.

MNIST: ``results/mnist-triplet/triplet/model.keras`` (28x28 grey, squared Euclidean), test
digits 0..999 (the "set") and 1000..1999 (held out for calibration). Raw pixels and an
untrained network are the baselines a trained model must beat. Omniglot:
``results/omniglot-best/seed0/batch-hard/model.keras`` (35x35) on 105x105 evaluation drawings
written as PNG files.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from oneshot.applications import (
    Calibration,
    EmbeddingIndex,
    Verifier,
    VerifierFileError,
    calibrate_reject_threshold,
    calibrate_threshold,
    class_split,
    cluster,
    enrolment_split,
    identify,
    novelty,
    novelty_scores,
    open_set,
    read_image_files,
    read_image_folder,
    scorer_for,
    search_quality,
    verifier_path,
)
from oneshot.applications.verify import pair_distances
from oneshot.data import DataError, load_mnist, load_omniglot, resize_area, to_grayscale
from oneshot.distances import pairwise_dissimilarity_numpy
from oneshot.evaluation import retrieval_metrics
from oneshot.models.identity import ModelIdentity
from oneshot.models.networks import conv4
from oneshot.models.saving import load_model

RESULTS = Path(__file__).resolve().parents[1] / "results"
MNIST_MODEL = RESULTS / "mnist-triplet" / "triplet" / "model.keras"
OMNIGLOT_MODEL = RESULTS / "omniglot-best" / "seed0" / "batch-hard" / "model.keras"


@pytest.fixture(scope="module")
def model():
    return load_model(MNIST_MODEL)


@pytest.fixture(scope="module")
def digits(data_dir):
    test = load_mnist("test", data_dir=data_dir)
    return test.images[:2000], test.labels[:2000].astype(np.int64)


@pytest.fixture(scope="module")
def embedded(model, digits):
    """Trained embeddings (2000, 10) of the test digits, the scorer, and raw pixels."""
    images, labels = digits
    scorer = scorer_for(model, None)
    pixels = images.reshape(len(images), -1).astype(np.float32) / 255.0
    return scorer.embed(images), labels, scorer, pixels


def labelled_index(vectors, labels, **kwargs) -> EmbeddingIndex:
    index = EmbeddingIndex(**kwargs)
    index.add(np.ascontiguousarray(vectors, np.float32), labels=labels)
    return index


# ------------------------------------------------------------------------------ search


def test_search_quality_beats_raw_pixels_and_matches_the_full_matrix(embedded):
    e, labels, scorer, pixels = embedded
    trained = search_quality(labelled_index(e[:1000], labels[:1000], distance=scorer.distance))
    raw = search_quality(labelled_index(pixels[:1000], labels[:1000]), k=5)
    assert trained.map_at_r > raw.map_at_r + 0.3  # measured 0.90 against 0.31
    assert trained.precision_at_k > raw.precision_at_k
    assert 0.9 < trained.precision_at_1 < 1.0  # not 1.0: the query itself is left out
    # the same numbers as the evaluation's full distance matrix (query excluded there too)
    full = retrieval_metrics(scorer, e[:1000], labels[:1000])
    assert trained.map_at_r == pytest.approx(full["map_at_r"], abs=1e-9)
    assert trained.precision_at_1 == pytest.approx(full["precision_at_1"], abs=1e-9)
    assert trained.queries == 1000


def test_precision_at_k_by_brute_force(embedded):
    e, labels, scorer, _ = embedded
    x, y = e[:300], labels[:300]
    d = pairwise_dissimilarity_numpy(x, None, scorer.distance).astype(np.float64)
    np.fill_diagonal(d, np.inf)
    nearest = np.argsort(d, axis=1, kind="stable")[:, :7]
    expected = (y[nearest] == y[:, None]).mean()
    assert search_quality(labelled_index(x, y, distance=scorer.distance), k=7).precision_at_k == (
        pytest.approx(expected)
    )


def test_search_exclude_drops_only_the_excluded_row(embedded):
    e, labels, _, _ = embedded
    index = labelled_index(e[:200], labels[:200])
    plain = index.search(e[:50], k=6)
    assert (plain.indices[:, 0] == np.arange(50)).all()  # each item is its own nearest
    own = index.search(e[:50], k=5, exclude=np.arange(50))
    np.testing.assert_array_equal(own.indices, plain.indices[:, 1:])
    none = index.search(e[:50], k=6, exclude=np.full(50, -1))
    np.testing.assert_array_equal(none.indices, plain.indices)
    rows = plain.indices[:, 1]  # each query's second nearest, left out
    other = index.search(e[:50], k=5, exclude=rows)
    expected = [
        [i for i in row if i != skip][:5] for row, skip in zip(plain.indices, rows, strict=True)
    ]
    np.testing.assert_array_equal(other.indices, expected)
    with pytest.raises(ValueError, match="argument `exclude`"):
        index.search(e[:50], k=5, exclude=np.arange(49))
    with pytest.raises(ValueError, match="argument `exclude`"):
        index.search(e[:50], k=5, exclude=np.full(50, 200))


@pytest.mark.skipif(
    importlib.util.find_spec("faiss") is None,
    reason="faiss is not installed (pip install faiss-cpu)",
)
def test_search_quality_with_faiss_is_the_exact_ones(embedded):
    e, labels, scorer, _ = embedded
    exact = search_quality(labelled_index(e[:500], labels[:500], distance=scorer.distance))
    faiss = labelled_index(e[:500], labels[:500], distance=scorer.distance, backend="faiss")
    assert search_quality(faiss).map_at_r == pytest.approx(exact.map_at_r, abs=1e-6)


def test_search_quality_refuses_what_it_cannot_measure(embedded):
    e, labels, _, _ = embedded
    with pytest.raises(ValueError, match="Expected a labelled index"):
        search_quality(EmbeddingIndex())
    alone = labelled_index(e[:3], np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="at least one class with two items"):
        search_quality(alone)
    with pytest.raises(ValueError, match="k <= 3"):
        search_quality(labelled_index(e[:4], np.array([0, 0, 1, 1])), k=4)


# ------------------------------------------------------------------------------ verification


def test_calibrate_threshold_hand_worked():
    same, diff = [0.1, 0.2, 0.5], [0.3, 0.6, 0.7, 0.8]
    loose = calibrate_threshold(same, diff, far=0.3)  # one of 4 different pairs may pass
    assert (loose.threshold, loose.far, loose.tar) == (0.5, 0.25, 1.0)
    strict = calibrate_threshold(same, diff, far=0.2)  # none may
    assert (strict.threshold, strict.far) == (0.2, 0.0)
    assert strict.tar == pytest.approx(2 / 3)
    assert not strict.resolved and calibrate_threshold(same, diff, far=0.25).resolved
    assert strict.pairs_needed == 5 and "it needs at least 5" in strict.problems()[0]
    assert loose.useful and loose.problems() == []  # 4 pairs measure a FAR of 0.3
    # 1 of 20 same pairs below the nearest different pair: TAR 5% at FAR 0.01 is useless
    poor = calibrate_threshold(np.r_[0.1, np.full(19, 0.9)], np.linspace(0.2, 1.0, 200), 0.01)
    assert poor.resolved and poor.tar == pytest.approx(0.05) and not poor.useful
    assert poor.problems() == [
        "the threshold is useless: it accepts 5.0% of the same-class pairs at FAR 0.01 (below "
        "10%). Ask for a larger FAR (--far), or use a better model"
    ]
    with pytest.raises(ValueError, match="No threshold accepts a same-class pair"):
        calibrate_threshold([0.9], [0.1, 0.2], far=0.1)
    with pytest.raises(ValueError, match="argument `far`"):
        calibrate_threshold(same, diff, far=0.0)
    with pytest.raises(ValueError, match="argument `distances_diff`"):
        calibrate_threshold(same, [np.nan], far=0.1)


@pytest.mark.parametrize("far", [1e-2, 1e-3])
def test_calibrated_threshold_keeps_the_far_on_its_pairs_and_is_the_largest(embedded, far):
    e, labels, scorer, _ = embedded
    same, diff = pair_distances(scorer, e[1000:1600], labels[1000:1600])
    c = calibrate_threshold(same, diff, far)
    assert c.resolved and c.far <= far
    assert c.far == np.mean(diff <= c.threshold) and c.tar == np.mean(same <= c.threshold)
    next_same = same[same > c.threshold].min()  # the next larger threshold breaks the FAR
    assert np.mean(diff <= next_same) > far
    assert c.tar > (0.5 if far == 1e-3 else 0.8)  # a trained model: most same pairs pass


def test_verifier_decides_real_pairs_saves_and_refuses_another_model(model, embedded, tmp_path):
    e, labels, scorer, _ = embedded
    images = load_mnist("test").images[:2000]
    verifier = Verifier.calibrate(model, images[1000:2000], labels[1000:2000], far=1e-2)
    assert verifier.calibration.far <= 1e-2 and verifier.distance == scorer.distance
    # unseen pairs from the first 1000 digits: 200 of each kind
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 1000, (2, 4000))
    same_pairs = np.flatnonzero((labels[a] == labels[b]) & (a != b))[:200]
    diff_pairs = np.flatnonzero(labels[a] != labels[b])[:200]
    said = [verifier.verify_embeddings(e[a[p]][None], e[b[p]][None])[0].same for p in same_pairs]
    assert np.mean(said) > 0.8
    said = [verifier.verify_embeddings(e[a[p]][None], e[b[p]][None])[0].same for p in diff_pairs]
    assert np.mean(said) < 0.05
    for p in (same_pairs[0], diff_pairs[0]):  # from images: the same distance and answer
        answer = verifier.verify(model, images[a[p]], images[b[p]])
        expected = verifier.verify_embeddings(e[a[p]][None], e[b[p]][None])[0]
        assert answer.distance == pytest.approx(expected.distance, rel=1e-5, abs=1e-6)
        assert answer.same == expected.same

    path = verifier_path(tmp_path / "model.keras")
    assert path.name == "model.verify.json"
    verifier.save(path)
    again = Verifier.load(path, model)
    assert again == verifier
    keras.utils.set_random_seed(0)
    other = conv4((28, 28, 1), embedding_dim=10, width=8)
    with pytest.raises(ValueError, match="is not the model this verifier was built with"):
        Verifier.load(path, other)
    with pytest.raises(ValueError, match="is not the model this verifier was built with"):
        verifier.verify(other, images[0], images[1])
    path.write_text('{"format": "something else"}')
    with pytest.raises(VerifierFileError, match=str(path)):
        Verifier.load(path)
    with pytest.raises(VerifierFileError, match="Calibrate one first"):
        Verifier.load(tmp_path / "missing.verify.json")


# ------------------------------------------------------------------------------ identification


def gallery_of(e, labels, distance, shots=5, seed=0):
    """A gallery of ``shots`` enrolled items per class, and the other items (queries)."""
    g, q = enrolment_split(labels, shots, seed)
    return labelled_index(e[g], labels[g], distance=distance), q


def test_enrolment_and_class_splits():
    labels = np.repeat(np.array(["a", "b", "c", "d"]), [3, 4, 5, 6])
    g, q = enrolment_split(labels, shots=2, seed=1)
    assert np.array_equal(np.sort(np.r_[g, q]), np.arange(len(labels)))
    assert (np.unique(labels[g], return_counts=True)[1] == 2).all()
    with pytest.raises(ValueError, match="class 'a' has 3 image"):
        enrolment_split(labels, shots=3)
    first, second = class_split(labels, 0.5, seed=0)
    assert not set(labels[first]) & set(labels[second])
    assert len(set(labels[first])) == 2 and len(first) + len(second) == len(labels)


def test_closed_set_rank1_is_the_nearest_enrolled_label(embedded):
    e, labels, scorer, pixels = embedded
    gallery, q = gallery_of(e[:1000], labels[:1000], scorer.distance, shots=1)
    found = identify(gallery, e[q], labels[q])
    d = pairwise_dissimilarity_numpy(e[q], gallery.embeddings, scorer.distance)
    np.testing.assert_array_equal(found.labels, gallery.labels[np.argmin(d, axis=1)])
    assert found.rank1 == np.mean(found.labels == labels[q])
    raw_gallery, _ = gallery_of(pixels[:1000], labels[:1000], "euclidean", shots=1)
    assert found.rank1 > identify(raw_gallery, pixels[q], labels[q]).rank1 + 0.1


def test_open_set_dir_at_a_far_enrolling_digits_0_to_4(embedded):
    e, labels, scorer, _ = embedded
    known = np.flatnonzero(labels < 5)
    unknown = np.flatnonzero(labels >= 5)
    gallery, q = gallery_of(e[known], labels[known], scorer.distance)
    q = known[q]
    q_cal, q_test = q[::2], q[1::2]
    u_cal, u_test = unknown[::2], unknown[1::2]  # the same unknown digits, other images
    calibration = calibrate_reject_threshold(gallery, e[q_cal], e[u_cal], far=0.05)
    assert isinstance(calibration, Calibration) and calibration.far <= 0.05
    result = open_set(gallery, e[q_test], labels[q_test], e[u_test], calibration)
    found = identify(gallery, e[q_test], labels[q_test])
    accepted = found.distances <= calibration.threshold
    assert result.dir == np.mean(accepted & (found.labels == labels[q_test]))  # the definition
    assert result.dir <= result.rank1
    assert 0.7 < result.dir  # measured 0.95
    assert result.fpir < 0.15  # held-out images of the same unknown digits: near the 0.05 asked
    loose = calibrate_reject_threshold(gallery, e[q_cal], e[u_cal], far=0.5)
    assert open_set(gallery, e[q_test], labels[q_test], None, loose).dir > result.dir


# ------------------------------------------------------------------------------ clustering


def test_clustering_nmi_of_the_trained_model_beats_pixels_and_an_untrained_network(
    embedded, digits
):
    e, labels, scorer, pixels = embedded
    keras.utils.set_random_seed(0)
    untrained = conv4((28, 28, 1), embedding_dim=10, width=8)
    random_e = untrained.predict(digits[0][:500, ..., None] / 255.0, verbose=0)
    for method in ("kmeans", "agglomerative"):
        trained = cluster(e[:500], labels[:500], method=method, distance=scorer.distance)
        raw = cluster(pixels[:500], labels[:500], method=method)
        rand = cluster(random_e, labels[:500], method=method)
        assert trained.n_clusters == 10 and set(trained.assignments) == set(range(10))
        assert trained.nmi > max(raw.nmi, rand.nmi) + 0.2  # measured 0.94 / 0.92 vs 0.55
        assert trained.ami > max(raw.ami, rand.ami) + 0.2
    average = cluster(e[:500], labels[:500], method="agglomerative", linkage="average")
    assert average.method == "agglomerative (average)" and average.nmi > 0.8
    unlabelled = cluster(e[:100], n_clusters=3)
    assert unlabelled.nmi is None and len(set(unlabelled.assignments)) == 3
    with pytest.raises(ValueError, match="argument `n_clusters`"):
        cluster(e[:100])
    with pytest.raises(ValueError, match="argument `method`"):
        cluster(e[:100], n_clusters=3, method="dbscan")


# ------------------------------------------------------------------------------ novelty


def test_novelty_auroc_of_unseen_digits_enrolling_0_to_4(embedded):
    e, labels, scorer, pixels = embedded
    known = np.flatnonzero(labels[:1000] < 5)
    gallery, q = gallery_of(e[known], labels[known], scorer.distance)
    unseen = np.flatnonzero(labels[:1000] >= 5)
    result = novelty(gallery, e[known[q]], e[unseen])
    d = pairwise_dissimilarity_numpy(e[unseen], gallery.embeddings, scorer.distance)
    np.testing.assert_allclose(result.unseen_scores, d.min(axis=1), rtol=1e-5, atol=1e-6)
    assert result.auroc > 0.9  # measured 0.99
    raw_gallery, _ = gallery_of(pixels[known], labels[known], "euclidean")
    raw = novelty(raw_gallery, pixels[known[q]], pixels[unseen])
    assert result.auroc > raw.auroc
    assert (novelty_scores(gallery, gallery.embeddings) < 1e-3).all()  # enrolled: not novel


# ------------------------------------------------------------------------------ images in


def save(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def test_image_files_are_fitted_to_the_model_and_say_so(model, digits, tmp_path):
    images, _ = digits
    identity = ModelIdentity.of(model)
    big = np.kron(images[0], np.ones((2, 2), np.uint8))  # 56x56
    colour = np.repeat(images[1][..., None], 3, axis=-1)
    colour[..., 0] = 255 - colour[..., 0]  # really colour
    files = [save(tmp_path / "a.png", images[0]), save(tmp_path / "b.png", big)]
    read = read_image_files(files, identity)
    np.testing.assert_array_equal(read.images[0], images[0])
    np.testing.assert_array_equal(read.images[1], resize_area(big[None], 28)[0])
    assert read.notes == ("resized 1 of 2 images (56x56) to 28x28 by area averaging",)
    path = save(tmp_path / "c.png", colour)
    with pytest.raises(DataError, match=f"{path} is a colour image, but the network takes grey"):
        read_image_files([path], identity)
    converted = read_image_files([path], identity, convert=True)
    np.testing.assert_array_equal(converted.images[0], to_grayscale(colour[None])[0])
    assert converted.notes == ("converted 1 colour images to grey",)
    strip = save(tmp_path / "strip.png", np.zeros((28, 90), np.uint8))
    with pytest.raises(DataError, match=r"strip.png is 90x28 .* Crop it"):
        read_image_files([strip], identity)
    with pytest.raises(DataError, match="No such image file"):
        read_image_files([tmp_path / "nothing.png"], identity)


def test_omniglot_model_on_drawing_files_beats_pixels(data_dir, tmp_path):
    """20 evaluation characters x 5 drawings, written as 105x105 PNG files, read for the
    35x35 Omniglot model (resized by area, as the built-in sets)."""
    data = load_omniglot("evaluation", data_dir=data_dir)
    chars = np.unique(data.labels)[::33][:20]
    for c in chars:
        for j, i in enumerate(np.flatnonzero(data.labels == c)[:5]):
            save(tmp_path / f"char{c:03d}" / f"{j}.png", data.images[i])
    omniglot = load_model(OMNIGLOT_MODEL)
    read = read_image_folder(tmp_path, ModelIdentity.of(omniglot), verbose=False)
    assert read.images.shape == (100, 35, 35)
    assert read.notes == ("resized 100 of 100 images (105x105) to 35x35 by area averaging",)
    scorer = scorer_for(omniglot, None)
    trained = search_quality(labelled_index(scorer.embed(read.images), read.labels))
    pixels = read.images.reshape(100, -1).astype(np.float32) / 255.0
    raw = search_quality(labelled_index(pixels, read.labels))
    assert trained.map_at_r > raw.map_at_r + 0.2
    assert trained.precision_at_1 > 0.8
