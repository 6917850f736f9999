"""tf.data samplers: random pairs, triplets, quadruplets and P x K class-balanced batches.

Index sampling is vectorised numpy (one seeded ``np.random.Generator`` per dataset, one call
per batch, no loop over samples); images are gathered and converted to float32 inside the
tf.data graph. A dataset built twice with the same seed yields the same batches.

Element structures (ready for ``model.fit``):

- pairs:        ``((x1, x2), y)`` with ``y`` float32 (B,), 1 = same class, 0 = different.
- triplets:     ``((a, p, n),)``        (inputs only: the loss lives in the model).
- quadruplets:  ``((a, p, n, n2),)``    (inputs only).
- P x K:        ``(images, labels)``    for in-batch losses (``oneshot.losses``, e.g. ``TripletMarginLoss``).

Images are float32 (B, H, W, 1) in [0, 1], the same as ``oneshot.data.to_model_input``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import tensorflow as tf

from oneshot.data.augment import random_affine

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


class ClassIndex:
    """Where the images of each class are, for vectorised sampling.

    Args:
        labels: int array (N,) of class labels.
        alphabets: optional int array (N,) giving each image's alphabet (Omniglot); every class
            must lie in one alphabet.
    """

    def __init__(self, labels: np.ndarray, alphabets: np.ndarray | None = None) -> None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) == 0:
            raise ValueError(
                f"Invalid value for argument `labels`. Expected a non-empty 1-D array. "
                f"Received shape {labels.shape}."
            )
        self.order = np.argsort(labels, kind="stable")
        self.classes, self.starts, self.counts = np.unique(
            labels[self.order], return_index=True, return_counts=True
        )
        self.alphabet_of_class = None
        if alphabets is not None:
            alphabets = np.asarray(alphabets)
            if alphabets.shape != labels.shape:
                raise ValueError(
                    f"Invalid value for argument `alphabets`. Expected shape {labels.shape} like "
                    f"`labels`. Received shape {alphabets.shape}."
                )
            first = alphabets[self.order][self.starts]
            last = alphabets[self.order][self.starts + self.counts - 1]
            sorted_alpha = alphabets[self.order]
            class_id = np.repeat(np.arange(len(self.classes)), self.counts)
            if np.any(sorted_alpha != first[class_id]) or np.any(first != last):
                raise ValueError("Invalid `alphabets`: some class spans several alphabets.")
            self.alphabet_of_class = first

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def pick(self, class_ids: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Image indices of the ``positions``-th images of classes ``class_ids`` (same shapes)."""
        return self.order[self.starts[class_ids] + positions]

    def random_in(self, class_ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One random image index per entry of ``class_ids``."""
        return self.pick(
            class_ids, (rng.random(class_ids.shape) * self.counts[class_ids]).astype(np.int64)
        )

    def two_distinct_in(self, class_ids: np.ndarray, rng: np.random.Generator):
        """Two different random image indices per entry of ``class_ids`` (classes need >= 2)."""
        counts = self.counts[class_ids]
        first = (rng.random(class_ids.shape) * counts).astype(np.int64)
        shift = 1 + (rng.random(class_ids.shape) * (counts - 1)).astype(np.int64)
        return self.pick(class_ids, first), self.pick(class_ids, (first + shift) % counts)


def _as_index(labels: np.ndarray | ClassIndex) -> ClassIndex:
    return labels if isinstance(labels, ClassIndex) else ClassIndex(labels)


def _anchor_classes(index: ClassIndex, size: int, rng: np.random.Generator) -> np.ndarray:
    """Uniformly random classes that have at least two images (so a positive exists)."""
    eligible = np.flatnonzero(index.counts >= 2)
    if len(eligible) == 0 or index.num_classes < 2:
        raise ValueError(
            "Invalid value for argument `labels`. Expected at least two classes and one class "
            f"with two images. Received {index.num_classes} classes, max count {index.counts.max()}."
        )
    return eligible[rng.integers(0, len(eligible), size)]


def _other_class(exclude: np.ndarray, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random class id different from ``exclude`` (elementwise)."""
    k = rng.integers(0, num_classes - 1, exclude.shape)
    return k + (k >= exclude)


def _class_not_in_two(c1: np.ndarray, c2: np.ndarray, num_classes: int, rng: np.random.Generator):
    """A uniformly random class id different from both ``c1`` and ``c2`` (which differ)."""
    lo, hi = np.minimum(c1, c2), np.maximum(c1, c2)
    k = rng.integers(0, num_classes - 2, c1.shape)
    k = k + (k >= lo)
    return k + (k >= hi)


def sample_pair_indices(labels, batch_size: int, rng: np.random.Generator):
    """Balanced random pairs: the first half same-class, the rest different-class (shuffled).

    Returns:
        ``(i, j, same)``: int64 arrays (B,) of image indices and float32 (B,) with 1 = same.
    """
    index = _as_index(labels)
    n_same = batch_size // 2
    cls = _anchor_classes(index, batch_size, rng)
    i, j_same = index.two_distinct_in(cls, rng)
    j_diff = index.random_in(_other_class(cls, index.num_classes, rng), rng)
    same = (np.arange(batch_size) < n_same).astype(np.float32)
    perm = rng.permutation(batch_size)
    j = np.where(same > 0, j_same, j_diff)
    return i[perm], j[perm], same[perm]


def sample_triplet_indices(labels, batch_size: int, rng: np.random.Generator):
    """Random triplets: anchor class uniform, positive = another image of it, negative class
    uniform among the other classes.

    Returns:
        ``(a, p, n)``: int64 arrays (B,) of image indices.
    """
    index = _as_index(labels)
    cls = _anchor_classes(index, batch_size, rng)
    a, p = index.two_distinct_in(cls, rng)
    n = index.random_in(_other_class(cls, index.num_classes, rng), rng)
    return a, p, n


def sample_quadruplet_indices(
    labels, batch_size: int, rng: np.random.Generator, reproduce_original_bug: bool = False
):
    """Random quadruplets ``(a, p, n, n2)``: n2's class differs from both a's and n's.

    Args:
        labels: int array (N,) or a ``ClassIndex``.
        batch_size: number of quadruplets B.
        rng: numpy Generator.
        reproduce_original_bug: if True, draw n2's class uniformly from *all* classes, as the
            original notebooks did (their exclusion result was discarded), so n2 may share the
            anchor's or n's class. Only for comparison with the original runs. Defaults to False.

    Returns:
        ``(a, p, n, n2)``: int64 arrays (B,). The first three form a valid random triplet.
    """
    index = _as_index(labels)
    cls = _anchor_classes(index, batch_size, rng)
    a, p = index.two_distinct_in(cls, rng)
    neg_cls = _other_class(cls, index.num_classes, rng)
    n = index.random_in(neg_cls, rng)
    if reproduce_original_bug:
        n2_cls = rng.integers(0, index.num_classes, batch_size)
    else:
        if index.num_classes < 3:
            raise ValueError(
                f"Quadruplets need at least 3 classes. Received {index.num_classes}. "
                "Use triplets, or pass reproduce_original_bug=True."
            )
        n2_cls = _class_not_in_two(cls, neg_cls, index.num_classes, rng)
    return a, p, n, index.random_in(n2_cls, rng)


def _distinct_positions(counts: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """(P, k) distinct positions in [0, counts[r]) per row r, uniformly (Floyd's algorithm,
    vectorised over rows; the loop runs over the k draws only)."""
    chosen = np.empty((len(counts), k), dtype=np.int64)
    for step in range(k):
        top = counts - k + step  # draw in [0, top]
        t = (rng.random(len(counts)) * (top + 1)).astype(np.int64)
        seen = np.any(chosen[:, :step] == t[:, None], axis=1)
        chosen[:, step] = np.where(seen, top, t)
    return chosen


def sample_pk_indices(
    index: ClassIndex, p: int, k: int, rng: np.random.Generator, within_alphabet: bool = False
) -> np.ndarray:
    """P x K batch: ``p`` distinct classes, ``k`` distinct images each, grouped by class.

    Only classes with at least ``k`` images ("eligible" classes) are drawn.

    - ``within_alphabet=False`` (default): ``p`` eligible classes uniformly without replacement.
      This random stream is fixed: the same seed gives the same batches as before.
    - ``within_alphabet=True``: one alphabet is chosen with probability proportional to
      ``max(n_a, p)``, ``n_a`` being its number of eligible classes. If it has at least ``p``
      eligible classes, ``p`` of them are drawn uniformly; if it has fewer, all of them are
      taken and the remaining ``p - n_a`` slots are filled with classes drawn uniformly without
      replacement from the eligible classes of all the other alphabets. The chosen alphabet's
      classes come first. Every alphabet with an eligible class is thus sampled whatever ``p``
      (alphabets with fewer than ``p`` classes used to be dropped: 15 of the 30 Omniglot
      background alphabets at ``p=32``).

      Why ``max(n_a, p)``: each eligible class is then in its own alphabet's batches with the
      same probability ``p / sum(max(n_a, p))``, so every class is seen about as often as with
      the default sampler (0.0327 to 0.0333 of the batches on the background set at
      ``p=32, k=4``, against 0.0332). Weights plain ``n_a`` would halve the exposure of the
      14-character alphabets (0.0175 against 0.0365 for large ones), since a small alphabet
      fills fewer than ``p`` slots when chosen; uniform weights over-weight small alphabets
      (0.038 for a 14-character one, 0.025 for the 55-character one).

    Args:
        index: the ``ClassIndex`` (with ``alphabets`` for ``within_alphabet``).
        p: number of distinct classes per batch.
        k: number of distinct images per class.
        rng: numpy Generator.
        within_alphabet: see above. Defaults to False.

    Returns:
        int64 array (p * k,): images of the first class, then of the second, ...

    Raises:
        ValueError: if fewer than ``p`` classes have ``k`` images, or ``within_alphabet`` is
            set without alphabets.
    """
    eligible = np.flatnonzero(index.counts >= k)
    if within_alphabet and index.alphabet_of_class is None:
        raise ValueError("within_alphabet=True needs `alphabets` (one alphabet id per image).")
    if len(eligible) < p:
        raise ValueError(
            f"Invalid value for argument `p`. Expected at most {len(eligible)} (classes with "
            f">= k={k} images, out of {index.num_classes} classes). Received p={p}."
        )
    if within_alphabet:
        _, alpha, sizes = np.unique(
            index.alphabet_of_class[eligible], return_inverse=True, return_counts=True
        )
        weights = np.maximum(sizes, p)
        in_chosen = alpha == rng.choice(len(weights), p=weights / weights.sum())
        own = rng.permutation(eligible[in_chosen])[:p]
        others = eligible[~in_chosen]
        fill = others[rng.choice(len(others), size=p - len(own), replace=False)]
        classes = np.concatenate([own, fill])
    else:
        classes = eligible[rng.choice(len(eligible), size=p, replace=False)]
    positions = _distinct_positions(index.counts[classes], k, rng)
    return index.pick(np.repeat(classes, k), positions.reshape(-1))


def _images_tensor(images: np.ndarray) -> tf.Tensor:
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(
            f"Invalid value for argument `images`. Expected shape (N, H, W) or (N, H, W, 1). "
            f"Received shape {images.shape}."
        )
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
    augment: bool = False,
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
    if augment:
        seeds = tf.data.Dataset.random(seed=0 if seed is None else seed).batch(2)
        if skip:
            seeds = seeds.skip(skip)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda arrays, s: tuple(
                random_affine(x, s + 7 * i) if x.shape.rank == 4 else x
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
    augment: bool = False,
    skip: int = 0,
) -> tf.data.Dataset:
    """Balanced random pairs, elements ``((x1, x2), y)``; infinite unless ``steps`` is given.

    Example:
        >>> ds = pair_dataset(images, labels, batch_size=32, seed=0)
        >>> siamese_model.fit(ds, steps_per_epoch=100)
    """
    index, rng = ClassIndex(labels), np.random.default_rng(seed)
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
    augment: bool = False,
    skip: int = 0,
) -> tf.data.Dataset:
    """Random triplets, elements ``((a, p, n),)`` (inputs only, for a model adding its loss)."""
    index, rng = ClassIndex(labels), np.random.default_rng(seed)
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
    augment: bool = False,
    reproduce_original_bug: bool = False,
    skip: int = 0,
) -> tf.data.Dataset:
    """Random quadruplets, elements ``((a, p, n, n2),)``; see ``sample_quadruplet_indices``
    for ``reproduce_original_bug``."""
    index, rng = ClassIndex(labels), np.random.default_rng(seed)
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
    augment: bool = False,
    skip: int = 0,
) -> tf.data.Dataset:
    """P x K class-balanced batches for online mining, elements ``(images, labels)``.

    Args:
        images, labels: the labelled array.
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
        augment: apply ``oneshot.data.augment.random_affine``. Defaults to False.
        skip: batches to fast-forward (see ``indices_to_dataset``). Defaults to 0.

    Example:
        >>> ds = pk_dataset(images, labels, p=32, k=4, seed=0)
        >>> model = build_online(conv4(), loss=TripletMarginLoss(miner=BatchHardMiner()))
        >>> model.fit(ds, steps_per_epoch=100)
    """
    index, rng = ClassIndex(labels, alphabets), np.random.default_rng(seed)
    label_arr = np.asarray(labels)

    def next_indices():
        idx = sample_pk_indices(index, p, k, rng, within_alphabet)
        return idx, label_arr[idx].astype(np.int32)

    return indices_to_dataset(
        next_indices, images, lambda x, y: (x, y), steps, augment, seed, skip=skip
    )
