"""Accuracy round 2 (issue 18): levers measured on held-out background alphabets first.

Every experiment here trains the ``omniglot-tuning`` recipe (``rotated``: the best recipe of
:func:`oneshot.experiments.online.best_omniglot_run` on 2,500 steps, 6 background alphabets
held out, the evaluation set untouched) with one lever changed, one run per setting, so that
``python -m oneshot.compare --seeds`` pairs them seed by seed:

- ``omniglot-precision``: ``float32`` against ``mixed-bfloat16`` (the embedding network
  computes in bfloat16 while training; saved and evaluated in float32). Measured here: 7% less
  training time in a run, the same accuracy (``results/omniglot-precision``).
- ``omniglot-loss-lever``: batch-hard triplets against NT-Xent at the temperature the loss
  comparison chose (:data:`oneshot.experiments.losses.CHOSEN`), the loss that beat batch-hard
  there by 2.1 points after 1,000 steps.

For S in 0 1: ``python -m oneshot.train --experiment omniglot-precision --seed S --threads 1
--out results/omniglot-precision/seedS`` (likewise ``omniglot-loss-lever``).
"""

from __future__ import annotations

import dataclasses

from oneshot.experiments.base import Experiment
from oneshot.experiments.losses import CHOSEN, FAMILY
from oneshot.experiments.online import BEST_EVAL, batch_hard_loss, best_omniglot_run

VALIDATION = dict(validation_alphabets=6, steps=2500)  # as omniglot-tuning
VALIDATION_EVAL = dataclasses.replace(BEST_EVAL, lake_runs=False, mnist_transfer=False)


def omniglot_precision(paper: bool) -> Experiment:
    """float32 against mixed bfloat16 on the validation alphabets (same steps)."""
    return Experiment(
        "omniglot-precision",
        "Mixed bfloat16 vs float32 training of the best recipe on 6 held-out background "
        "alphabets (2,500 steps each).",
        (
            best_omniglot_run("float32", batch_hard_loss(), **VALIDATION),
            best_omniglot_run(
                "mixed-bfloat16", batch_hard_loss(), precision="mixed_bfloat16", **VALIDATION
            ),  # fmt: skip
        ),
        VALIDATION_EVAL,
    )


def omniglot_loss_lever(paper: bool) -> Experiment:
    """Batch-hard triplets against NT-Xent on the validation alphabets (same recipe and steps)."""
    nt_xent = FAMILY["nt-xent"]
    return Experiment(
        "omniglot-loss-lever",
        "NT-Xent vs batch-hard triplets in the best recipe on 6 held-out background alphabets "
        "(2,500 steps each).",
        (
            best_omniglot_run("batch-hard", batch_hard_loss(), **VALIDATION),
            best_omniglot_run("nt-xent", nt_xent.make(CHOSEN[nt_xent.name]), **VALIDATION),
        ),
        VALIDATION_EVAL,
    )
