"""Validation splits by class (oneshot.data.splits) on real MNIST and Omniglot."""

from __future__ import annotations

import numpy as np
import pytest

from oneshot.data import load_mnist, load_omniglot
from oneshot.data.fingerprint import fingerprint
from oneshot.data.splits import hold_out_classes


@pytest.fixture(scope="module")
def digits(data_dir):
    return load_mnist("test", data_dir=data_dir)


def _same_images(part, whole, original_label: int, index: int) -> bool:
    """Whether image ``index`` of ``part`` is an image of class ``original_label`` of ``whole``."""
    candidates = whole.images[whole.labels == original_label]
    return bool(np.any(np.all(candidates == part.images[index], axis=(1, 2))))


def test_explicit_classes_split_mnist_into_disjoint_relabelled_halves(digits):
    train, held = hold_out_classes(digits, [5, 6, 7, 8, 9])
    assert held.class_names == ["5", "6", "7", "8", "9"]
    assert train.class_names == ["0", "1", "2", "3", "4"]
    assert len(train) + len(held) == len(digits)
    assert len(held) == int(np.sum(digits.labels >= 5))
    for part in (train, held):
        assert np.array_equal(np.unique(part.labels), np.arange(5))
        # every image keeps its class under the new numbering
        for i in (0, len(part) // 2, len(part) - 1):
            assert _same_images(part, digits, int(part.class_names[part.labels[i]]), i)
    by_name, _ = hold_out_classes(digits, ["5", "6", "7", "8", "9"])
    assert by_name.class_names == train.class_names


def test_drawn_split_is_deterministic_by_seed_and_disjoint(digits):
    train, held = hold_out_classes(digits, 3, seed=0)
    assert len(held.class_names) == 3 and len(train.class_names) == 7
    assert not set(train.class_names) & set(held.class_names)
    again_train, again_held = hold_out_classes(digits, 3, seed=0)
    assert again_held.class_names == held.class_names
    assert fingerprint(again_train) == fingerprint(train)
    others = {tuple(hold_out_classes(digits, 3, seed=s)[1].class_names) for s in range(1, 6)}
    assert others - {tuple(held.class_names)}  # other seeds draw other classes
    _, fifth = hold_out_classes(digits, 0.2)
    assert len(fifth.class_names) == 2


def test_grouped_data_holds_out_whole_groups(data_dir):
    background = load_omniglot("background", image_size=28, data_dir=data_dir)
    train, held = hold_out_classes(background, 100)
    assert len(held.class_names) >= 100
    assert not set(train.alphabet_names) & set(held.alphabet_names)
    assert set(train.alphabet_names) | set(held.alphabet_names) == set(background.alphabet_names)
    assert len(train.class_names) + len(held.class_names) == len(background.class_names)
    for part in (train, held):  # each character's alphabet follows it
        i = len(part) // 3
        name = part.character_names[part.labels[i]]
        assert name.split("/")[0] == part.alphabet_names[part.alphabets[i]]


@pytest.mark.parametrize(
    "classes, message",
    [
        (9, "leave at least 2 of the 10 classes"),
        (0.95, "leave at least 2 of the 10 classes"),
        ([0], "at least 2 held-out classes"),
        (["5", "eleven"], "unknown class.*'eleven'"),
        ([5, 5], "distinct classes"),
        (0, "a count of classes"),
        (1.5, "a count of classes"),
        (True, "a count of classes"),
    ],
)
def test_bad_splits_say_what_is_wrong(digits, classes, message):
    with pytest.raises(ValueError, match=message):
        hold_out_classes(digits, classes)


def test_fingerprint_changes_with_one_pixel(digits):
    small = hold_out_classes(digits, [5, 6, 7, 8, 9])[1]
    before = fingerprint(small)
    small.images[0, 0, 0] ^= 1
    assert fingerprint(small) != before
