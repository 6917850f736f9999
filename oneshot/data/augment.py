"""Small random affine distortions for Omniglot, as in Koch et al. (2015).

Koch's ranges: rotation in [-10, 10] degrees, shear in [-0.3, 0.3], scale in [0.8, 1.2], and
translation in [-2, 2] pixels, each drawn independently for x and y. One projective-transform op
warps the whole batch (vectorised, no loop over images). Samplers apply it only when asked
(``augment=True``); it is off by default. ``strength`` (a run's ``augment_strength``) widens or
narrows every range by one factor, e.g. 1.5 for rotations up to 15 degrees and shifts up to 3
pixels: Koch's ranges were chosen for 105x105 Omniglot.

Reference: Koch, Zemel, Salakhutdinov, "Siamese Neural Networks for One-shot Image
Recognition", ICML deep learning workshop 2015.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

__all__ = ["random_affine", "rotate"]


def random_affine(
    images: tf.Tensor,
    seed: tf.Tensor,
    rotation: float = 10.0,
    shear: float = 0.3,
    scale: tuple[float, float] = (0.8, 1.2),
    translation: float = 2.0,
    strength: float = 1.0,
) -> tf.Tensor:
    """Warp each image of a batch with its own random affine map about the image centre.

    Args:
        images: float tensor (B, H, W, C); background must be 0 (it fills uncovered pixels).
        seed: int tensor of shape (2,) for the stateless random draws (same seed, same warp).
        rotation: maximum absolute rotation in degrees. Defaults to 10.0.
        shear: maximum absolute shear, per axis. Defaults to 0.3.
        scale: (min, max) scale factor, per axis. Defaults to (0.8, 1.2).
        translation: maximum absolute shift in pixels, per axis. Defaults to 2.0.
        strength: multiplies every range: rotation, shear and translation, and the distance of
            the scale bounds from 1 (``(0.8, 1.2)`` becomes ``(0.7, 1.3)`` at 1.5). Must be > 0
            and keep the scale positive. Defaults to 1.0 (the ranges as given).

    Returns:
        A float32 tensor shaped like ``images``.

    Example:
        >>> warped = random_affine(tf.zeros((8, 105, 105, 1)), seed=tf.constant([1, 2]))
    """
    images = tf.convert_to_tensor(images, tf.float32)
    if images.shape.rank != 4:
        raise ValueError(
            f"Invalid value for argument `images`. Expected rank 4 (B, H, W, C). "
            f"Received shape {images.shape}."
        )
    if strength != 1.0:  # 1.0 leaves the given ranges bit for bit
        low, high = 1.0 - (1.0 - scale[0]) * strength, 1.0 + (scale[1] - 1.0) * strength
        if not strength > 0 or low < 1e-3:  # a scale of (about) 0 cannot be inverted
            raise ValueError(
                "Invalid value for argument `strength`. Expected a number > 0 that keeps the "
                f"scale range positive (here below {1.0 / (1.0 - scale[0]):g}). Received: "
                f"strength={strength}"
            )
        rotation, shear, translation = rotation * strength, shear * strength, translation * strength
        scale = (low, high)
    seed = tf.cast(seed, tf.int64)
    b = tf.shape(images)[0]

    def draw(offset: int, n: int, low: float, high: float) -> tf.Tensor:
        return tf.random.stateless_uniform((b, n), seed + offset, low, high)

    theta = draw(1, 1, -rotation, rotation)[:, 0] * (math.pi / 180.0)
    sh = draw(2, 2, -shear, shear)
    sc = draw(3, 2, scale[0], scale[1])
    tr = draw(4, 2, -translation, translation)
    return _warp(images, theta, sh, sc, tr)


def rotate(images: tf.Tensor | np.ndarray, degrees: float) -> tf.Tensor:
    """Rotate every image of a batch by ``degrees`` (counter-clockwise on screen) about its
    centre, bilinear, zeros (background) filling the uncovered corners: the fixed views of
    test-time rotation averaging (:class:`oneshot.evaluation.scoring.Scorer`).

    Args:
        images: float (B, H, W, C) with background 0.
        degrees: the angle; 0 returns the images unchanged.

    Returns:
        A float32 tensor shaped like ``images``.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    if images.shape.rank != 4:
        raise ValueError(
            f"Invalid value for argument `images`. Expected rank 4 (B, H, W, C). "
            f"Received shape {images.shape}."
        )
    if degrees == 0:
        return images
    b = tf.shape(images)[0]
    theta = tf.fill([b], -float(degrees) * math.pi / 180.0)  # image rows point down
    zeros, ones = tf.zeros((b, 2)), tf.ones((b, 2))
    return _warp(images, theta, zeros, ones, zeros)


def _warp(
    images: tf.Tensor, theta: tf.Tensor, sh: tf.Tensor, sc: tf.Tensor, tr: tf.Tensor
) -> tf.Tensor:
    """Per-image affine map about the centre: rotation ``theta`` (B,) radians, shear, scale and
    translation (B, 2) each, applied scale -> shear -> rotation -> translation."""
    h = tf.cast(tf.shape(images)[1], tf.float32)
    w = tf.cast(tf.shape(images)[2], tf.float32)
    zero, one = tf.zeros_like(theta), tf.ones_like(theta)

    def mat(rows):
        return tf.stack([tf.stack(r, axis=-1) for r in rows], axis=-2)  # (B, 3, 3)

    cos, sin = tf.cos(theta), tf.sin(theta)
    cx, cy = (w - 1.0) / 2.0, (h - 1.0) / 2.0
    to_centre = mat([[one, zero, -cx * one], [zero, one, -cy * one], [zero, zero, one]])
    scaling = mat([[sc[:, 0], zero, zero], [zero, sc[:, 1], zero], [zero, zero, one]])
    shearing = mat([[one, sh[:, 0], zero], [sh[:, 1], one, zero], [zero, zero, one]])
    rotating = mat([[cos, -sin, zero], [sin, cos, zero], [zero, zero, one]])
    back = mat([[one, zero, cx + tr[:, 0]], [zero, one, cy + tr[:, 1]], [zero, zero, one]])
    forward = back @ rotating @ shearing @ scaling @ to_centre  # input -> output coordinates
    inverse = tf.linalg.inv(forward)  # the op maps output pixels back to input pixels
    inverse = inverse / inverse[:, 2:3, 2:3]
    params = tf.reshape(inverse, (-1, 9))[:, :8]
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=params,
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
