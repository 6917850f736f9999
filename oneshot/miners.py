"""Mining: which tuples to train on.

Two families, both vectorised:

- **Online** (in-batch) miners are pure TF functions of a distance matrix ``dist`` (B, B) and
  labels (B,). They return index tuples ``(a, p, n)`` (or ``(a, p, n, n2)``, or pairs) that the
  losses in ``oneshot.losses.online`` consume. Anchors without a valid positive or negative
  are left out. Memory is O(B^2): negatives are sorted once per anchor row and every "which
  negatives lie below d_ap + margin" question is a ``searchsorted`` on those rows, so no
  (B, B, B) tensor is ever built.
- **Offline** hard batches (the original experiments): ``HardBatchMiner`` draws C random
  candidate tuples, scores them with the *current* model in one forward pass over the distinct
  candidate images, and keeps the H hardest plus R random others.

References: Schroff et al. 2015 (FaceNet, semi-hard); Hermans et al. 2017 (batch-hard,
batch-all); Chen et al. 2017 (quadruplet loss, margin-based mining, arXiv 1704.01719).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from oneshot.data.preprocess import to_model_input
from oneshot.data.samplers import (
    ClassIndex,
    indices_to_dataset,
    sample_quadruplet_indices,
    sample_triplet_indices,
)
from oneshot.distances import check_distance, paired_distances
from oneshot.losses.quadruplet import quadruplet_hardness

__all__ = [
    "label_masks",
    "sorted_negatives",
    "batch_hard",
    "batch_all",
    "semi_hard",
    "adaptive_margins",
    "quadruplet_margin",
    "hard_pairs",
    "select_hard",
    "HardBatchMiner",
]


# ----------------------------------------------------------------------------- online miners
def label_masks(labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Boolean (B, B) masks: positives (same label, i != j) and negatives (different label)."""
    labels = tf.reshape(labels, (-1,))
    same = tf.equal(labels[:, None], labels[None, :])
    eye = tf.eye(tf.shape(labels)[0], dtype=tf.bool)
    return tf.logical_and(same, tf.logical_not(eye)), tf.logical_not(same)


def sorted_negatives(dist: tf.Tensor, negative: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Each row's negative distances in increasing order.

    Returns:
        ``(values, order)``, both (B, B): ``values[a, k]`` is the k-th smallest distance from
        anchor ``a`` to a negative (``+inf`` past the last negative, and no gradient), and
        ``order[a, k]`` the column it came from.
    """
    masked = tf.where(negative, tf.stop_gradient(dist), tf.constant(np.inf, dist.dtype))
    order = tf.argsort(masked, axis=1, stable=True)
    return tf.gather(masked, order, batch_dims=1), order


def _positive_pairs(positive: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    pairs = tf.where(positive)
    return pairs[:, 0], pairs[:, 1]


def batch_hard(dist: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Hardest positive (farthest) and hardest negative (closest) of each anchor (Hermans 2017).

    Returns:
        ``(a, p, n)`` int64 (A,), one triplet per anchor that has a positive and a negative.
    """
    positive, negative = label_masks(labels)
    d = tf.stop_gradient(dist)
    inf = tf.constant(np.inf, d.dtype)
    p = tf.argmax(tf.where(positive, d, -inf), axis=1)
    n = tf.argmin(tf.where(negative, d, inf), axis=1)
    valid = tf.logical_and(tf.reduce_any(positive, 1), tf.reduce_any(negative, 1))
    a = tf.where(valid)[:, 0]
    return a, tf.gather(p, a), tf.gather(n, a)


def semi_hard(
    dist: tf.Tensor, labels: tf.Tensor, margin: float = 0.2
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """FaceNet semi-hard negatives: one per positive pair (a, p).

    The negative is the closest one with ``d_ap < d_an < d_ap + margin``; when the pair has no
    such negative, the hardest (closest) negative of the anchor is used instead.

    Returns:
        ``(a, p, n)`` int64 (M,), M = number of positive pairs whose anchor has a negative.
    """
    positive, negative = label_masks(labels)
    values, order = sorted_negatives(dist, negative)
    d = tf.stop_gradient(dist)
    # For every pair (a, j) at once, all (B, B): the first negative of a farther than d_aj.
    first_above = tf.searchsorted(values, d, side="right")
    first_above = tf.minimum(first_above, tf.shape(values, out_type=tf.int32)[1] - 1)
    candidate = tf.gather(values, first_above, batch_dims=1)
    is_semi = candidate < d + margin  # inf (no negative above d_aj) compares False
    choice = tf.gather(
        order, tf.where(is_semi, first_above, tf.zeros_like(first_above)), batch_dims=1
    )
    has_negative = tf.reduce_any(negative, axis=1)
    pairs = tf.where(tf.logical_and(positive, has_negative[:, None]))
    n = tf.cast(tf.gather_nd(choice, pairs), tf.int64)
    return pairs[:, 0], pairs[:, 1], n


def _active_counts(dist: tf.Tensor, labels: tf.Tensor, margin: float):
    """For every pair (a, j): how many negatives n of a have ``d_an < d_aj + margin``, and the
    (differentiable) sum of those d_an. Returns ``(positive, counts, sums)``, all (B, B)."""
    positive, negative = label_masks(labels)
    values, order = sorted_negatives(dist, negative)
    thresholds = tf.stop_gradient(dist) + margin
    counts = tf.searchsorted(values, thresholds, side="left")  # strictly below the threshold
    neg_sorted = tf.gather(negative, order, batch_dims=1)
    grad_values = tf.where(neg_sorted, tf.gather(dist, order, batch_dims=1), tf.zeros_like(dist))
    cumsum = tf.concat([tf.zeros_like(dist[:, :1]), tf.cumsum(grad_values, axis=1)], axis=1)
    sums = tf.gather(cumsum, counts, batch_dims=1)
    return positive, counts, sums


def batch_all(
    dist: tf.Tensor, labels: tf.Tensor, margin: float = 0.2
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """All valid triplets with a positive loss ``d_ap - d_an + margin > 0`` (Hermans 2017).

    The output itself holds every active triplet, so it can be large; the batch-all *loss*
    (``oneshot.losses.online.batch_all_triplet_loss``) never lists them and stays O(B^2).

    Returns:
        ``(a, p, n)`` int64 (T,), T = number of active triplets.
    """
    positive, negative = label_masks(labels)
    _, counts, _ = _active_counts(dist, labels, margin)
    _, order = sorted_negatives(dist, negative)
    a, p = _positive_pairs(positive)
    per_pair = tf.gather_nd(counts, tf.stack([a, p], 1))
    ranks = tf.ragged.range(per_pair)
    pair_of = ranks.value_rowids()
    rank = ranks.flat_values
    aa = tf.gather(a, pair_of)
    n = tf.gather_nd(order, tf.stack([aa, tf.cast(rank, aa.dtype)], 1))
    return aa, tf.gather(p, pair_of), tf.cast(n, tf.int64)


def adaptive_margins(
    dist: tf.Tensor, labels: tf.Tensor, w1: float = 1.0, w2: float = 0.5
) -> tuple[tf.Tensor, tf.Tensor]:
    """Chen et al.'s margins ``alpha = w * max(mu_n - mu_p, 0)`` from the batch means of
    negative and positive pair distances (no gradient); 0 when the batch lacks positives or
    negatives."""
    positive, negative = label_masks(labels)
    d = tf.stop_gradient(dist)
    zero = tf.zeros_like(d)
    n_pos = tf.reduce_sum(tf.cast(positive, d.dtype))
    n_neg = tf.reduce_sum(tf.cast(negative, d.dtype))
    mu_p = tf.math.divide_no_nan(tf.reduce_sum(tf.where(positive, d, zero)), n_pos)
    mu_n = tf.math.divide_no_nan(tf.reduce_sum(tf.where(negative, d, zero)), n_neg)
    both = tf.logical_and(n_pos > 0, n_neg > 0)
    gap = tf.where(both, tf.maximum(mu_n - mu_p, 0.0), tf.zeros_like(mu_p))
    return w1 * gap, w2 * gap


def quadruplet_margin(dist: tf.Tensor, labels: tf.Tensor, alpha1, alpha2):
    """Margin-based quadruplet mining (Chen et al. 2017), O(B^2).

    For every positive pair (a, p): the hardest negative ``n`` of ``a`` (first term) and the
    hardest negative pair ``(n, n2)`` whose classes both differ from a's (second term). Only
    tuples violating their margin are kept: ``d_ap - d_an + alpha1 > 0`` and
    ``d_ap - d_{n n2} + alpha2 > 0``.

    The hardest pair avoiding class c is found from three masked minima: the global closest
    negative pair (classes c1, c2) serves every class but c1 and c2, which get the closest pair
    avoiding them.

    Returns:
        ``((a, p, n), (a, p, n, n2))``: int64 index tensors of the kept triplets and quadruplets.
    """
    labels = tf.reshape(labels, (-1,))
    positive, negative = label_masks(labels)
    d = tf.stop_gradient(dist)
    inf = tf.constant(np.inf, d.dtype)
    b = tf.shape(d, out_type=tf.int64)[0]
    a, p = _positive_pairs(positive)
    d_ap = tf.gather_nd(d, tf.stack([a, p], 1))
    hardest_n = tf.argmin(tf.where(negative, d, inf), axis=1)
    has_neg = tf.reduce_any(negative, 1)
    n = tf.gather(hardest_n, a)
    d_an = tf.gather_nd(d, tf.stack([a, n], 1))
    keep1 = tf.logical_and(tf.gather(has_neg, a), d_ap - d_an + alpha1 > 0)
    k1 = tf.where(keep1)[:, 0]
    triplets = (tf.gather(a, k1), tf.gather(p, k1), tf.gather(n, k1))

    def closest_pair(mask):
        flat = tf.argmin(tf.reshape(tf.where(mask, d, inf), (-1,)))
        return flat // b, flat % b, tf.reduce_any(mask)

    i0, j0, _ = closest_pair(negative)
    c1, c2 = tf.gather(labels, i0), tf.gather(labels, j0)

    def avoiding(c):
        off = tf.not_equal(labels, c)
        return closest_pair(tf.logical_and(negative, tf.logical_and(off[:, None], off[None, :])))

    i1, j1, ok1 = avoiding(c1)
    i2, j2, ok2 = avoiding(c2)
    la = tf.gather(labels, a)
    is1, is2 = tf.equal(la, c1), tf.equal(la, c2)
    ni = tf.where(is1, i1, tf.where(is2, i2, i0))
    nj = tf.where(is1, j1, tf.where(is2, j2, j0))
    exists = tf.where(is1, ok1, tf.where(is2, ok2, tf.reduce_any(negative)))
    d_nn = tf.gather_nd(d, tf.stack([ni, nj], 1))
    keep2 = tf.where(tf.logical_and(exists, d_ap - d_nn + alpha2 > 0))[:, 0]
    quads = tuple(tf.gather(x, keep2) for x in (a, p, ni, nj))
    return triplets, quads


def hard_pairs(
    dist: tf.Tensor, labels: tf.Tensor, pos_margin: float = 0.0, neg_margin: float = 1.0
):
    """Pairs that still carry a contrastive loss: positives farther than ``pos_margin`` and
    negatives closer than ``neg_margin``.

    Returns:
        ``(a1, p, a2, n)`` int64: positive pairs (a1, p) and negative pairs (a2, n).
    """
    positive, negative = label_masks(labels)
    d = tf.stop_gradient(dist)
    pos = tf.where(tf.logical_and(positive, d > pos_margin))
    neg = tf.where(tf.logical_and(negative, d < neg_margin))
    return pos[:, 0], pos[:, 1], neg[:, 0], neg[:, 1]


# ------------------------------------------------------------------------- offline mining
def select_hard(
    scores: np.ndarray, hardest: int, random: int, rng: np.random.Generator
) -> np.ndarray:
    """Positions of the ``hardest`` highest scores plus ``random`` others drawn uniformly."""
    if hardest + random > len(scores):
        raise ValueError(
            f"Invalid values for `hardest` + `random`. Expected at most the number of candidates "
            f"({len(scores)}). Received hardest={hardest}, random={random}."
        )
    order = np.argsort(-np.asarray(scores), kind="stable")
    others = rng.choice(order[hardest:], size=random, replace=False)
    return np.concatenate([order[:hardest], others])


class HardBatchMiner:
    """The original experiments' "hard batches", scored with the current weights.

    Each step draws ``candidates`` random triplets or quadruplets, embeds the distinct images
    among them in one forward pass, scores every tuple and keeps the ``hardest`` highest scores
    plus ``random`` other candidates. Scores (higher = harder):

    - triplets: ``d(a, p) - d(a, n)`` with ``distance`` (default squared Euclidean, as in the
      original |a-p|^2 - |a-n|^2);
    - quadruplets: ``2 v(a, p) - v(a, n) - v(n, n2)`` with ``v = g^2`` (``squared=True``, the
      quantity the quadruplet loss uses) or ``v = g`` (``squared=False``, as the original code,
      which mined with g but trained with g^2); ``g`` is the learned metric (column 0 of
      ``metric_model``) when given, else ``distance``.

    Use with ``fit``: ``miner.dataset()`` is a tf.data.Dataset whose elements are
    ``((a, p, n),)`` or ``((a, p, n, n2),)`` (inputs only), built lazily with no look-ahead, so
    each batch is mined right before its step with the weights the training model shares with
    ``embedding_model`` (the first batch is mined when the dataset is built).

    Args:
        embedding_model: the embedding network shared with the model being trained.
        images: uint8 (N, H, W) or float images. labels: int (N,).
        kind: "triplet" or "quadruplet". Defaults to "triplet".
        candidates: C. Defaults to 200 (experiment A; B/C use 100).
        hardest: H. Defaults to 16. random: R. Defaults to 16.
        metric_model: optional learned metric for quadruplet scores.
        distance: fixed distance for scores. Defaults to "squared_euclidean".
        squared: quadruplet scores on squared distances. Defaults to True.
        seed: seed of the candidate sampling.
        reproduce_original_bug: quadruplets only; see ``sample_quadruplet_indices``.

    Example:
        >>> miner = HardBatchMiner(embedding, x_train, y_train, candidates=200, seed=0)
        >>> triplet_model.fit(miner.dataset(), steps_per_epoch=1000)
    """

    def __init__(
        self,
        embedding_model: keras.Model,
        images: np.ndarray,
        labels: np.ndarray,
        kind: str = "triplet",
        candidates: int = 200,
        hardest: int = 16,
        random: int = 16,
        metric_model: keras.Model | None = None,
        distance: str = "squared_euclidean",
        squared: bool = True,
        seed: int | None = None,
        reproduce_original_bug: bool = False,
    ) -> None:
        if kind not in ("triplet", "quadruplet"):
            raise ValueError(
                "Invalid value for argument `kind`. Expected one of ('triplet', 'quadruplet'). "
                f"Received: kind={kind!r}"
            )
        if hardest + random > candidates or min(hardest, random) < 0:
            raise ValueError(
                f"Invalid values for `hardest`, `random`, `candidates`. Expected non-negative "
                f"hardest + random <= candidates. Received {hardest}, {random}, {candidates}."
            )
        self.embedding_model, self.metric_model = embedding_model, metric_model
        self.images, self.index = images, ClassIndex(labels)
        self.kind, self.candidates, self.hardest, self.random = kind, candidates, hardest, random
        self.distance, self.squared = check_distance(distance), bool(squared)
        self.reproduce_original_bug = reproduce_original_bug
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self._compiled = None

    def draw(self) -> tuple[np.ndarray, ...]:
        """C random candidate tuples: index arrays (C,)."""
        if self.kind == "triplet":
            return sample_triplet_indices(self.index, self.candidates, self.rng)
        return sample_quadruplet_indices(
            self.index, self.candidates, self.rng, self.reproduce_original_bug
        )

    def _d(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        if self.metric_model is None:
            return paired_distances(x, y, self.distance)
        return self.metric_model(tf.concat([x, y], axis=1), training=False)[:, 0]

    def score(self, tuples: tuple[np.ndarray, ...]) -> np.ndarray:
        """Hardness (C,) of candidate tuples: one compiled pass over all their images.

        Every step scores the same number of images (C x tuple size), so the compiled
        function (embedding, distances or learned metric, hardness) is traced once and reused;
        duplicates among the images are rare and cheap.
        """
        flat = np.concatenate(tuples)
        return np.asarray(self._hardness(tf.constant(to_model_input(self.images[flat]))))

    def _hardness_graph(self, images: tf.Tensor) -> tf.Tensor:
        parts = tf.split(
            self.embedding_model(images, training=False), 3 if self.kind == "triplet" else 4
        )
        if self.kind == "triplet":
            return paired_distances(parts[0], parts[1], self.distance) - paired_distances(
                parts[0], parts[2], self.distance
            )
        a, p, n, n2 = parts
        return quadruplet_hardness(self._d(a, p), self._d(a, n), self._d(n, n2), self.squared)

    @property
    def _hardness(self):
        if self._compiled is None:
            self._compiled = tf.function(self._hardness_graph)
        return self._compiled

    def mine(self) -> tuple[np.ndarray, ...]:
        """One hard batch: index arrays (H + R,), the H hardest first."""
        tuples = self.draw()
        keep = select_hard(self.score(tuples), self.hardest, self.random, self.rng)
        return tuple(t[keep] for t in tuples)

    def dataset(self, steps: int | None = None) -> tf.data.Dataset:
        """Hard batches as a dataset of input tuples (see the class docstring)."""
        return indices_to_dataset(
            self.mine, self.images, lambda *xs: (tuple(xs),), steps, lookahead=False
        )
