"""Offline hard batches (the original experiments): score random candidates, keep the hardest.

``HardBatchMiner`` draws C random candidate triplets or quadruplets, scores them with the
*current* model in one forward pass over their images, and keeps the H hardest plus R random
others. :meth:`HardBatchMiner.from_model` reads the score's definition (embedding network,
learned metric, distance, squared or not) from the training model itself, so mining and
training always measure the same quantity.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from oneshot.checks import check_choice
from oneshot.data.preprocess import to_model_input
from oneshot.data.samplers import (
    ClassIndex,
    indices_to_dataset,
    sample_quadruplet_indices,
    sample_triplet_indices,
)
from oneshot.distances import Distance, get_distance

KINDS = ("triplet", "quadruplet")


def _values(distances: tf.Tensor, squared: bool) -> tf.Tensor:
    d = tf.reshape(tf.convert_to_tensor(distances), [-1])
    return tf.square(d) if squared else d


def quadruplet_hardness(
    d_ap: tf.Tensor, d_an: tf.Tensor, d_nn: tf.Tensor, squared: bool = True
) -> tf.Tensor:
    """Mining score of quadruplets, higher = harder: ``2 v(a,p) - v(a,n) - v(n,n2)``.

    ``v = g^2`` (``squared=True``, what the quadruplet loss uses by default) or ``v = g``; the
    score is the sum of the two hinge arguments of the quadruplet loss without the margins.

    Args:
        d_ap, d_an, d_nn: (B,) or (B, 1) pair values g(a, p), g(a, n), g(n, n2).
        squared: square the values first, as the loss does. Defaults to True.

    Returns:
        A float tensor of shape (B,).
    """
    p, n, nn = _values(d_ap, squared), _values(d_an, squared), _values(d_nn, squared)
    return 2.0 * p - n - nn


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


def _layer_names(model: keras.Model) -> set[str]:
    return {layer.name for layer in model.layers}


class HardBatchMiner:
    """The original experiments' "hard batches", scored with the current weights.

    Each step draws ``candidates`` random triplets or quadruplets, embeds the distinct images
    among them in one forward pass, scores every tuple and keeps the ``hardest`` highest scores
    plus ``random`` other candidates. Scores (higher = harder):

    - triplets: ``d(a, p) - d(a, n)`` with ``distance`` (default squared Euclidean, as in the
      original |a-p|^2 - |a-n|^2);
    - quadruplets: :func:`quadruplet_hardness` ``2 v(a, p) - v(a, n) - v(n, n2)`` with
      ``v = g^2`` (``squared=True``, the quantity the quadruplet loss uses) or ``v = g``
      (``squared=False``, as the original code, which mined with g but trained with g^2);
      ``g`` is the learned metric (column 0 of ``metric_model``) when given, else ``distance``.

    Prefer :meth:`from_model`, which reads all of these from the training model.

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
        distance: fixed distance for scores: a ``oneshot.distances.Distance`` or a legacy name.
            Defaults to "squared_euclidean".
        squared: quadruplet scores on squared values. Defaults to True.
        seed: seed of the candidate sampling.
        reproduce_original_bug: quadruplets only; see ``sample_quadruplet_indices``.

    Example:
        >>> miner = HardBatchMiner.from_model(triplet_model, x_train, y_train, seed=0)
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
        distance: str | Distance = "squared_euclidean",
        squared: bool = True,
        seed: int | None = None,
        reproduce_original_bug: bool = False,
    ) -> None:
        check_choice("kind", kind, KINDS)
        if hardest + random > candidates or min(hardest, random) < 0:
            raise ValueError(
                f"Invalid values for `hardest`, `random`, `candidates`. Expected non-negative "
                f"hardest + random <= candidates. Received {hardest}, {random}, {candidates}."
            )
        self.embedding_model, self.metric_model = embedding_model, metric_model
        self.images, self.index = images, ClassIndex(labels)
        self.kind, self.candidates, self.hardest, self.random = kind, candidates, hardest, random
        self.distance, self.squared = get_distance(distance), bool(squared)
        self.reproduce_original_bug = reproduce_original_bug
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self._compiled = None

    @classmethod
    def from_model(
        cls,
        model: keras.Model,
        images: np.ndarray,
        labels: np.ndarray,
        candidates: int = 200,
        hardest: int = 16,
        random: int = 16,
        seed: int | None = None,
        reproduce_original_bug: bool = False,
    ) -> HardBatchMiner:
        """A miner whose score is the training model's own quantity.

        Read from ``model`` (as built by ``oneshot.models.build_triplet`` /
        ``build_quadruplet``): the kind (``model.name``), the embedding network (layer
        "embedding"), the learned metric (layer "metric", if any), and the distance and
        ``squared`` flag of the loss layer ("triplet_loss" / "quadruplet_loss"); a quadruplet
        model with a fixed distance takes it from its pair layer "d_ap".

        Args:
            model: the built triplet or quadruplet training model.
            images, labels, candidates, hardest, random, seed, reproduce_original_bug: see
                the class.

        Returns:
            A :class:`HardBatchMiner`.
        """
        kind = model.name
        if kind not in KINDS:
            raise ValueError(
                "Invalid value for argument `model`. Expected a model named 'triplet' or "
                f"'quadruplet' (oneshot.models.build_triplet / build_quadruplet). Received: "
                f"model named {kind!r}"
            )
        names = _layer_names(model)
        loss = model.get_layer(f"{kind}_loss")
        metric = model.get_layer("metric") if "metric" in names else None
        distance = getattr(loss, "distance", None)
        if kind == "quadruplet" and metric is None and "d_ap" in names:
            distance = model.get_layer("d_ap").distance
        if metric is None and distance is None:
            raise ValueError(
                "Invalid value for argument `model`. Expected a learned metric layer 'metric' or "
                f"a distance on the layer '{kind}_loss' (or 'd_ap'). Received: a model with "
                f"layers {sorted(names)}"
            )
        return cls(
            model.get_layer("embedding"),
            images,
            labels,
            kind=kind,
            candidates=candidates,
            hardest=hardest,
            random=random,
            metric_model=metric,
            distance="squared_euclidean" if distance is None else distance,
            squared=loss.squared if kind == "quadruplet" else True,
            seed=seed,
            reproduce_original_bug=reproduce_original_bug,
        )

    def draw(self) -> tuple[np.ndarray, ...]:
        """C random candidate tuples: index arrays (C,)."""
        if self.kind == "triplet":
            return sample_triplet_indices(self.index, self.candidates, self.rng)
        return sample_quadruplet_indices(
            self.index, self.candidates, self.rng, self.reproduce_original_bug
        )

    def _d(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        if self.metric_model is None:
            return self.distance.dissimilarity(self.distance.paired(x, y))
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
            d = self.distance
            return d.dissimilarity(d.paired(parts[0], parts[1])) - d.dissimilarity(
                d.paired(parts[0], parts[2])
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

    def skip_one(self) -> None:
        """Advance the random stream past one :meth:`mine` without scoring: the draws do not
        depend on the scores (C candidates, then R positions among the C - H not hardest)."""
        self.draw()
        self.rng.choice(self.candidates - self.hardest, size=self.random, replace=False)

    def dataset(self, steps: int | None = None, skip: int = 0) -> tf.data.Dataset:
        """Hard batches as a dataset of input tuples (see the class docstring); ``skip``
        fast-forwards the random stream by that many batches (:meth:`skip_one`), for a resumed
        run whose model holds the weights it had at that point."""
        return indices_to_dataset(
            self.mine, self.images, lambda *xs: (tuple(xs),), steps, lookahead=False,
            skip=skip, skip_indices=self.skip_one,
        )  # fmt: skip
