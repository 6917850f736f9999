"""Scorer: test-time shift averaging (still one-shot: no other labelled image is used)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from oneshot.inference import Scorer, shifted_views


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
