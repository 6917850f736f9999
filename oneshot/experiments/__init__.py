"""Named experiments: small declarative configs that `python -m oneshot.train` runs.

An :class:`Experiment` is one or more :class:`RunConfig` trained side by side (e.g. triplet vs
quadruplet) and evaluated with the same protocols. Each experiment has a CPU-sized default
(minutes on 2 cores) and a ``paper=True`` variant with the published networks, input sizes and
iteration counts (see ``docs/reference.md``).

Faults of the original code are fixed by default (n2's class excluded from both a and n,
reachable margins for the learned metric, consistent g in mining and loss, class-balanced ROC);
``original_quadruplet_sampling=True`` reproduces the original n2 draw for comparison.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from oneshot.experiments.cross_batch import omniglot_xbm, omniglot_xbm_tuning
from oneshot.experiments.few_class import mnist_few_class
from oneshot.experiments.levers import (
    omniglot_alphabet_batches,
    omniglot_best_30min,
    omniglot_frontier,
    omniglot_loss_lever,
    omniglot_precision,
)
from oneshot.experiments.losses import omniglot_losses, omniglot_losses_tuning
from oneshot.experiments.online import (
    batch_hard_loss,
    mnist_best,
    omniglot_best,
    omniglot_best_quadruplet,
    omniglot_online,
    omniglot_tuning,
)
from oneshot.experiments.reproduction import (
    mnist_siamese_contrastive,
    mnist_triplet,
    mnist_triplet_vs_quadruplet,
    omniglot_triplet_vs_quadruplet,
)
from oneshot.experiments.your_data import mnist_heldout
from oneshot.training.configs import (
    CONFIG_TYPES,
    MODEL_KINDS,
    SAMPLERS,
    OnlineRun,
    QuadrupletRun,
    RunConfig,
    SiameseRun,
    TripletRun,
    from_legacy_dict,
)
from oneshot.training.experiment import EvalConfig, Experiment
from oneshot.training.files import MODEL_FILE

__all__ = [  # the typed run configs live in oneshot.training.configs; re-exported here
    "CONFIG_TYPES", "MODEL_KINDS", "OnlineRun", "QuadrupletRun", "RunConfig", "SAMPLERS",
    "SiameseRun", "TripletRun", "from_legacy_dict", "EvalConfig", "Experiment", "EXPERIMENTS",
    "get_experiment", "describe_experiments", "batch_hard_loss", "write_catalogue",
]  # fmt: skip


EXPERIMENTS: dict[str, Callable[[bool], Experiment]] = {
    "mnist-triplet": mnist_triplet,
    "mnist-triplet-vs-quadruplet": mnist_triplet_vs_quadruplet,
    "omniglot-triplet-vs-quadruplet": omniglot_triplet_vs_quadruplet,
    "mnist-siamese-contrastive": mnist_siamese_contrastive,
    "omniglot-batch-hard": omniglot_online(
        "batch_hard", "Online batch-hard triplet mining (Hermans 2017) on P x K Omniglot batches."
    ),
    "omniglot-semi-hard": omniglot_online(
        "semi_hard", "Online semi-hard triplet mining (FaceNet) on P x K Omniglot batches."
    ),
    "omniglot-batch-all": omniglot_online(
        "batch_all", "Online batch-all triplet loss on P x K Omniglot batches."
    ),
    "omniglot-tuning": omniglot_tuning,
    "omniglot-best": omniglot_best,
    "omniglot-best-quadruplet": omniglot_best_quadruplet,
    "mnist-best": mnist_best,
    "mnist-heldout": mnist_heldout,
    "mnist-few-class": mnist_few_class,
    "omniglot-losses-tuning": omniglot_losses_tuning,
    "omniglot-losses": omniglot_losses,
    "omniglot-precision": omniglot_precision,
    "omniglot-loss-lever": omniglot_loss_lever,
    "omniglot-frontier": omniglot_frontier,
    "omniglot-alphabet-batches": omniglot_alphabet_batches,
    "omniglot-best-30min": omniglot_best_30min,
    "omniglot-xbm-tuning": omniglot_xbm_tuning,
    "omniglot-xbm": omniglot_xbm,
}


def get_experiment(name: str, paper: bool = False) -> Experiment:
    """The named experiment, CPU default or (``paper=True``) the published configuration."""
    if name not in EXPERIMENTS:
        raise ValueError(
            f"Invalid value for argument `experiment`. Expected one of {tuple(EXPERIMENTS)}. "
            f"Received: experiment={name!r}"
        )
    return EXPERIMENTS[name](paper)


def how_to_produce(path: Path) -> str:
    """The command that writes ``path`` when it is a run's model under a folder named after an
    experiment (``results/omniglot-best/seed0/batch-hard/model.keras``), else an empty string."""
    parts = path.parts
    for i, name in enumerate(parts[:-2]):
        rest = parts[i + 1 : -1]  # [seedS,] run
        if name not in EXPERIMENTS or path.name != MODEL_FILE or len(rest) not in (1, 2):
            continue
        if len(rest) == 2 and not re.fullmatch(r"seed\d+", rest[0]):
            continue
        runs = [r.name for r in get_experiment(name).runs]
        if rest[-1] not in runs:
            continue
        seed = rest[0][len("seed") :] if len(rest) == 2 else "0"
        only = f" --runs {rest[-1]}" if len(runs) > 1 else ""
        out = Path(*parts[: len(parts) - 2])
        return f"Produce it with: python -m oneshot.train --experiment {name} --seed {seed}{only} --out {out}."
    return ""


CATALOGUE = Path(__file__).with_name("catalogue.json")


def write_catalogue(path: Path = CATALOGUE) -> None:
    """Write every experiment's name and summary to ``catalogue.json``, which
    ``python -m oneshot.train --help`` lists without building the experiments (run after
    adding or renaming one; a test compares the file with the experiments)."""
    catalogue = {name: get_experiment(name).summary for name in EXPERIMENTS}
    path.write_text(json.dumps(catalogue, indent=2) + "\n")


def describe_experiments() -> str:
    """One line per named experiment, for ``--help``."""
    width = max(len(n) for n in EXPERIMENTS)
    return "\n".join(f"  {n:<{width}}  {get_experiment(n).summary}" for n in EXPERIMENTS)
