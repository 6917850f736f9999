"""Levers of the Omniglot recipe, measured on held-out background alphabets first.

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

- ``omniglot-frontier``: capacity against steps at a budget of 30 minutes on one
  core: width 64 trained 3.4x longer, width 96 and 128, and 48x48 input, each given the number
  of steps that fills the budget at its measured step time (one thread, 35x35: 0.21 s for
  width 64, 0.38 s for 96, 0.62 s for 128; 0.40 s for width 64 at 48x48). The 2,500-step
  point (8.5 minutes) is ``omniglot-precision``'s ``float32`` run.

- ``omniglot-alphabet-batches``: P x K batches whose 32 classes come from one alphabet
  (``within_alphabet=True``; a rotated alphabet counts as its own), so batch-hard mining meets
  the look-alike characters a within-alphabet episode asks to tell apart. The baseline is
  ``omniglot-precision``'s ``float32`` run (random classes), same recipe and steps; its
  ``w64-within-alphabet-8500`` run puts the lever on the frontier's ``w64-8500``.

- ``omniglot-best-30min``: the evaluation-set side of the frontier. The best recipe found on the
  validation alphabets (``w64-within-alphabet-8500``: width 64, 8,500 steps, batches from one
  alphabet, ~30 one-core minutes) trained on the whole background set and measured with every
  protocol of ``omniglot-best`` (6,000 steps, ~22 minutes), which is its baseline.

For S in 0 1: ``python -m oneshot.train --experiment omniglot-precision --seed S --threads 1
--out results/omniglot-precision/seedS`` (likewise ``omniglot-loss-lever``,
``omniglot-frontier``, ``omniglot-alphabet-batches``; ``--runs NAME`` trains one run);
``omniglot-best-30min`` on seeds 0, 1 and 2, as ``omniglot-best``.
"""

from __future__ import annotations

import dataclasses

from oneshot.experiments.losses import CHOSEN, FAMILY
from oneshot.experiments.online import BEST_EVAL, batch_hard_loss, best_omniglot_run
from oneshot.training.experiment import Experiment

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
            ),
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


FRONTIER_STEPS = {"w64": 8500, "w96": 4800, "w128": 2900, "w64-48px": 4600}
"""Steps that fill 30 minutes of one core (measured step times, see the module docstring)."""
_FRONTIER_SHAPES = {"w64": (64, 35), "w96": (96, 35), "w128": (128, 35), "w64-48px": (64, 48)}
"""(width, input size) of each frontier run."""


def omniglot_frontier(paper: bool) -> Experiment:
    """Width and input size against training steps at 30 one-core minutes (validation alphabets)."""
    runs = tuple(
        best_omniglot_run(
            f"{name}-{steps}",
            batch_hard_loss(),
            steps=steps,
            validation_alphabets=6,
            network_kwargs={"width": _FRONTIER_SHAPES[name][0]},
            image_size=_FRONTIER_SHAPES[name][1],
        )  # fmt: skip
        for name, steps in FRONTIER_STEPS.items()
    )
    return Experiment(
        "omniglot-frontier",
        "Capacity vs steps at one compute budget (8,500 steps of width 64) on 6 held-out "
        "background alphabets: width 64/96/128, 48x48 input.",
        runs,
        VALIDATION_EVAL,
    )


THIRTY_MINUTES = dict(steps=FRONTIER_STEPS["w64"], within_alphabet=True)
"""The levers' recipe: width 64 trained 8,500 steps, batches from one alphabet."""


def omniglot_alphabet_batches(paper: bool) -> Experiment:
    """Batches drawn within one alphabet, on the validation alphabets (tuning steps)."""
    return Experiment(
        "omniglot-alphabet-batches",
        "P x K batches from one alphabet (harder negatives) in the best recipe on 6 held-out "
        "background alphabets (2,500 steps; baseline: omniglot-precision's float32 run).",
        (
            best_omniglot_run(
                "within-alphabet", batch_hard_loss(), within_alphabet=True, **VALIDATION
            ),
            best_omniglot_run(  # the lever on the frontier's 30-minute width-64 run
                "w64-within-alphabet-8500",
                batch_hard_loss(),
                validation_alphabets=6,
                **THIRTY_MINUTES,
            ),
        ),
        VALIDATION_EVAL,
    )


def omniglot_best_30min(paper: bool) -> Experiment:
    """The levers' recipe on the evaluation set (8,500 steps), every protocol."""
    return Experiment(
        "omniglot-best-30min",
        "The levers' best validation recipe (8,500 steps, batches from one alphabet) on the "
        "evaluation set, vs omniglot-best.",
        (best_omniglot_run("w64-within-alphabet-8500", batch_hard_loss(), **THIRTY_MINUTES),),
        BEST_EVAL,
    )
