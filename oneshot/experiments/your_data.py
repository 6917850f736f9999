"""Your images in: the recommended recipe for a folder of class sub-folders.

``python -m oneshot.train --images DIR`` trains :func:`recommended_run` on the folder's
training classes and validates on classes it holds out (a folder has no test split):

- the README's online batch-hard recipe: conv4 (width 64, 64-d L2-normalised embedding),
  batch-hard triplets with margin 0.2 and Euclidean distance, Adam 1e-3 with a cosine decay to
  1e-5, 1,500 steps, at the folder's image size, grey or colour;
- P x K batches fitted to the data (:func:`batch_shape`): up to 32 classes, about 128 images;
- held-out classes (:func:`default_validation_classes` of them unless told): a 1-shot episode
  monitor on them every 100 steps keeps the best checkpoint, and after training the model is
  compared with the untrained network and raw pixels on the same held-out episodes.

The recipe is this one function, so a study of few-class data can change it in one place.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from oneshot.data.datasets import LabelledImages
from oneshot.data.splits import ClassSpec
from oneshot.experiments.base import EvalConfig, Experiment
from oneshot.experiments.online import batch_hard_loss
from oneshot.training.configs import OnlineRun

RECIPE_NAME = "recommended"
RECIPE_STEPS = 1500
MIN_IMAGE_SIZE = 16  # conv4's four 2x2 poolings need 16 pixels a side
BATCH_IMAGES = 128  # about P x K images per batch
MAX_CLASSES_PER_BATCH = 32
SAMPLES_PER_CLASS = (4, 16)  # the range of K


def default_validation_classes(classes: int) -> int:
    """Held-out classes when the user does not say: a fifth of them, but 5 (at most half) on a
    small folder, so 5-way validation episodes stay possible: 2 of 4 classes, 5 of 10, 20 of
    100."""
    return max(round(0.2 * classes), min(5, classes // 2))


def batch_shape(labels: np.ndarray) -> tuple[int, int]:
    """``(P, K)`` for the training classes ``labels``: P classes of K images per batch.

    P is every class up to 32; K about 128 / P within [4, 16], lowered to what the classes hold
    (at least 2: a positive for every anchor); classes with fewer than K images are then left
    out of the batches, so P counts only the others.

    Raises:
        ValueError: fewer than 2 classes with 2 images.
    """
    counts = np.bincount(np.asarray(labels))
    counts = counts[counts > 0]
    p = min(MAX_CLASSES_PER_BATCH, len(counts))
    low, high = SAMPLES_PER_CLASS
    k = min(max(low, BATCH_IMAGES // max(p, 1)), high)
    k = max(2, min(k, int(counts[counts >= 2].min(initial=0))))
    p = min(p, int(np.sum(counts >= k)))
    if p < 2:
        raise ValueError(
            "Invalid value for argument `labels`. Expected at least 2 training classes with 2 "
            f"or more images each (metric learning compares pairs). Received {len(counts)} "
            f"classes, {int(np.sum(counts >= 2))} of them with 2 or more images."
        )
    return p, k


def recommended_run(
    train: LabelledImages,
    *,
    folder: str,
    folder_checksum: str | None,
    image_size: int,
    channels: int,
    validation_classes: ClassSpec,
    steps: int = RECIPE_STEPS,
    learning_rate: float = 1e-3,
) -> OnlineRun:
    """The recommended recipe for a folder, fitted to its training classes ``train`` (see the
    module docstring). ``validation_classes`` is recorded as given; the runner holds the same
    classes out again (the draw is fixed by ``oneshot.data.splits.VALIDATION_SEED``)."""
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(
            f"Invalid value for argument `image_size`. Expected at least {MIN_IMAGE_SIZE} "
            f"(the network halves the image four times). Received: image_size={image_size}"
        )
    p, k = batch_shape(train.labels)
    values: dict[str, Any] = dict(
        name=RECIPE_NAME,
        dataset="folder",
        folder=folder,
        folder_checksum=folder_checksum,
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
    )
    return OnlineRun(**values)


RECIPE_EVAL = EvalConfig(
    episodes=1000, ways=(5, 20), cmc_classes=400, lake_runs=False, first_n_images=3000
)


def folder_experiment(run: OnlineRun, episodes: int | None = None) -> Experiment:
    """The experiment of ``python -m oneshot.train --images``: ``run`` (from
    :func:`recommended_run`), evaluated on its held-out classes."""
    evaluation = RECIPE_EVAL
    if episodes is not None:
        evaluation = EvalConfig(**{**RECIPE_EVAL.__dict__, "episodes": episodes})
    return Experiment(
        "images",
        f"The recommended recipe on the images of {run.folder}, validated on held-out classes.",
        (run,),
        evaluation,
    )
