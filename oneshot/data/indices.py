"""Index sampling for the tf.data samplers: which images form each pair, triplet, quadruplet or
P x K batch.

Vectorised numpy: one seeded ``np.random.Generator`` per dataset and one call per batch, no
loop over samples. :class:`ClassIndex` groups image indices by class (and alphabet) once, so
drawing a batch is a few array operations whatever the dataset size.
"""

from __future__ import annotations

import numpy as np

from oneshot.data.labels import check_labels


class ClassIndex:
    """Where the images of each class are, for vectorised sampling.

    Args:
        labels: array (N,) or (N, 1) of class labels, ints or strings.
        alphabets: optional array (N,) giving each image's alphabet (Omniglot) or group; every
            class must lie in one alphabet.
    """

    def __init__(self, labels: np.ndarray, alphabets: np.ndarray | None = None) -> None:
        labels = check_labels(labels)
        if len(labels) == 0:
            raise ValueError(
                "Invalid value for argument `labels`. Expected a non-empty 1-D array. "
                f"Received shape {labels.shape}."
            )
        self.order = np.argsort(labels, kind="stable")
        self.classes, self.starts, self.counts = np.unique(
            labels[self.order], return_index=True, return_counts=True
        )
        self.alphabet_of_class = None
        if alphabets is not None:
            alphabets = check_labels(alphabets, len(labels), "alphabets")
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
