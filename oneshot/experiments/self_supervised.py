"""Self-supervised training on a folder's own images (SimCLR), as a start for the recipe.

SimCLR (Chen et al., ICML 2020) needs no labels: two random distortions ("views") of each image
are pulled together and pushed away from the views of every other image of the batch by the
NT-Xent loss. Here that is the project's own P x K pipeline on a relabelled copy of the images
(:func:`views`): every image is a class of two identical copies, so a P x 2 batch holds P images,
the augmentation distorts each copy independently, and :class:`oneshot.losses.NTXentLoss` with
the image as label is SimCLR's loss. Its distortions are Koch's affine ones at twice the range
(:data:`SIMCLR_AUGMENT`): stroke and digit images have no colour to jitter, and the crop of
natural images is a shift and scale here.

:func:`simclr_run` is the first stage; the recipe then fine-tunes from its network with labels
(``init_from``), keeping the self-supervised network unless the labels beat it on the held-out
classes (``keep_start``). Images of the held-out classes are not used: they choose the kept
checkpoint of both stages.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from oneshot.data.datasets import LabelledImages
from oneshot.losses import NTXentLoss
from oneshot.training.configs import OnlineRun

SIMCLR_STEPS = 1000
SIMCLR_IMAGES_PER_BATCH = 64  # P images x 2 views
SIMCLR_TEMPERATURE = 0.2
SIMCLR_AUGMENT = 2.0  # augment_strength: Koch's affine ranges doubled


def views(data: LabelledImages) -> LabelledImages:
    """``data`` relabelled for SimCLR: every image twice, its index as the label of both."""
    count = len(data)
    return LabelledImages(np.concatenate([data.images, data.images]),
                          np.tile(np.arange(count, dtype=np.int32), 2))  # fmt: skip


def simclr_run(run: OnlineRun, images: int, steps: int = SIMCLR_STEPS) -> OnlineRun:
    """The self-supervised first stage of ``run`` (the recipe fitted to a folder) on
    ``images`` training images: same network, data and held-out monitor, SimCLR's batches and
    loss, from random weights."""
    return dataclasses.replace(
        run,
        name="simclr",
        loss=NTXentLoss(temperature=SIMCLR_TEMPERATURE),
        classes_per_batch=min(SIMCLR_IMAGES_PER_BATCH, images),
        samples_per_class=2,
        augment=True,
        augment_strength=SIMCLR_AUGMENT,
        steps=steps,
        learning_rate=1e-3,
        init_from=None,
        init_checksum=None,
    )
