"""Samplers: label rules of pairs/triplets/quadruplets, P x K layout, determinism, augmentation."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import tensorflow as tf

from oneshot.data import load_omniglot
from oneshot.data.augment import random_affine, rotate
from oneshot.data.indices import _distinct_positions
from oneshot.data.samplers import (
    ClassIndex,
    pair_dataset,
    pk_dataset,
    quadruplet_dataset,
    sample_pair_indices,
    sample_pk_indices,
    sample_quadruplet_indices,
    sample_triplet_indices,
    triplet_dataset,
)


@pytest.fixture(scope="module")
def mnist(data_dir):
    with np.load(data_dir / "mnist" / "mnist.npz") as npz:
        return npz["x_test"], npz["y_test"].astype(np.int32)


@pytest.fixture(scope="module")
def omniglot_labels(data_dir):
    """Character and alphabet ids of the real Omniglot evaluation set, read from the zip's
    folder names (``images_evaluation/<alphabet>/<character>/<drawing>.png``)."""
    with zipfile.ZipFile(data_dir / "omniglot" / "images_evaluation.zip") as archive:
        parts = [n.split("/") for n in archive.namelist() if n.endswith(".png")]
    _, alphabets = np.unique([p[-3] for p in parts], return_inverse=True)
    _, labels = np.unique(["/".join(p[-3:-1]) for p in parts], return_inverse=True)
    return labels.astype(np.int32), alphabets.astype(np.int32)


def test_pairs_balanced_and_labelled_right(mnist):
    _, labels = mnist
    i, j, same = sample_pair_indices(labels, 1000, np.random.default_rng(0))
    assert same.sum() == 500
    np.testing.assert_array_equal(labels[i] == labels[j], same == 1)
    assert np.all(i[same == 1] != j[same == 1])


def test_triplets_follow_the_label_rules(mnist):
    _, labels = mnist
    a, p, n = sample_triplet_indices(labels, 5000, np.random.default_rng(1))
    assert np.all(labels[a] == labels[p]) and np.all(a != p)
    assert np.all(labels[a] != labels[n])
    # Anchor classes are uniform over the 10 digits (expected 500 each).
    counts = np.bincount(labels[a], minlength=10)
    assert counts.min() > 400 and counts.max() < 600


@pytest.mark.parametrize("num_classes", [3, 4, 10])
def test_second_negative_differs_from_anchor_and_negative(num_classes):
    labels = np.repeat(np.arange(num_classes), 5)
    a, p, n, n2 = sample_quadruplet_indices(labels, 20000, np.random.default_rng(num_classes))
    assert np.all(labels[a] == labels[p]) and np.all(a != p)
    assert np.all(labels[n] != labels[a])
    assert np.all(labels[n2] != labels[a])
    assert np.all(labels[n2] != labels[n])
    # Uniform over the remaining classes: every class shows up as n2.
    assert len(np.unique(labels[n2])) == num_classes


def test_original_bug_lets_second_negative_share_a_class():
    """With 10 classes drawn uniformly, n2 hits a's or n's class about 20% of the time."""
    labels = np.repeat(np.arange(10), 5)
    a, _, n, n2 = sample_quadruplet_indices(
        labels, 20000, np.random.default_rng(0), reproduce_original_bug=True
    )
    clash = (labels[n2] == labels[a]) | (labels[n2] == labels[n])
    assert 0.17 < clash.mean() < 0.23


def test_quadruplets_need_three_classes():
    with pytest.raises(ValueError, match="at least 3 classes"):
        sample_quadruplet_indices(np.array([0, 0, 1, 1]), 4, np.random.default_rng(0))


def test_distinct_positions_are_distinct_and_uniform():
    rng = np.random.default_rng(0)
    counts = np.array([4, 5, 20, 7000] * 500)
    pos = _distinct_positions(counts, 4, rng)
    assert np.all(pos >= 0) and np.all(pos < counts[:, None])
    assert all(len(set(row)) == 4 for row in pos)
    # Class of 5, choose 4: each position left out with probability 1/5.
    rows = pos[1::4]
    freq = np.bincount(rows.ravel(), minlength=5) / rows.size
    np.testing.assert_allclose(freq, 0.2, atol=0.02)


def test_pk_batches_have_p_classes_of_k_distinct_images(mnist):
    _, labels = mnist
    idx = sample_pk_indices(ClassIndex(labels), 8, 4, np.random.default_rng(0))
    assert len(idx) == 32 and len(np.unique(idx)) == 32
    blocks = labels[idx].reshape(8, 4)
    assert np.all(blocks == blocks[:, :1])
    assert len(np.unique(blocks[:, 0])) == 8


def test_pk_errors_name_the_argument(mnist):
    _, labels = mnist
    with pytest.raises(ValueError, match="`p`"):
        sample_pk_indices(ClassIndex(labels), 11, 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="alphabets"):
        sample_pk_indices(ClassIndex(labels), 4, 4, np.random.default_rng(0), within_alphabet=True)


DIGIT_NAMES = np.array(
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
)


def test_pk_with_string_labels_yields_codes_that_group_the_images_right(mnist):
    images, labels = mnist
    words = DIGIT_NAMES[labels]  # sorted otherwise than the digits: codes differ from digits
    names = np.unique(words)
    row_of = {}  # the real digit of each image, found from its pixels
    for image, digit in zip(images, labels, strict=True):
        row_of.setdefault(image.tobytes(), DIGIT_NAMES[digit])
    seen = 0
    for x, y in pk_dataset(images, words, p=4, k=3, seed=5, steps=4):
        y = y.numpy()
        assert y.dtype == np.int32
        groups = y.reshape(4, 3)
        assert np.all(groups == groups[:, :1]) and len(np.unique(groups[:, 0])) == 4
        pixels = np.rint(x.numpy()[..., 0] * 255).astype(np.uint8)
        truth = [row_of[p.tobytes()] for p in pixels]
        assert truth == list(names[y])  # code c is the images' class name names[c]
        seen += len(set(truth))
    assert seen == 16
    # digits as strings sort like the ints: the same stream, the same int labels
    plain = list(pk_dataset(images, labels, p=4, k=3, seed=5, steps=2))
    text = list(pk_dataset(images, labels.astype(str)[:, None], p=4, k=3, seed=5, steps=2))
    for (x1, y1), (x2, y2) in zip(plain, text, strict=True):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)


def test_samplers_take_string_labels_and_check_them(mnist):
    images, labels = mnist
    words = DIGIT_NAMES[labels]
    a, p, n = sample_triplet_indices(words, 500, np.random.default_rng(0))
    assert np.all(words[a] == words[p]) and np.all(words[a] != words[n])
    i, j, same = sample_pair_indices(words[:, None], 500, np.random.default_rng(0))
    np.testing.assert_array_equal(words[i] == words[j], same == 1)
    with pytest.raises(ValueError, match=r"`labels`. Expected 10000 labels.*Received 9999"):
        pk_dataset(images, labels[1:], p=4, k=3)
    with pytest.raises(ValueError, match=r"`labels`. Expected a 1-D array"):
        triplet_dataset(images, np.stack([labels, labels], 1))
    with pytest.raises(ValueError, match=r"`images`.*\[0, 255\]: divide them by 255"):
        pk_dataset(images.astype(np.float32), labels, p=4, k=3)


def test_within_alphabet_batches_on_real_omniglot(omniglot_labels):
    labels, alphabets = omniglot_labels
    assert len(np.unique(labels)) == 659 and len(np.unique(alphabets)) == 20
    index = ClassIndex(labels, alphabets)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(20):
        idx = sample_pk_indices(index, 10, 4, rng, within_alphabet=True)
        assert len(np.unique(alphabets[idx])) == 1
        assert len(np.unique(labels[idx])) == 10
        seen.add(int(alphabets[idx[0]]))
    assert len(seen) > 3  # alphabets vary between batches


def _check_pk_layout(idx, labels, p, k):
    """p distinct classes x k distinct images, grouped by class; returns the (p,) classes."""
    assert idx.shape == (p * k,) and len(np.unique(idx)) == p * k
    blocks = labels[idx].reshape(p, k)
    assert np.all(blocks == blocks[:, :1])
    assert len(np.unique(blocks[:, 0])) == p
    return blocks[:, 0]


@pytest.fixture(scope="module")
def omniglot_background(data_dir):
    data = load_omniglot("background", image_size=28, data_dir=data_dir)
    return np.asarray(data.labels), np.asarray(data.alphabets)


def test_within_alphabet_covers_every_background_alphabet(omniglot_background):
    """At p=32, 15 of the 30 background alphabets have fewer than 32 characters; they used to
    be never sampled. Now each one is the batch's alphabet (filled up from others) or a filler."""
    labels, alphabets = omniglot_background
    index = ClassIndex(labels, alphabets)
    alpha_of = index.alphabet_of_class
    sizes = np.bincount(alpha_of)
    assert index.num_classes == 964 and len(sizes) == 30 and np.sum(sizes < 32) == 15
    rng = np.random.default_rng(0)
    seen, chosen = set(), set()
    for _ in range(300):
        idx = sample_pk_indices(index, 32, 4, rng, within_alphabet=True)
        classes = _check_pk_layout(idx, labels, 32, 4)
        batch_alpha = alphabets[idx].reshape(32, 4)[:, 0]
        np.testing.assert_array_equal(
            batch_alpha, alpha_of[np.searchsorted(index.classes, classes)]
        )
        main = batch_alpha[0]
        own = min(sizes[main], 32)  # the main alphabet's classes first, then fillers
        assert np.all(batch_alpha[:own] == main) and np.all(batch_alpha[own:] != main)
        seen.update(batch_alpha.tolist())
        chosen.add(int(main))
    assert seen == set(range(30))
    assert chosen == set(range(30))  # every alphabet also gets its own within-alphabet batches


def _toy_alphabet_index():
    """Alphabet 0: classes 0, 1; alphabet 1: classes 2, 3, 4; alphabet 2: classes 5..9, each
    with 3 images; class 10 (alphabet 2) has a single image, so never eligible for k=2."""
    labels = np.concatenate([np.repeat(np.arange(10), 3), [10]])
    class_alpha = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 2])
    return labels, class_alpha[labels]


def test_within_alphabet_fills_small_alphabets_from_others():
    """p=4, k=2: eligible alphabet sizes (2, 3, 5), weights max(n, 4) = (4, 4, 5) / 13.
    Alphabet 0 gives its 2 classes + 2 of the 8 others, alphabet 1 its 3 + 1 of the 7 others,
    alphabet 2 4 of its 5. So the per-batch chance of a class is
    alphabet 0: 4/13 + 4/13 * 1/7 = 32/91; alphabet 1: 4/13 + 4/13 * 2/8 = 35/91;
    alphabet 2: 5/13 * 4/5 + 4/13 * 2/8 + 4/13 * 1/7 = 39/91 (sums to 4)."""
    labels, alphabets = _toy_alphabet_index()
    index = ClassIndex(labels, alphabets)
    rng = np.random.default_rng(0)
    n = 10000
    main_count, class_count = np.zeros(3), np.zeros(11)
    for _ in range(n):
        idx = sample_pk_indices(index, 4, 2, rng, within_alphabet=True)
        classes = _check_pk_layout(idx, labels, 4, 2)
        alpha = alphabets[idx].reshape(4, 2)[:, 0]
        main = alpha[0]
        main_count[main] += 1
        class_count[classes] += 1
        if main == 0:
            assert set(classes[:2]) == {0, 1} and np.all(alpha[2:] != 0)
        elif main == 1:
            assert set(classes[:3]) == {2, 3, 4} and alpha[3] != 1
        else:
            assert np.all(alpha == 2)
    assert class_count[10] == 0
    np.testing.assert_allclose(main_count / n, [4 / 13, 4 / 13, 5 / 13], atol=0.02)
    expected = np.array([32] * 2 + [35] * 3 + [39] * 5 + [0]) / 91
    np.testing.assert_allclose(class_count / n, expected, atol=0.02)


def test_within_alphabet_with_p_equal_to_all_eligible_classes():
    labels, alphabets = _toy_alphabet_index()
    index = ClassIndex(labels, alphabets)
    rng = np.random.default_rng(1)
    for _ in range(20):
        idx = sample_pk_indices(index, 10, 2, rng, within_alphabet=True)
        assert set(_check_pk_layout(idx, labels, 10, 2)) == set(range(10))


def test_pk_refuses_p_above_the_eligible_classes():
    labels, alphabets = _toy_alphabet_index()
    index = ClassIndex(labels, alphabets)
    for within in (True, False):
        with pytest.raises(ValueError, match=r"`p`.*at most 10 .*k=2.*11 classes.*p=11"):
            sample_pk_indices(index, 11, 2, np.random.default_rng(0), within_alphabet=within)
        with pytest.raises(ValueError, match=r"`p`.*at most 0 .*k=4.*p=1"):
            sample_pk_indices(index, 1, 4, np.random.default_rng(0), within_alphabet=within)


def _old_default_pk_indices(index, p, k, rng):
    """Copy of ``sample_pk_indices(..., within_alphabet=False)`` and ``_distinct_positions``
    as committed before the within-alphabet fill (training runs depend on this stream)."""
    eligible = np.flatnonzero(index.counts >= k)
    classes = eligible[rng.choice(len(eligible), size=p, replace=False)]
    counts = index.counts[classes]
    chosen = np.empty((len(counts), k), dtype=np.int64)
    for step in range(k):
        top = counts - k + step
        t = (rng.random(len(counts)) * (top + 1)).astype(np.int64)
        seen = np.any(chosen[:, :step] == t[:, None], axis=1)
        chosen[:, step] = np.where(seen, top, t)
    return index.order[index.starts[np.repeat(classes, k)] + chosen.reshape(-1)]


def test_default_pk_stream_is_unchanged():
    """Batches of the default sampler for a fixed seed, recorded from the committed code."""
    labels = np.repeat(np.arange(12), np.arange(12) % 5 + 3)  # 57 images, 3 to 7 per class
    alphabets = (np.arange(12) % 3)[labels]
    for index in (ClassIndex(labels), ClassIndex(labels, alphabets)):
        rng = np.random.default_rng(7)
        got = [sample_pk_indices(index, 4, 3, rng) for _ in range(3)]
        np.testing.assert_array_equal(
            got,
            [
                [38, 40, 42, 29, 30, 31, 50, 51, 52, 34, 33, 36],
                [9, 7, 11, 25, 26, 27, 50, 51, 52, 46, 45, 49],
                [50, 51, 52, 8, 10, 11, 0, 1, 2, 15, 14, 12],
            ],
        )
    # The same against a copy of the old code, over seeds and shapes (and the rng's state).
    index = ClassIndex(labels, alphabets)
    for seed, p, k in [(0, 12, 3), (1, 5, 4), (2, 2, 7), (3, 1, 1), (4, 8, 2)]:
        new_rng, old_rng = np.random.default_rng(seed), np.random.default_rng(seed)
        for _ in range(5):
            np.testing.assert_array_equal(
                sample_pk_indices(index, p, k, new_rng),
                _old_default_pk_indices(index, p, k, old_rng),
            )
        assert new_rng.random() == old_rng.random()

    # each image holds its own index (uint8, read back as index / 255)
    images = np.broadcast_to(np.arange(len(labels), dtype=np.uint8)[:, None, None], (57, 2, 2))
    expected_idx = [[3, 6, 43, 49, 51, 52], [51, 50, 29, 31, 33, 35], [23, 21, 25, 26, 54, 55]]
    for extra in ({}, {"alphabets": alphabets, "within_alphabet": False}):
        batches = list(pk_dataset(images, labels, p=3, k=2, seed=11, steps=3, **extra))
        for (x, y), idx in zip(batches, expected_idx, strict=True):
            np.testing.assert_array_equal(np.rint(x.numpy()[:, 0, 0, 0] * 255), idx)
            np.testing.assert_array_equal(y.numpy(), labels[idx])


def test_datasets_are_deterministic_and_shaped(mnist):
    images, labels = mnist
    first = [x.numpy() for x, _ in pk_dataset(images, labels, 4, 2, seed=3, steps=2)]
    again = [x.numpy() for x, _ in pk_dataset(images, labels, 4, 2, seed=3, steps=2)]
    other = [x.numpy() for x, _ in pk_dataset(images, labels, 4, 2, seed=4, steps=2)]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first[0].shape == (8, 28, 28, 1) and first[0].dtype == np.float32
    assert 0.0 <= first[0].min() and first[0].max() <= 1.0

    (x1, x2), y = next(iter(pair_dataset(images, labels, 6, seed=0)))
    assert x1.shape == (6, 28, 28, 1) and y.dtype == tf.float32
    (elem,) = next(iter(triplet_dataset(images, labels, 5, seed=0)))
    assert len(elem) == 3 and elem[2].shape == (5, 28, 28, 1)
    (elem,) = next(iter(quadruplet_dataset(images, labels, 5, seed=0)))
    assert len(elem) == 4
    # The gathered images are the real ones: a pk batch matches its labels' pixels.
    x, y = next(iter(pk_dataset(images, labels, 2, 2, seed=1)))
    rng = np.random.default_rng(1)
    idx = sample_pk_indices(ClassIndex(labels), 2, 2, rng)
    np.testing.assert_allclose(x.numpy()[..., 0], images[idx] / 255.0, atol=1e-6)
    np.testing.assert_array_equal(y.numpy(), labels[idx])


def test_affine_identity_and_determinism():
    rng = np.random.default_rng(0)
    images = tf.constant(rng.random((3, 21, 21, 1)), tf.float32)
    same = random_affine(
        images, tf.constant([1, 2]), rotation=0, shear=0, scale=(1, 1), translation=0
    )
    np.testing.assert_allclose(same.numpy(), images.numpy(), atol=1e-5)
    a = random_affine(images, tf.constant([5, 6]))
    b = random_affine(images, tf.constant([5, 6]))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.allclose(a.numpy(), images.numpy())


def test_affine_moves_a_dot_within_koch_ranges():
    """A dot 6 px right of centre: rotation <= 10 deg, scale <= 1.2, shear <= 0.3 and a shift
    <= 2 px keep it within about 6*1.2*1.3 + 2 ~ 11.4 px of the centre, and it moves."""
    images = np.zeros((64, 41, 41, 1), np.float32)
    images[:, 20, 26] = 1.0
    out = random_affine(tf.constant(images), tf.constant([0, 1])).numpy()[..., 0]
    ys, xs = np.mgrid[:41, :41]
    mass = out.sum(axis=(1, 2))
    cx = (out * xs).sum(axis=(1, 2)) / mass
    cy = (out * ys).sum(axis=(1, 2)) / mass
    radius = np.hypot(cx - 20, cy - 20)
    assert np.all(mass > 0.2)
    assert np.all(radius < 11.5) and np.all(radius > 1.0)
    assert np.std(cx) > 0.3 and np.std(cy) > 0.3


def test_rotate_turns_a_dot_about_the_centre_by_the_angle():
    """A dot 8 px right of the centre of a 41x41 image: +90 degrees puts it 8 px above the
    centre (counter-clockwise on screen), -90 below, 0 leaves the image as it is."""
    images = np.zeros((1, 41, 41, 1), np.float32)
    images[0, 20, 28] = 1.0
    for degrees, (row, col) in [(90, (12, 20)), (-90, (28, 20)), (180, (20, 12))]:
        out = rotate(images, degrees).numpy()[0, ..., 0]
        assert np.unravel_index(out.argmax(), out.shape) == (row, col), degrees
        assert out.max() > 0.99
    np.testing.assert_array_equal(rotate(images, 0).numpy(), images)
    small = rotate(images, 10).numpy()[0, ..., 0]
    ys, xs = np.mgrid[:41, :41]
    angle = np.degrees(np.arctan2(-(small * ys).sum() + 20, (small * xs).sum() - 20))
    assert abs(angle - 10) < 0.5


def test_augment_strength_scales_every_range():
    """A dot 6 px right of centre moves further as the strength grows (same draws, wider
    ranges); strength 1 is the default bit for bit, and one that makes the scale <= 0 fails."""
    images = np.zeros((64, 41, 41, 1), np.float32)
    images[:, 20, 26] = 1.0
    ys, xs = np.mgrid[:41, :41]
    seed = tf.constant([0, 1])

    def moved(strength: float) -> float:
        out = random_affine(tf.constant(images), seed, strength=strength).numpy()[..., 0]
        mass = out.sum(axis=(1, 2))
        cx, cy = (out * xs).sum(axis=(1, 2)) / mass, (out * ys).sum(axis=(1, 2)) / mass
        return float(np.mean(np.hypot(cx - 26, cy - 20)))

    np.testing.assert_array_equal(
        random_affine(tf.constant(images), seed, strength=1.0).numpy(),
        random_affine(tf.constant(images), seed).numpy(),
    )
    assert moved(0.5) < 0.7 * moved(1.0) and moved(2.0) > 1.4 * moved(1.0)
    with pytest.raises(ValueError, match="strength"):
        random_affine(tf.constant(images), seed, strength=5.0)


def test_augment_flag_changes_images_deterministically(mnist):
    images, labels = mnist
    plain, _ = next(iter(pk_dataset(images, labels, 2, 2, seed=0)))
    aug1, _ = next(iter(pk_dataset(images, labels, 2, 2, seed=0, augment=True)))
    aug2, _ = next(iter(pk_dataset(images, labels, 2, 2, seed=0, augment=True)))
    np.testing.assert_array_equal(aug1.numpy(), aug2.numpy())
    assert not np.allclose(plain.numpy(), aug1.numpy())


def test_pk_batches_of_colour_images_are_the_real_pixels(mnist):
    """uint8 (N, H, W, 3) images with differing channels: each batch image is its dataset
    image / 255, channels in order (none dropped, swapped or averaged)."""
    images, labels = mnist
    rgb = np.stack([images[:500], images[:500] // 2, 255 - images[:500]], axis=-1)
    x, y = next(iter(pk_dataset(rgb, labels[:500], 3, 2, seed=1)))
    idx = sample_pk_indices(ClassIndex(labels[:500]), 3, 2, np.random.default_rng(1))
    assert x.shape == (6, 28, 28, 3) and x.dtype == tf.float32
    np.testing.assert_allclose(x.numpy(), rgb[idx] / 255.0, atol=1e-6)
    np.testing.assert_array_equal(y.numpy(), labels[:500][idx])


def test_augmentation_warps_the_three_channels_alike(mnist):
    """One warp per image, the same for each channel: a tinted image warped is the warped grey
    image tinted; through pk_dataset the channel ratios survive augmentation."""
    images, labels = mnist
    grey = tf.constant(images[:4, ..., None] / 255.0, tf.float32)
    tint = tf.constant([1.0, 0.5, 0.25])
    seed = tf.constant([3, 4])
    warped = random_affine(grey * tint, seed).numpy()
    np.testing.assert_allclose(warped, random_affine(grey, seed).numpy() * tint, atol=1e-6)
    assert not np.allclose(warped, (grey * tint).numpy())
    rgb = np.stack([images[:500], images[:500] // 2, images[:500] // 4], axis=-1)
    x, _ = next(iter(pk_dataset(rgb, labels[:500], 3, 2, seed=0, augment=True)))
    plain, _ = next(iter(pk_dataset(rgb, labels[:500], 3, 2, seed=0)))
    x = x.numpy()
    assert x.shape == (6, 28, 28, 3) and not np.allclose(x, plain.numpy())
    np.testing.assert_allclose(x[..., 1], x[..., 0] / 2, atol=2.5 / 255)
    np.testing.assert_allclose(x[..., 2], x[..., 0] / 4, atol=2.5 / 255)
