"""Validation split by whole alphabets, and rotated characters as new classes."""

from __future__ import annotations

import numpy as np
import pytest

from oneshot.data import load_omniglot
from oneshot.data.datasets import OmniglotSet
from oneshot.data.variants import hold_out_alphabets, subset_alphabets, with_rotated_classes


@pytest.fixture(scope="module")
def background(data_dir) -> OmniglotSet:
    return load_omniglot("background", image_size=28, data_dir=data_dir)


def test_held_out_alphabets_are_whole_disjoint_and_relabelled(background):
    train, val = hold_out_alphabets(background, count=6, seed=0)
    assert len(val.alphabet_names) == 6 and len(train.alphabet_names) == 24
    assert not set(train.alphabet_names) & set(val.alphabet_names)
    assert len(train) + len(val) == len(background)
    assert not set(train.character_names) & set(val.character_names)
    for part in (train, val):
        assert np.array_equal(np.unique(part.labels), np.arange(len(part.character_names)))
        assert np.array_equal(np.unique(part.alphabets), np.arange(len(part.alphabet_names)))
        # every image keeps its character and alphabet under the new numbering
        for i in (0, len(part) // 2, len(part) - 1):
            name = part.character_names[part.labels[i]]
            assert name.split("/")[0] == part.alphabet_names[part.alphabets[i]]
            original = background.character_names.index(name)
            match = np.flatnonzero(background.labels == original)
            assert any(np.array_equal(background.images[j], part.images[i]) for j in match)
    again, _ = hold_out_alphabets(background, count=6, seed=0)
    other, _ = hold_out_alphabets(background, count=6, seed=1)
    assert again.alphabet_names == train.alphabet_names != other.alphabet_names


def test_bad_hold_out_counts_say_what_is_allowed(background):
    for count in (0, 30):
        with pytest.raises(ValueError, match="1 <= count < 30"):
            hold_out_alphabets(background, count=count)
    with pytest.raises(ValueError, match="alphabet indices"):
        subset_alphabets(background, np.array([31]))


def test_rotated_classes_are_new_classes_of_rotated_images():
    images = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    data = OmniglotSet(
        images=images,
        labels=np.array([0, 1], np.int32),
        alphabets=np.array([0, 0], np.int32),
        alphabet_names=["A"],
        character_names=["A/c1", "A/c2"],
        drawers=np.array([1, 2], np.int32),
    )
    rotated = with_rotated_classes(data)
    assert rotated.images.shape == (8, 3, 3)
    assert rotated.labels.tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    assert rotated.alphabets.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert rotated.character_names[3] == "A/c2/rot90"
    # image 3 is image 1 turned a quarter: its first row is image 1's last column
    assert rotated.images[3][0].tolist() == images[1][:, -1].tolist()
    assert np.array_equal(rotated.images[5], images[1][::-1, ::-1])
    with pytest.raises(ValueError, match="square"):
        with_rotated_classes(
            OmniglotSet(
                np.zeros((1, 2, 3), np.uint8),
                *(data.labels[:1], data.alphabets[:1]),
                ["A"],
                ["A/c1"],
                data.drawers[:1],
            )  # fmt: skip
        )
