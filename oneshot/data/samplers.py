"""tf.data samplers: random pairs, triplets, quadruplets and P x K class-balanced batches.

Index sampling is ``oneshot.data.indices`` (vectorised numpy, seeded); images are gathered and converted to float32 inside the
tf.data graph. A dataset built twice with the same seed yields the same batches.

Element structures (ready for ``model.fit``):

- pairs:        ``((x1, x2), y)`` with ``y`` float32 (B,), 1 = same class, 0 = different.
- triplets:     ``((a, p, n),)``        (inputs only: the loss lives in the model).
- quadruplets:  ``((a, p, n, n2),)``    (inputs only).
- P x K:        ``(images, labels)``    for in-batch losses (``oneshot.losses``, e.g. ``TripletMarginLoss``).

Images are float32 (B, H, W, C) in [0, 1], the same as ``oneshot.data.to_model_input`` (C = 1
for grey, 3 for colour). Labels may be ints or strings (see ``oneshot.data.labels``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import tensorflow as tf

from oneshot.data.augment import random_affine
from oneshot.data.indices import (
    ClassIndex,
    sample_pair_indices,
    sample_pk_indices,
    sample_quadruplet_indices,
    sample_triplet_indices,
)
from oneshot.data.labels import check_labels, integer_labels
from oneshot.data.preprocess import check_unit_range

__all__ = [
    "ClassIndex",
    "sample_pair_indices",
    "sample_triplet_indices",
    "sample_quadruplet_indices",
    "sample_pk_indices",
    "pair_dataset",
    "triplet_dataset",
    "quadruplet_dataset",
    "pk_dataset",
    "indices_to_dataset",
]


def _images_tensor(images: np.ndarray) -> tf.Tensor:
    """The whole image array as a tensor (N, H, W, C); floats must be in [0, 1]."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(
            f"Invalid value for argument `images`. Expected shape (N, H, W) or (N, H, W, C). "
            f"Received shape {images.shape}."
        )
    check_unit_range(images)
    return tf.constant(images)


def _gather_float(images: tf.Tensor, idx: tf.Tensor) -> tf.Tensor:
    """Gather and convert like ``to_model_input``: uint8 / 255, floats unchanged."""
    batch = tf.gather(images, idx)
    if batch.dtype == tf.uint8:
        return tf.cast(batch, tf.float32) / 255.0
    return tf.cast(batch, tf.float32)


def indices_to_dataset(
    next_indices: Callable[[], tuple[np.ndarray, ...]],
    images: np.ndarray,
    structure: Callable[..., tuple],
    steps: int | None = None,
    augment: bool | float = False,
    seed: int | None = None,
    lookahead: bool = True,
    skip: int = 0,
    skip_indices: Callable[[], object] | None = None,
) -> tf.data.Dataset:
    """Dataset from a function returning index arrays per batch.

    ``next_indices()`` returns a tuple of arrays (B,): each int64 array holds image indices and
    becomes a float image batch; arrays of other dtypes (labels) pass through unchanged. Then
    ``structure(*tensors)`` builds the element. With ``lookahead=False`` nothing is prepared
    ahead of time (sequential map, no prefetch): ``next_indices`` runs only when a batch is
    requested, which online-scored sampling (``oneshot.miners.HardBatchMiner``) needs.

    ``skip`` fast-forwards the stream by that many batches, cheaply: the index batches are
    drawn and discarded in numpy (by ``skip_indices()`` if given, else ``next_indices()``), no
    image is gathered, and as many augmentation seeds are skipped. The dataset then yields
    exactly what the same dataset with ``skip=0`` yields from its ``skip``-th batch on (what an
    exact resume needs).
    """
    for _ in range(skip):
        (skip_indices or next_indices)()
    probe = next_indices()
    signature = tuple(tf.TensorSpec((None,), tf.as_dtype(np.asarray(x).dtype)) for x in probe)
    pending = [probe]

    def gen() -> Iterator[tuple[np.ndarray, ...]]:
        count = 0
        while steps is None or count < steps:
            yield pending.pop() if pending else next_indices()
            count += 1

    tensor = _images_tensor(images)
    ds = tf.data.Dataset.from_generator(gen, output_signature=signature)

    def to_images(*arrays):
        return tuple(_gather_float(tensor, x) if x.dtype == tf.int64 else x for x in arrays)

    parallel = tf.data.AUTOTUNE if lookahead else None
    ds = ds.map(to_images, num_parallel_calls=parallel, deterministic=lookahead or None)
    strength = float(augment)  # True: 1.0, Koch's ranges
    if strength:
        seeds = tf.data.Dataset.random(seed=0 if seed is None else seed).batch(2)
        if skip:
            seeds = seeds.skip(skip)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda arrays, s: tuple(
                random_affine(x, s + 7 * i, strength=strength) if x.shape.rank == 4 else x
                for i, x in enumerate(arrays)
            ),
            num_parallel_calls=parallel,
            deterministic=lookahead or None,
        )
    ds = ds.map(structure)
    return ds.prefetch(tf.data.AUTOTUNE) if lookahead else ds


def pair_dataset(
    images,
    labels,
    batch_size: int = 32,
    seed: int | None = None,
    steps: int | None = None,
    augment: bool | float = False,
    skip: int = 0,
) -> tf.data.Dataset:
    """Balanced random pairs, elements ``((x1, x2), y)``; infinite unless ``steps`` is given.

    Example:
        >>> ds = pair_dataset(images, labels, batch_size=32, seed=0)
        >>> siamese_model.fit(ds, steps_per_epoch=100)
    """
    index, rng = ClassIndex(check_labels(labels, len(images))), np.random.default_rng(seed)
    return indices_to_dataset(
        lambda: sample_pair_indices(index, batch_size, rng),
        images,
        lambda x1, x2, y: ((x1, x2), y),
        steps,
        augment,
        seed,
        skip=skip,
    )


def triplet_dataset(
    images,
    labels,
    batch_size: int = 32,
    seed: int | None = None,
    steps: int | None = None,
    augment: bool | float = False,
    skip: int = 0,
) -> tf.data.Dataset:
    """Random triplets, elements ``((a, p, n),)`` (inputs only, for a model adding its loss)."""
    index, rng = ClassIndex(check_labels(labels, len(images))), np.random.default_rng(seed)
    return indices_to_dataset(
        lambda: sample_triplet_indices(index, batch_size, rng),
        images,
        lambda a, p, n: ((a, p, n),),
        steps,
        augment,
        seed,
        skip=skip,
    )


def quadruplet_dataset(
    images,
    labels,
    batch_size: int = 32,
    seed: int | None = None,
    steps: int | None = None,
    augment: bool | float = False,
    reproduce_original_bug: bool = False,
    skip: int = 0,
) -> tf.data.Dataset:
    """Random quadruplets, elements ``((a, p, n, n2),)``; see ``sample_quadruplet_indices``
    for ``reproduce_original_bug``."""
    index, rng = ClassIndex(check_labels(labels, len(images))), np.random.default_rng(seed)
    return indices_to_dataset(
        lambda: sample_quadruplet_indices(index, batch_size, rng, reproduce_original_bug),
        images,
        lambda a, p, n, n2: ((a, p, n, n2),),
        steps,
        augment,
        seed,
        skip=skip,
    )


def pk_dataset(
    images,
    labels,
    p: int = 32,
    k: int = 4,
    seed: int | None = None,
    steps: int | None = None,
    alphabets: np.ndarray | None = None,
    within_alphabet: bool = False,
    augment: bool | float = False,
    skip: int = 0,
) -> tf.data.Dataset:
    """P x K class-balanced batches for online mining, elements ``(images, labels)``.

    Args:
        images, labels: the labelled array. Labels may be ints (yielded as int32) or strings
            (yielded as int32 codes, their indices in the sorted unique names: equal names,
            equal codes); (N, 1) is flattened.
        p: classes per batch. Defaults to 32.
        k: images per class (distinct). Defaults to 4.
        seed: seed of the index generator (and of the augmentation).
        steps: number of batches; None = infinite.
        alphabets: alphabet id per image (Omniglot), needed for ``within_alphabet``.
        within_alphabet: the classes of a batch come from one alphabet (harder negatives,
            like Lake's within-alphabet one-shot task): all ``p`` of them when the alphabet has
            ``p`` classes with ``k`` images, else all of its classes plus classes of other
            alphabets to make ``p``, so that every alphabet is trained on. The alphabet is
            chosen with probability proportional to ``max(its classes, p)``, which sees every
            class about equally often; see ``sample_pk_indices``. Defaults to False, whose
            batches are unchanged for a given seed.
        augment: apply ``oneshot.data.augment.random_affine``; a number > 0 is its
            ``strength`` (True: 1, Koch's ranges). Defaults to False.
        skip: batches to fast-forward (see ``indices_to_dataset``). Defaults to 0.

    Example:
        >>> ds = pk_dataset(images, labels, p=32, k=4, seed=0)
        >>> model = build_online(conv4(), loss=TripletMarginLoss(miner=BatchHardMiner()))
        >>> model.fit(ds, steps_per_epoch=100)
    """
    label_arr = integer_labels(check_labels(labels, len(images)))
    index, rng = ClassIndex(label_arr, alphabets), np.random.default_rng(seed)

    def next_indices():
        idx = sample_pk_indices(index, p, k, rng, within_alphabet)
        return idx, label_arr[idx]

    return indices_to_dataset(
        next_indices, images, lambda x, y: (x, y), steps, augment, seed, skip=skip
    )
