"""Model builders: siamese (pairs), triplet, quadruplet and online (in-batch) models.

Every model shares ONE embedding network, nested as the layer named ``"embedding"``; the
quadruplet model's learned metric is nested as ``"metric"`` and the similarity heads of siamese
models as ``"pair_similarity"``. :meth:`oneshot.evaluation.scoring.Scorer.from_model` relies on these
names to score pairs with any model kind.

Training data (as made by ``oneshot.data.samplers``):

- siamese: elements ``((x1, x2), y)`` with ``y = 1`` for a SAME-class pair;
- triplet / quadruplet: elements ``((a, p, n),)`` / ``((a, p, n, n2),)`` (inputs only: the loss
  layer adds the loss), or dicts keyed by input name ``{"anchor": ..., "positive": ...}``. A
  bare 3- or 4-tuple would be read by Keras as ``(x, y, sample_weight)``: wrap it with
  :func:`inputs_only`;
- online: elements ``(images, int labels)`` from P x K batches.

Builders compile the model when ``optimizer`` is given (the default "adam"), with the loss that
belongs to the model kind.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from oneshot.checks import check_choice
from oneshot.distances import DISTANCES, Distance, distance_name, get_distance
from oneshot.losses import PairContrastiveLoss, QuadrupletLossLayer, TripletLossLayer, attach
from oneshot.losses.heads import LOSS_HEAD, loss_head
from oneshot.models.layers import (
    SIMILARITY_NAME,
    AbsoluteDifference,
    EmbeddingDistance,
    MetricDistance,
    PairDistance,
)
from oneshot.models.networks import metric_network

SIAMESE_HEADS = ("contrastive", "l1_sigmoid", "cosine", "concat")
QUADRUPLET_METRICS = ("learned", *DISTANCES)
DISTANCE_TAG = "embedding_distance"
TUPLE_INPUTS = ("anchor", "positive", "negative", "negative2")


def _check_embedding(embedding: keras.Model) -> keras.Model:
    if not isinstance(embedding, keras.Model) or embedding.name != "embedding":
        raise ValueError(
            "Invalid value for argument `embedding`. Expected a keras.Model named 'embedding' "
            "(every builder in oneshot.models.networks returns one). Received: "
            f"{type(embedding).__name__} named {getattr(embedding, 'name', None)!r}. "
            "Rename it with keras.Model(net.inputs, net.outputs, name='embedding')."
        )
    return embedding


def _inputs(embedding: keras.Model, names: tuple[str, ...]) -> list[keras.KerasTensor]:
    shape = embedding.input_shape[1:]
    return [keras.Input(shape=shape, name=name) for name in names]


def _is_unit_norm(embedding: keras.Model) -> bool:
    return isinstance(embedding.layers[-1], layers.UnitNormalization)


def inputs_only(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Wrap a dataset of bare tuples ``(a, p, n[, n2])`` as ``((a, p, n[, n2]),)`` for ``fit``."""
    return dataset.map(lambda *xs: (tuple(xs),))


def siamese_loss(head: str, margin: float = 1.0) -> keras.losses.Loss:
    """The loss a siamese ``head`` is trained with (labels: 1 = same class)."""
    check_choice("head", head, SIAMESE_HEADS)
    if head == "contrastive":
        return PairContrastiveLoss(margin=margin)
    if head == "cosine":
        return keras.losses.MeanSquaredError()  # cosine similarity regressed to y in {0, 1}
    return keras.losses.BinaryCrossentropy()


def _similarity_head(embedding_dim: int, head: str, hidden: int) -> keras.Model:
    """Nested model ``[e1, e2] -> (B, 1)`` similarity (P(same) or cosine)."""
    e1 = keras.Input(shape=(embedding_dim,), name="embedding_1")
    e2 = keras.Input(shape=(embedding_dim,), name="embedding_2")
    if head == "l1_sigmoid":
        diff = AbsoluteDifference(name="abs_difference")([e1, e2])
        out = layers.Dense(1, activation="sigmoid", name="p_same")(diff)
    elif head == "cosine":
        out = layers.Dot(axes=1, normalize=True, name="cosine_similarity")([e1, e2])
    else:  # concat: NOT symmetric, (e1, e2) and (e2, e1) are different inputs to the Dense
        x = layers.Concatenate(name="concat")([e1, e2])
        x = layers.Dense(hidden, activation="relu", name="hidden")(x)
        out = layers.Dense(1, activation="sigmoid", name="p_same")(x)
    return keras.Model([e1, e2], out, name=SIMILARITY_NAME)


def build_siamese(
    embedding: keras.Model,
    head: str = "contrastive",
    margin: float = 1.0,
    hidden: int = 64,
    optimizer: str | keras.optimizers.Optimizer | None = "adam",
) -> keras.Model:
    """Siamese model: two images -> one score per pair, trained on labelled pairs.

    Heads:
        - "contrastive": output the L2 distance (B, 1); :class:`PairContrastiveLoss`.
        - "l1_sigmoid" (Koch 2015): ``|e1 - e2| -> Dense(1, sigmoid)`` = P(same); binary CE.
        - "cosine": cosine similarity (B, 1) regressed to y with mean squared error.
        - "concat": ``[e1, e2] -> Dense(hidden, relu) -> Dense(1, sigmoid)`` = P(same); binary
          CE. Unlike the other heads it is NOT symmetric: swapping the inputs changes the score.

    Args:
        embedding: the shared embedding network (named "embedding").
        head: one of ``SIAMESE_HEADS``. Defaults to "contrastive".
        margin: contrastive margin. Defaults to 1.0.
        hidden: units of the concat head's hidden layer. Defaults to 64.
        optimizer: compile with this optimizer and the head's loss; None leaves the model
            uncompiled (use :func:`siamese_loss`). Defaults to "adam".

    Returns:
        A ``keras.Model`` named "siamese": inputs ``[left, right]`` images, output (B, 1).

    Example:
    >>> model = build_siamese(conv4((28, 28, 1), 16, width=16), head="l1_sigmoid")
    >>> model.fit(pair_dataset(images, labels), steps_per_epoch=100)  # doctest: +SKIP
    """
    _check_embedding(embedding)
    check_choice("head", head, SIAMESE_HEADS)
    left, right = _inputs(embedding, ("left", "right"))
    e1, e2 = embedding(left), embedding(right)
    if head == "contrastive":
        out = PairDistance("euclidean", name="distance")([e1, e2])
    else:
        out = _similarity_head(embedding.output_shape[-1], head, hidden)([e1, e2])
    model = keras.Model([left, right], out, name="siamese")
    if optimizer is not None:
        model.compile(optimizer=optimizer, loss=siamese_loss(head, margin))
    return model


def build_triplet(
    embedding: keras.Model,
    margin: float = 0.2,
    distance: Distance | str = "euclidean",
    soft_margin: bool = False,
    optimizer: str | keras.optimizers.Optimizer | None = "adam",
) -> keras.Model:
    """Triplet model: ``[anchor, positive, negative]`` through one shared embedding network.

    The :class:`TripletLossLayer` adds the mean triplet loss; the output is the distances
    (B, 2) ``[d(a, p), d(a, n)]``. Train on elements ``((a, p, n),)``.

    Args:
        embedding: the shared embedding network (named "embedding").
        margin, distance, soft_margin: see :func:`oneshot.losses.triplet_loss`.
        optimizer: compile with it (no ``loss=``: the layer adds it). Defaults to "adam".

    Returns:
        A ``keras.Model`` named "triplet".
    """
    _check_embedding(embedding)
    inputs = _inputs(embedding, TUPLE_INPUTS[:3])
    loss = TripletLossLayer(margin, distance, soft_margin, name="triplet_loss")
    model = keras.Model(inputs, loss([embedding(x) for x in inputs]), name="triplet")
    if optimizer is not None:
        model.compile(optimizer=optimizer)
    return model


def build_quadruplet(
    embedding: keras.Model,
    metric: str | Distance = "learned",
    alpha1: float = 1.0,
    alpha2: float = 0.5,
    squared: bool = True,
    adaptive_margin: bool = False,
    metric_hidden: tuple[int, ...] = (10, 10, 10),
    optimizer: str | keras.optimizers.Optimizer | None = "adam",
) -> keras.Model:
    """Quadruplet model (Chen et al. 2017): ``[anchor, positive, negative, negative2]``.

    Pair values g(a, p), g(a, n), g(n, n2) come from the learned metric network (nested, named
    "metric", fed ``concat(first, second)``) or from a fixed distance; the
    :class:`QuadrupletLossLayer` adds the loss and the output is the values (B, 3). It warns
    when a margin cannot be met (e.g. the paper's alpha1 = 1 with the learned g in [0, 1]).

    Args:
        embedding: the shared embedding network (named "embedding").
        metric: "learned" or a fixed distance name. Defaults to "learned".
        alpha1, alpha2, squared, adaptive_margin: see :func:`oneshot.losses.quadruplet_loss`.
        metric_hidden: hidden units of the learned metric. Defaults to (10, 10, 10).
        optimizer: compile with it (no ``loss=``). Defaults to "adam".

    Returns:
        A ``keras.Model`` named "quadruplet".
    """
    _check_embedding(embedding)
    if not isinstance(metric, Distance):
        check_choice("metric", metric, QUADRUPLET_METRICS)
    inputs = _inputs(embedding, TUPLE_INPUTS)
    ea, ep, en, en2 = (embedding(x) for x in inputs)
    pairs = {"ap": (ea, ep), "an": (ea, en), "nn": (en, en2)}
    if metric == "learned":
        g = metric_network(embedding.output_shape[-1], metric_hidden)
        values = [
            MetricDistance(name=f"g_{k}")(g(layers.Concatenate(name=f"pair_{k}")([u, v])))
            for k, (u, v) in pairs.items()
        ]
        max_distance = 1.0
    else:
        values = [PairDistance(metric, name=f"d_{k}")([u, v]) for k, (u, v) in pairs.items()]
        # Upper bounds used to warn about unreachable margins (L2 ones need unit-norm embeddings).
        bounds = {"euclidean": 2.0, "squared_euclidean": 4.0} if _is_unit_norm(embedding) else {}
        max_distance = {**bounds, "cosine": 2.0}.get(distance_name(metric))
    loss = QuadrupletLossLayer(
        alpha1, alpha2, squared, adaptive_margin, max_distance, name="quadruplet_loss"
    )
    model = keras.Model(inputs, loss(values), name="quadruplet")
    if optimizer is not None:
        model.compile(optimizer=optimizer)
    return model


def build_online(
    embedding: keras.Model,
    loss: keras.losses.Loss | None = None,
    optimizer: str | keras.optimizers.Optimizer | None = "adam",
    distance: Distance | str | None = None,
) -> keras.Model:
    """Model for in-batch (online) losses: images (B, H, W, C) -> embeddings (B, D).

    Compile it with a loss taking ``y_true`` = integer class labels (B,) and ``y_pred`` = the
    embeddings (B, D), e.g. ``TripletMarginLoss(miner=BatchHardMiner())``, and train on P x K
    batches ``(images, labels)``::

        loss = TripletMarginLoss(margin=0.2, miner=BatchHardMiner(), reducer=MeanReducer())
        model = build_online(conv4(), loss=loss)
        model.fit(pk_dataset(images, labels, p=8, k=4, seed=0), steps_per_epoch=100)

    The model ends with an :class:`EmbeddingDistance` layer that records the loss's distance,
    so the saved model is evaluated with the distance it was trained with.

    A loss with a layer of its own (class weights, proxies or a queue: ``loss.head``, see
    :func:`loss_head`) has it built for the embedding size and attached to the model as
    ``model.loss_head`` (:func:`oneshot.losses.attach`: the model is then a
    :class:`oneshot.losses.LossHeadModel`): ``fit`` trains it, the run checkpoint
    (``model.save_weights``) holds it, and ``evaluate`` leaves its state alone. It is not part
    of the embedding model: save the trained model with ``saveable_model(model).save(path)``,
    which leaves it out. The loss then belongs to this model (a second ``build_online`` with it
    is refused).

    Args:
        embedding: the embedding network (named "embedding"), nested in the model.
        loss: compile with this loss and ``optimizer`` when both are given. Defaults to None.
        optimizer: Defaults to "adam".
        distance: the distance to record; defaults to the loss's (``loss.distance``), else
            Euclidean. Giving one that differs from the loss's is an error.

    Returns:
        A ``keras.Model`` named "online".
    """
    _check_embedding(embedding)
    own = getattr(loss, "distance", None)
    if distance is not None and own is not None and get_distance(distance) != get_distance(own):
        raise ValueError(
            f"Invalid value for argument `distance`: {distance!r} differs from the loss's "
            f"distance {own!r}. Leave `distance` out to record the loss's."
        )
    tag = EmbeddingDistance(distance if distance is not None else own, name=DISTANCE_TAG)
    (images,) = _inputs(embedding, ("image",))
    model = keras.Model(images, tag(embedding(images)), name="online")
    if loss_head(loss) is not None:
        model = attach(model, loss)  # holds loss.head; refuses a loss of another model
    if loss is not None and optimizer is not None:
        model.compile(optimizer=optimizer, loss=loss)
    return model


def saveable_model(model: keras.Model) -> keras.Model:
    """The model to save as ``model.keras``: ``model`` itself, or, when a loss head is
    attached (:func:`build_online`), an uncompiled functional model over the same layers
    without it. Its file then holds the embedding network alone (no class weights, no
    optimizer state for them), loads after ``import oneshot`` without warnings and is
    evaluated as any online model."""
    if getattr(model, LOSS_HEAD, None) is None:
        return model
    return keras.Model(model.inputs, model.outputs, name=model.name)
