"""One scoring interface for every model kind: embed each image once, then score pairs.

Evaluation code only talks to a :class:`Scorer`, so it never cares whether a model compares
embeddings with a fixed distance (L2, cosine, ...) or with a learned metric network.
Convention everywhere: a *distance* — smaller means more alike.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from oneshot.checks import check_embeddings
from oneshot.data.augment import rotate
from oneshot.data.preprocess import to_model_input
from oneshot.distances import (
    Distance,
    get_distance,
    paired_distances,
    pairwise_dissimilarity_numpy,
)
from oneshot.models.layers import EMBEDDING_NAME as EMBEDDING_LAYER
from oneshot.models.layers import METRIC_NAME as METRIC_LAYER
from oneshot.models.layers import SIMILARITY_NAME as SIMILARITY_LAYER

EMBED_BLOCK = 8192  # images converted and embedded at a time by Scorer.embed


class Scorer:
    """Embeds images and scores pairs of embeddings.

    Args:
        embedding_model: a Keras model mapping images (N, H, W, C) to embeddings (N, D).
        distance: a ``oneshot.distances.Distance`` (or legacy name), used when
            ``metric_model`` is None; scores are its dissimilarity (``1 - cos`` for cosine).
            Defaults to Euclidean.
        metric_model: optional learned metric: maps concatenated embeddings (N, 2D) to
            (N, 2) softmax outputs; column 0 is the distance g in [0, 1].
        batch_size: batch size for embedding and metric evaluation. Defaults to 512.
        similarity_model: optional pair head of a siamese model: maps ``[e1, e2]`` (two (N, D)
            arrays) to a similarity (N, 1) in which larger means more alike (P(same) or
            cosine); scored as the distance ``1 - similarity``. Defaults to None.
        shifts: test-time shift averaging: each image is embedded as itself and shifted by
            ``shifts`` pixels left, right, up and down (zeros fill in), and the five embeddings
            are averaged (then re-normalised if the network's are unit length). Still one-shot:
            it uses no other labelled image. 0 turns it off. Defaults to 0.
        rotations: test-time rotation averaging: two more views, the image rotated by
            ``+rotations`` and ``-rotations`` degrees about its centre (zeros fill in),
            averaged with the others. 0 turns it off. Defaults to 0.
    """

    def __init__(
        self,
        embedding_model: keras.Model,
        distance: Distance | str = "euclidean",
        metric_model: keras.Model | None = None,
        batch_size: int = 512,
        similarity_model: keras.Model | None = None,
        shifts: int = 0,
        rotations: float = 0.0,
    ) -> None:
        if int(shifts) < 0:
            raise ValueError(
                f"Invalid value for argument `shifts`. Expected an int >= 0. Received: shifts={shifts!r}"
            )
        if not 0 <= float(rotations) < 90:
            raise ValueError(
                "Invalid value for argument `rotations`. Expected degrees in [0, 90). "
                f"Received: rotations={rotations!r}"
            )
        if metric_model is not None and similarity_model is not None:
            raise ValueError(
                "Pass at most one of `metric_model` and `similarity_model`. Received both."
            )
        self.embedding_model = embedding_model
        self.distance = get_distance(distance)
        self.metric_model = metric_model
        self.similarity_model = similarity_model
        self.batch_size = batch_size
        self.shifts = int(shifts)
        self.rotations = float(rotations)
        self._local_call = None  # see _predict

    @property
    def uses_learned_metric(self) -> bool:
        """True when pairs are scored by a network (learned metric or similarity head)."""
        return self.metric_model is not None or self.similarity_model is not None

    def embed(self, images: np.ndarray) -> np.ndarray:
        """Embeddings (N, D) as float32 numpy for uint8 or float images.

        Images must have the size and channels the embedding network was built for: a clear
        ValueError says how to convert them when they do not (grey/colour, resize).

        Large sets stream in blocks of about :data:`EMBED_BLOCK` images (a whole number of
        batches, so the batches and the numbers are those of one call): only a block is
        converted to float at a time, not the whole set.
        """
        images = np.asarray(images)
        block = -(-EMBED_BLOCK // self.batch_size) * self.batch_size
        if images.ndim >= 3 and len(images) > block:
            return np.concatenate(
                [self.embed(images[i : i + block]) for i in range(0, len(images), block)]
            )
        x = to_model_input(images)
        self._check_image_shape(x.shape[1:])
        if not self.shifts and not self.rotations:
            return self._predict(x)
        views = shifted_views(x, self.shifts) if self.shifts else [x]
        if self.rotations:
            views += [rotate(x, a).numpy() for a in (self.rotations, -self.rotations)]
        views = [self._predict(view) for view in views]
        mean = np.mean(views, axis=0)
        norms = np.linalg.norm(views[0], axis=1)
        if np.allclose(norms, 1.0, atol=1e-3):  # unit-length network: stay on the sphere
            mean /= np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
        return mean.astype(np.float32)

    def _check_image_shape(self, got: tuple[int, ...]) -> None:
        """Refuse images whose (H, W, C) differs from the embedding network's input."""
        shape = getattr(self.embedding_model, "input_shape", None)
        if not isinstance(shape, tuple) or len(shape) != 4:
            return  # not an image network (a test's flatten model, several inputs ...)
        want = tuple(shape[1:])
        if all(w is None or w == g for w, g in zip(want, got, strict=True)):
            return
        advice = []
        if want[2] == 1 and got[2] == 3:
            advice.append(
                "convert them to grey with oneshot.data.to_grayscale(images) (or "
                "load_image_folder(..., channels=1)), or build the network for colour images "
                f"(input_shape=({want[0]}, {want[1]}, 3))"
            )
        elif want[2] == 3 and got[2] == 1:
            advice.append(
                "give them 3 channels with np.repeat(images[..., None], 3, axis=-1) (or "
                "load_image_folder(..., channels=3))"
            )
        elif want[2] is not None and want[2] != got[2]:
            advice.append(f"give them {want[2]} channels")
        if any(w is not None and w != g for w, g in zip(want[:2], got[:2], strict=True)):
            advice.append(
                f"resize them with oneshot.data.resize_area(images, ({want[0]}, {want[1]})) (or "
                f"load_image_folder(..., image_size=({want[0]}, {want[1]})))"
            )
        raise ValueError(
            f"Invalid value for argument `images`. The embedding model expects {want} images, "
            f"got {tuple(got)}: {'; and '.join(advice)}."
        )

    def _predict(self, x: np.ndarray) -> np.ndarray:
        model = self.embedding_model
        if getattr(model, "_distribute_strategy", None) is None:
            return np.asarray(model.predict(x, batch_size=self.batch_size, verbose=0))
        # built under a tf.distribute strategy (training with --strategy): Keras's predict
        # would distribute the batches (and fails under a multi-worker strategy); each process
        # embeds on its own instead, with the weights every replica shares
        if self._local_call is None:
            self._local_call = tf.function(lambda batch: model(batch, training=False),
                                           reduce_retracing=True)  # fmt: skip
        parts = [
            np.asarray(self._local_call(tf.constant(x[i : i + self.batch_size])))
            for i in range(0, len(x), self.batch_size)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, *model.output_shape[1:]), "f4")

    _CHUNK = 262144  # pairs per compiled call of a learned head

    def _head(self, left: tf.Tensor, right: tf.Tensor) -> tf.Tensor:
        """Distance (N,) from a learned head: 1 - P(same) / similarity, or the metric's g."""
        if self.similarity_model is not None:
            return 1.0 - tf.reshape(self.similarity_model([left, right], training=False), [-1])
        return self.metric_model(tf.concat([left, right], axis=1), training=False)[:, 0]

    def _block(self, rows: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
        """Distances (R, Nb) of every row of ``rows`` against every row of ``b``."""
        r, n = tf.shape(rows)[0], tf.shape(b)[0]
        d = self._head(tf.repeat(rows, n, axis=0), tf.tile(b, [r, 1]))
        return tf.reshape(d, [r, n])

    def _compiled(self, name: str):
        """Compiled (traced once per input shape, shapes relaxed) versions of the heads."""
        cache = self.__dict__.setdefault("_compiled_heads", {})
        if name not in cache:
            cache[name] = tf.function(getattr(self, name), reduce_retracing=True)
        return cache[name]

    def paired(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Distances (N,) between matching rows of two embedding arrays."""
        check_embeddings(a, "a")
        check_embeddings(b, "b")
        if not self.uses_learned_metric:
            return np.asarray(paired_distances(a, b, self.distance), np.float32)
        a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
        head = self._compiled("_head")
        parts = [
            head(tf.constant(a[i : i + self._CHUNK]), tf.constant(b[i : i + self._CHUNK]))
            for i in range(0, len(a), self._CHUNK)
        ]
        return np.concatenate([np.asarray(p) for p in parts]) if parts else np.zeros(0, np.float32)

    def pairwise(self, a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        """Distance matrix (Na, Nb) between all rows of ``a`` and all rows of ``b`` (default ``a``)."""
        check_embeddings(a, "a")
        b = a if b is None else check_embeddings(b, "b")
        if not self.uses_learned_metric:
            return pairwise_dissimilarity_numpy(a, b, self.distance)
        a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
        out = np.empty((len(a), len(b)), dtype=np.float32)
        rows_per_chunk = max(1, self._CHUNK // max(len(b), 1))
        block, b_tensor = self._compiled("_block"), tf.constant(b)
        for start in range(0, len(a), rows_per_chunk):
            rows = tf.constant(a[start : start + rows_per_chunk])
            out[start : start + len(rows)] = np.asarray(block(rows, b_tensor))
        return out

    @classmethod
    def from_model(
        cls,
        model: keras.Model,
        distance: Distance | str | None = None,
        batch_size: int = 512,
        shifts: int = 0,
        rotations: float = 0.0,
    ) -> Scorer:
        """Build a Scorer from any oneshot model (or a bare embedding network).

        oneshot models name their shared embedding network ``"embedding"``, their learned
        metric network (if any) ``"metric"`` and a siamese similarity head (if any)
        ``"pair_similarity"``; a model with none of them is used as the embedding. Pairs are
        scored by the model's own metric or head when it has one, else by the distance the model
        was trained with (:func:`trained_distance`). ``distance`` overrides it on purpose; a
        bare embedding network that records no distance needs it.
        """
        names = {layer.name for layer in model.layers}
        embedding = model.get_layer(EMBEDDING_LAYER) if EMBEDDING_LAYER in names else model
        metric = model.get_layer(METRIC_LAYER) if METRIC_LAYER in names else None
        similarity = model.get_layer(SIMILARITY_LAYER) if SIMILARITY_LAYER in names else None
        if distance is None:
            distance = trained_distance(model)
            if distance is None and metric is None and similarity is None:
                raise ValueError(
                    f"Model {model.name!r} records no distance (it is not a oneshot training "
                    "model). Pass `distance=`, e.g. Scorer.from_model(model, distance='euclidean')."
                )
        return cls(
            embedding,
            distance=distance or "euclidean",
            metric_model=metric,
            batch_size=batch_size,
            similarity_model=similarity,
            shifts=shifts,
            rotations=rotations,
        )


def trained_distance(model: keras.Model) -> Distance | None:
    """The distance ``model`` was built and trained with, or None if it records none.

    Read from its layers (the online model's ``EmbeddingDistance``, a triplet model's loss
    layer, a siamese or fixed-distance quadruplet model's ``PairDistance``), else from its
    compiled loss (online models saved before they carried the layer). Conflicting records
    are an error.
    """
    found = {get_distance(layer.distance) for layer in model.layers if hasattr(layer, "distance")}
    if not found:
        loss = getattr(model, "loss", None)
        if hasattr(loss, "distance"):
            found = {get_distance(loss.distance)}
    if len(found) > 1:
        raise ValueError(
            f"Model {model.name!r} records several distances {sorted(map(repr, found))}; "
            "pass `distance=` to choose one."
        )
    return next(iter(found), None)


def shifted_views(images: np.ndarray, pixels: int) -> list[np.ndarray]:
    """``images`` (N, H, W, C) and its copies shifted by ``pixels`` right, left, down and up,
    with zeros (background) filling in."""
    p = int(pixels)
    h, w = images.shape[1:3]
    padded = np.pad(images, ((0, 0), (p, p), (p, p), (0, 0)))
    offsets = [(0, 0), (0, -p), (0, p), (-p, 0), (p, 0)]  # (rows, cols) the content moves by
    return [padded[:, p - dy : p - dy + h, p - dx : p - dx + w] for dy, dx in offsets]
