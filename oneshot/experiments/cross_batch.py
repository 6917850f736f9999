"""Cross-batch memory (XBM) on batch-hard triplets, in the protocol of ``omniglot-losses``.

The batch-hard run of the loss comparison (margin 0.1 as chosen there, the best recipe, P x K
= 32 x 4, 1,000 steps) with its loss wrapped in :class:`oneshot.losses.CrossBatchMemory`: the
hardest positive and negative of each anchor are searched among the last M embeddings
instead of the batch's 127 others.

1. ``omniglot-xbm-tuning``: the memory sizes :data:`MEMORY_SIZES` (4 and 16 batches) on the
   6 held-out background alphabets at ``TUNING_STEPS``, as ``omniglot-losses-tuning``; its
   baseline is that experiment's ``batch-hard-margin=0.1`` run (same recipe and steps). A
   memory of one batch (:data:`DIAGNOSTIC_SIZE`, not a candidate) holds only the batch's own
   stop-gradient copies: batch-hard with the gradient through the anchors alone, which
   separates what the gradient path costs from what the older entries do. And a pair loss
   with the chosen size: multi-similarity (:data:`PAIR_LOSS`, at its comparison value), with
   constant partners and with ``batch_gradient``; its baseline is
   ``multi-similarity-beta=25``.
2. ``omniglot-xbm``: the chosen size (:data:`CHOSEN_MEMORY`) on the evaluation alphabets, 3
   seeds, as pytorch-metric-learning's rule (the queue's rows are constant) and with
   ``batch_gradient`` (the batch's own rows carry the gradient, as in batch-hard), compared
   seed by seed with ``omniglot-losses``'s ``batch-hard`` runs
   (``python -m oneshot.compare --seeds`` over the seed folders of both experiments).
"""

from __future__ import annotations

from oneshot.experiments.losses import (
    CHOSEN,
    COMPARISON_STEPS,
    FAMILY,
    TUNING_EVAL,
    TUNING_STEPS,
)
from oneshot.experiments.online import BEST_EVAL, best_omniglot_run
from oneshot.losses import CrossBatchMemory
from oneshot.training.experiment import Experiment

BATCH = 32 * 4  # the recipe's P x K
MEMORY_SIZES = (4 * BATCH, 16 * BATCH)
#: one batch: the in-batch tuples of batch-hard, gradient through the anchors only
DIAGNOSTIC_SIZE = BATCH
#: the size chosen on the validation alphabets (the better ``omniglot-xbm-tuning`` run)
CHOSEN_MEMORY = 4 * BATCH
#: the pair loss also tried with the memory (validation alphabets only)
PAIR_LOSS = "multi-similarity"


def xbm_batch_hard(memory_size: int, batch_gradient: bool = False) -> CrossBatchMemory:
    """Batch-hard triplets at the comparison's margin, mined against a queue of
    ``memory_size`` embeddings."""
    return xbm_family("batch-hard", memory_size, batch_gradient)


def run_name(memory_size: int, batch_gradient: bool = False, loss: str = "batch-hard") -> str:
    """``"batch-hard-xbm-512"``, ``"batch-hard-xbm-512-batch-gradient"``."""
    return f"{loss}-xbm-{memory_size}" + ("-batch-gradient" if batch_gradient else "")


def xbm_family(name: str, memory_size: int, batch_gradient: bool) -> CrossBatchMemory:
    """The loss of ``omniglot-losses``'s run ``name`` at its chosen value, with a memory."""
    loss = FAMILY[name].make(CHOSEN[name])
    return CrossBatchMemory(loss, memory_size, batch_gradient=batch_gradient)


def omniglot_xbm_tuning(paper: bool) -> Experiment:
    """Each memory size on 6 held-out background alphabets (``TUNING_STEPS`` each), and the
    pair loss at the chosen size."""
    validation = dict(validation_alphabets=6, steps=TUNING_STEPS, log_every=100, monitor_episodes=0)
    sizes = tuple(
        best_omniglot_run(run_name(size), xbm_batch_hard(size), **validation)
        for size in (*MEMORY_SIZES, DIAGNOSTIC_SIZE)
    )
    pairs = tuple(
        best_omniglot_run(
            run_name(CHOSEN_MEMORY, batch_gradient, PAIR_LOSS),
            xbm_family(PAIR_LOSS, CHOSEN_MEMORY, batch_gradient),
            **validation,
        )
        for batch_gradient in (False, True)
    )
    return Experiment(
        "omniglot-xbm-tuning",
        f"Cross-batch memory on batch-hard triplets: memory sizes {MEMORY_SIZES} (and one batch, "
        f"{DIAGNOSTIC_SIZE}), and {PAIR_LOSS} with {CHOSEN_MEMORY}, on 6 held-out background "
        "alphabets.",
        sizes + pairs,
        TUNING_EVAL,
    )


def omniglot_xbm(paper: bool) -> Experiment:
    """Batch-hard + XBM at the chosen size, as ``omniglot-losses``'s batch-hard run: with
    constant partners (pytorch-metric-learning's rule), and with the batch's own partners
    carrying the gradient (``batch_gradient``)."""
    runs = tuple(
        best_omniglot_run(
            run_name(CHOSEN_MEMORY, batch_gradient),
            xbm_batch_hard(CHOSEN_MEMORY, batch_gradient),
            steps=COMPARISON_STEPS,
            log_every=100,
        )
        for batch_gradient in (False, True)
    )
    return Experiment(
        "omniglot-xbm",
        f"Cross-batch memory ({CHOSEN_MEMORY} embeddings) on batch-hard triplets, "
        f"{COMPARISON_STEPS} steps, evaluation alphabets (baseline: omniglot-losses batch-hard).",
        runs,
        BEST_EVAL,
    )
