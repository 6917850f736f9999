"""Your images in: the recommended recipe for a folder of class sub-folders.

``python -m oneshot.train --images DIR`` trains :func:`recommended_run` on the folder's
training classes and validates on classes it holds out (a folder has no test split):

- the README's online batch-hard recipe: conv4 (width 64, 64-d L2-normalised embedding),
  batch-hard triplets with margin 0.2 and Euclidean distance, Adam 1e-3 with a cosine decay to
  1e-5, at most 1,500 steps, at the folder's image size, grey or colour;
- P x K batches fitted to the data (:func:`batch_shape`): up to 32 classes, about 128 images;
- Koch's small random affine distortions of every training image (``augment``; uncovered
  borders are filled with 0, black);
- held-out classes (:func:`default_validation_classes` of them unless told): a 1-shot episode
  monitor on them every 100 steps keeps the best checkpoint and stops training after
  :data:`PATIENCE` chunks without a better one; after training the model is compared with the
  untrained network and raw pixels on the same held-out episodes.

Augmentation, the best chunk and early stopping are what the few-class study
(``mnist-few-class``, :mod:`oneshot.experiments.few_class`: 5 recipes x 3 seeds, MNIST digits
0-4 -> one-shot on the test split's 5-9) found best among recipes that start from random
weights: 69.9% 5-way against 61.6% for the README recipe's last weights, 40.7% for the
untrained network and 50.4% for raw pixels. (Starting from a related trained network,
``init_from``, did better still: 87.0%.) ``mnist-heldout`` runs this recipe on that task.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from oneshot.checks import MIN_IMAGE_SIZE
from oneshot.data.datasets import LabelledImages
from oneshot.data.splits import ClassSpec
from oneshot.experiments.online import batch_hard_loss
from oneshot.names import AUTO_START, RANDOM_START, SHIPPED_STARTS
from oneshot.training.configs import OnlineRun
from oneshot.training.experiment import EvalConfig, Experiment
from oneshot.training.starts import StartScore, choose_start, score_starts

RECIPE_NAME = "recommended"
RECIPE_STEPS = 1500
PATIENCE = 3  # chunks of 100 steps without a better held-out accuracy before stopping
BATCH_IMAGES = 128  # about P x K images per batch
MAX_CLASSES_PER_BATCH = 32
SAMPLES_PER_CLASS = (4, 16)  # the range of K


def default_validation_classes(classes: int) -> int:
    """Held-out classes when the user does not say: as many as sensible, since the validation
    episodes are as wide as the held-out classes allow (N-way with N up to 20 for the
    monitor, up to the evaluation's ways for ``metrics.json``).

    The rule: a fifth of the classes, but at least 5, and never more than half: 2 of 4 or 5
    classes, 3 of 6, 5 of 10 to 25, 20 of 100. A fifth keeps most classes for training on a
    large folder; 5 gives 5-way episodes as soon as the folder has 10 classes; half is the
    ceiling because a network trained on fewer classes than it is validated on learns too
    little to judge (on 2 training classes it learns one boundary). A folder of fewer than 10
    classes therefore validates on fewer than 5-way episodes, and on 4 or 5 classes on 2-way
    ones, which ``python -m oneshot.train`` flags with a warning; below 4 classes (2 to train,
    2 to hold out) it cannot validate and says how many class folders to add."""
    return max(round(0.2 * classes), min(5, classes // 2))


def batch_shape(class_sizes: Sequence[int]) -> tuple[int, int]:
    """``(P, K)`` for training classes of ``class_sizes`` images: P classes of K images a batch.

    P is every class up to 32; K about 128 / P within [4, 16], lowered to the smallest class
    (at least 2: a positive for every anchor), so that every class is drawn; a class of a single
    image cannot be (it has no positive) and does not count in P.

    Raises:
        ValueError: fewer than 2 classes with 2 images.
    """
    counts = np.asarray(class_sizes, dtype=np.int64)
    counts = counts[counts > 0]
    p = min(MAX_CLASSES_PER_BATCH, len(counts))
    low, high = SAMPLES_PER_CLASS
    k = min(max(low, BATCH_IMAGES // max(p, 1)), high)
    usable = counts[counts >= 2]
    k = max(2, min(k, int(usable.min()) if usable.size else 2))
    p = min(p, int(np.sum(counts >= k)))
    if p < 2:
        raise ValueError(
            "Invalid value for argument `class_sizes`. Expected at least 2 training classes with 2 "
            f"or more images each (metric learning compares pairs). Received {len(counts)} "
            f"classes, {int(np.sum(counts >= 2))} of them with 2 or more images."
        )
    return p, k


def recommended_run(
    class_sizes: Sequence[int],
    *,
    image_size: int,
    validation_classes: ClassSpec,
    channels: int = 1,
    steps: int = RECIPE_STEPS,
    learning_rate: float = 1e-3,
    augment: bool = True,
    patience: int = PATIENCE,
    keep_start: bool = True,
    **source: Any,
) -> OnlineRun:
    """The recommended recipe, fitted to training classes of ``class_sizes`` images (see the
    module docstring). ``augment=False`` for images whose borders must not turn black;
    ``patience=0`` trains every step (still keeping the best chunk); with ``keep_start`` the
    weights before the first step are a candidate too, so the run never ends worse than its
    start on the held-out monitor.

    ``source`` says where the images come from: ``dataset="folder", folder=...,
    folder_checksum=...`` (``--images``) or ``dataset="mnist"`` (``mnist-heldout``), and may
    add ``init_from=...`` (start from a trained run's network).
    ``validation_classes`` is recorded as given; the runner holds the same classes out again
    (the draw is fixed by ``oneshot.data.splits.VALIDATION_SEED``)."""
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(
            f"Invalid value for argument `image_size`. Expected at least {MIN_IMAGE_SIZE} "
            f"(the network halves the image four times). Received: image_size={image_size}"
        )
    p, k = batch_shape(class_sizes)
    values: dict[str, Any] = dict(
        name=RECIPE_NAME,
        **source,
        image_size=image_size,
        channels=channels,
        validation_classes=validation_classes,
        network="conv4",
        embedding_dim=64,
        network_kwargs={"width": 64},
        loss=batch_hard_loss(0.2),
        classes_per_batch=p,
        samples_per_class=k,
        steps=steps,
        learning_rate=learning_rate,
        final_learning_rate=1e-5,
        log_every=100,
        monitor_episodes=500,
        keep_best=True,
        patience=patience,
        keep_start=keep_start,
        augment=augment,
    )
    return OnlineRun(**values)


def folder_recipe(
    split_at: Callable[[int | None], tuple[LabelledImages, LabelledImages]],
    start: str = AUTO_START,
    seed: int = 0,
    learning_rate: float | None = None,
    shipped: Sequence[str] = SHIPPED_STARTS,
    **settings: Any,
) -> tuple[OnlineRun, LabelledImages, LabelledImages, list[StartScore]]:
    """The recipe of ``python -m oneshot.train --images`` for a folder whose (training,
    held-out) classes ``split_at(size)`` returns at an image size (None: the folder's own):
    ``(run, train, held_out, scores)``, the images at the run's size.

    ``start``: ``"auto"`` scores ``"random"`` and each of ``shipped`` (the starts an
    evaluation allows; each must take the folder's channels) on the held-out classes and
    starts from the best (:mod:`oneshot.training.starts`); a shipped start's name starts from
    it; ``"random"`` from random weights. ``settings`` go to :func:`recommended_run` (``dataset``,
    ``folder``, ``steps``, ``init_from`` for a model file, ...). ``scores`` is empty unless
    starts were scored.
    """
    train, held = split_at(None)
    run = recommended_run(
        np.bincount(train.labels), image_size=train.images.shape[1],
        validation_classes=tuple(held.class_names),
        channels=3 if train.images.ndim == 4 else 1,
        **({} if learning_rate is None else {"learning_rate": learning_rate}), **settings,
    )  # fmt: skip
    scores: list[StartScore] = []
    if start == AUTO_START or start in SHIPPED_STARTS:
        names = [RANDOM_START, *shipped] if start == AUTO_START else [start]
        scores = score_starts(run, lambda size: split_at(size)[1], seed, names)
        run = choose_start(run, scores, learning_rate)
    train, held = split_at(run.image_size)
    return run, train, held, scores


RECIPE_EVAL = EvalConfig(
    episodes=1000, ways=(5, 20), cmc_classes=400, lake_runs=False, first_n_images=3000
)
# MNIST's training split has about 6,000 images of each digit: any count >= 16 gives 5 x 16.
MNIST_DIGIT_SIZE = 6000


def mnist_heldout(paper: bool) -> Experiment:
    """The recipe on few classes: MNIST digits 0-4, validated (the kept checkpoint) on the
    training split's 5-9 and evaluated on the test split's 5-9, against the untrained network
    and raw pixels."""
    run = recommended_run(
        [MNIST_DIGIT_SIZE] * 5, image_size=28, validation_classes=(5, 6, 7, 8, 9), dataset="mnist"
    )
    return Experiment(
        "mnist-heldout",
        "The recommended recipe for your images on MNIST digits 0-4, validated on training 5-9, "
        "tested on test 5-9.",
        (run,),
        dataclasses.replace(RECIPE_EVAL, ways=(5,), cmc_classes=5),
    )


def folder_experiment(run: OnlineRun, episodes: int | None = None) -> Experiment:
    """The experiment of ``python -m oneshot.train --images``: ``run`` (from
    :func:`recommended_run`), evaluated on its held-out classes."""
    evaluation = RECIPE_EVAL
    if episodes is not None:
        evaluation = dataclasses.replace(RECIPE_EVAL, episodes=episodes)
    return Experiment(
        "images",
        f"The recommended recipe on the images of {run.folder}, validated on held-out classes.",
        (run,),
        evaluation,
    )
