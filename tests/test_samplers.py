"""Samplers: label rules of pairs/triplets/quadruplets, P x K layout, determinism, augmentation."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import tensorflow as tf

from oneshot.data.augment import random_affine
from oneshot.data.samplers import (
    ClassIndex,
    _distinct_positions,
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


def test_augment_flag_changes_images_deterministically(mnist):
    images, labels = mnist
    plain, _ = next(iter(pk_dataset(images, labels, 2, 2, seed=0)))
    aug1, _ = next(iter(pk_dataset(images, labels, 2, 2, seed=0, augment=True)))
    aug2, _ = next(iter(pk_dataset(images, labels, 2, 2, seed=0, augment=True)))
    np.testing.assert_array_equal(aug1.numpy(), aug2.numpy())
    assert not np.allclose(plain.numpy(), aug1.numpy())
