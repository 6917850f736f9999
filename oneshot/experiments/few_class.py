"""Few-class training: which recipe carries what 5 classes teach to 5 new ones?

Trained on few classes, an embedding can do worse on unseen classes than the untrained network.
Measured with the README recipe (online batch-hard, conv4, 1,500 steps) on MNIST digits 0-4,
tested one-shot 5-way on digits 5-9: trained 60%, untrained 41%, raw pixels 50%.
``mnist-few-class`` compares recipes on that task. Every run:

- trains on the MNIST training images of digits 0-4 with the README recipe as
  :func:`few_class_run` fixes it (conv4 width 64, 64-d, batch-hard margin 0.2, P x K = 5 x 16,
  Adam with a cosine decay to 1e-5, 1,500 steps, no augmentation), which each run changes in
  one place; the study chose what :func:`~oneshot.experiments.your_data.recommended_run` now
  does (``augment``), and fixing its base here keeps the committed runs' configs;
- monitors 5-way 1-shot accuracy on the training split's digits 5-9 every 100 steps (500
  episodes), which ``keep_best`` uses to keep the best chunk and ``patience`` to stop;
- is evaluated on the test split's digits 5-9, images that neither trained the network nor
  chose its checkpoint (:func:`oneshot.training.setup.load_train_and_test`), where
  ``metrics.json`` (``heldout``) also scores the network before training and raw pixels on the
  same 1,000 episodes.

The runs, named by their recipe; each changes one thing from ``best-chunk``, except ``readme``:

- ``readme``: the README recipe with the last weights (the measurement that started the study);
- ``best-chunk``: the best monitored chunk's weights, stopping after 3 chunks without progress;
- ``augment``: with Koch's affine augmentation (``augment_strength`` can widen it);
- ``nt-xent``: the NT-Xent loss at the temperature chosen on Omniglot
  (:data:`oneshot.experiments.losses.CHOSEN`);
- ``omniglot-init``: starts from the ``omniglot-best`` network (trained on Omniglot's background
  alphabets only) at its 35x35 input (the digits are resized), and fine-tunes it at a rate
  ten times lower (1e-4 to 1e-5). Its "untrained" baseline is that Omniglot network.

The runs share the data seed (``--seed``). For 3 seeds, from the repository root (the
``omniglot-init`` file is a relative path)::

    for S in 0 1 2; do
      python -m oneshot.train --experiment mnist-few-class --seed $S --threads 1 \\
        --out results/mnist-few-class/seed$S
    done
"""

from __future__ import annotations

import dataclasses

from oneshot.experiments.losses import CHOSEN, FAMILY
from oneshot.experiments.your_data import (
    MNIST_DIGIT_SIZE,
    PATIENCE,
    RECIPE_EVAL,
    RECIPE_STEPS,
    recommended_run,
)
from oneshot.training.configs import OnlineRun
from oneshot.training.experiment import Experiment

TRAIN_DIGITS = (0, 1, 2, 3, 4)
HELD_OUT_DIGITS = (5, 6, 7, 8, 9)
#: the omniglot-best network (conv4 width 64, 64-d, 35x35, Omniglot background alphabets only)
OMNIGLOT_MODEL = "results/omniglot-best/seed0/batch-hard/model.keras"
OMNIGLOT_IMAGE_SIZE = 35
FINE_TUNE_LEARNING_RATE = 1e-4  # cosine decay to the recipe's 1e-5
FEW_CLASS_EVAL = dataclasses.replace(RECIPE_EVAL, ways=(5,), cmc_classes=5)


def few_class_run(name: str, image_size: int = 28, **changes) -> OnlineRun:
    """The study's base recipe (the README's: no augmentation, no early stopping) on MNIST
    digits 0-4, held-out digits 5-9, with ``changes``."""
    run = recommended_run(
        [MNIST_DIGIT_SIZE] * len(TRAIN_DIGITS),
        image_size=image_size,
        validation_classes=HELD_OUT_DIGITS,
        dataset="mnist",
        steps=RECIPE_STEPS,
        augment=False,
        patience=0,
        keep_start=False,  # the study predates it
    )
    return dataclasses.replace(run, name=name, **changes)


def few_class_runs() -> tuple[OnlineRun, ...]:
    """The recipes of ``mnist-few-class`` (see the module docstring)."""
    nt_xent = FAMILY["nt-xent"]
    best = dict(keep_best=True, patience=PATIENCE)
    return (
        few_class_run("readme", keep_best=False),
        few_class_run("best-chunk", **best),
        few_class_run("augment", augment=True, **best),
        few_class_run("nt-xent", loss=nt_xent.make(CHOSEN[nt_xent.name]), **best),
        few_class_run(
            "omniglot-init",
            image_size=OMNIGLOT_IMAGE_SIZE,
            init_from=OMNIGLOT_MODEL,
            learning_rate=FINE_TUNE_LEARNING_RATE,
            **best,
        ),
    )


def mnist_few_class(paper: bool) -> Experiment:
    """Recipes for few training classes: MNIST digits 0-4, tested on the test split's 5-9."""
    return Experiment(
        "mnist-few-class",
        "Few-class recipes: train on MNIST digits 0-4, keep by training 5-9, test on test 5-9 "
        "vs the untrained network and raw pixels.",
        few_class_runs(),
        FEW_CLASS_EVAL,
    )
