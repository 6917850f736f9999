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

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras

from oneshot.distances import LpDistance
from oneshot.losses import QuadrupletLoss, TripletMarginLoss
from oneshot.miners import BatchAllMiner, BatchHardMiner, SemiHardMiner
from oneshot.reducers import MeanNonZeroReducer, MeanReducer
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
    refuse,
)

__all__ = [  # the typed run configs live in oneshot.training.configs; re-exported here
    "CONFIG_TYPES", "MODEL_KINDS", "OnlineRun", "QuadrupletRun", "RunConfig", "SAMPLERS",
    "SiameseRun", "TripletRun", "from_legacy_dict", "EvalConfig", "Experiment", "EXPERIMENTS",
    "get_experiment", "describe_experiments", "batch_hard_loss",
]  # fmt: skip


@dataclass(frozen=True)
class EvalConfig:
    """Which held-out protocols to report after training."""

    episodes: int = 1000
    ways: tuple[int, ...] = (5, 10, 20)
    verification_pairs: int = 20000
    cmc_classes: int = 400
    lake_runs: bool = True
    first_n_images: int = 3000
    mnist_transfer: bool = False  # Omniglot runs: also 10-way 1-shot on MNIST (Koch's test)

    def __post_init__(self) -> None:
        if self.episodes < 1:
            refuse("episodes", self.episodes, "a positive integer")
        if not self.ways or min(self.ways) < 2:
            refuse("ways", self.ways, "N-way tasks with N >= 2")
        for name in ("verification_pairs", "cmc_classes", "first_n_images"):
            if getattr(self, name) < 2:
                refuse(name, getattr(self, name), "an integer >= 2")


@dataclass(frozen=True)
class Experiment:
    name: str
    summary: str
    runs: tuple[RunConfig, ...]
    evaluation: EvalConfig = EvalConfig()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "summary": self.summary,
            "runs": [r.to_dict() for r in self.runs],
            "evaluation": dataclasses.asdict(self.evaluation),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


# ---------------------------------------------------------------------------------------------
# The named experiments. Each builder returns the CPU default, or the paper configuration.
# ---------------------------------------------------------------------------------------------


def _mnist_triplet(paper: bool) -> Experiment:
    """Experiment A: triplet loss (margin 0.2, squared L2) with hard batches (C=200, H=16, R=16).

    CPU default: the compact conv4 network (width 32, embedding 10); ``paper``: Eric's
    4.69M-parameter network, Adam 6e-5, 160k iterations.
    """
    base = TripletRun(
        name="triplet",
        dataset="mnist",
        network="eric_mnist" if paper else "conv4",
        embedding_dim=10,
        network_kwargs={"padding": "valid"} if paper else {"width": 32},
        margin=0.2,
        distance="squared_euclidean",
        sampler="hard_batch",
        candidates=200,
        hardest=16,
        random_extra=16,
        steps=160_000 if paper else 1000,
        learning_rate=6e-5 if paper else 1e-3,
        log_every=1000 if paper else 50,
    )
    return Experiment(
        "mnist-triplet",
        "A: triplet loss on MNIST with hard-batch mining (--paper: Eric's 4.69M-parameter net).",
        (base,),
        EvalConfig(ways=(10,), cmc_classes=10, lake_runs=False, first_n_images=3000),
    )


def _triplet_and_quadruplet(
    common: dict[str, Any], paper: bool, triplet_margin: float
) -> tuple[TripletRun, QuadrupletRun]:
    """The two runs of experiments B and C: same data, network, mining and budget.

    Original margins: alpha1 = 1 (triplet and quadruplet), alpha2 = 0.5. With the learned
    metric g in [0, 1] alpha1 = 1 can never be met; the fixed default uses 0.5 / 0.25.
    """
    margins = {"alpha1": 1.0, "alpha2": 0.5} if paper else {"alpha1": 0.5, "alpha2": 0.25}
    return (
        TripletRun(name="triplet", margin=triplet_margin, distance="squared_euclidean", **common),
        QuadrupletRun(name="quadruplet", metric="learned", **margins, **common),
    )


def _mnist_triplet_vs_quadruplet(paper: bool) -> Experiment:
    """Experiment B: triplet (3x) vs quadruplet (4x, learned metric) on MNIST, same init."""
    common = dict(
        dataset="mnist",
        network="eric_mnist" if paper else "conv4",
        embedding_dim=10,
        network_kwargs={"padding": "same"} if paper else {"width": 32},
        sampler="hard_batch",
        candidates=100,
        hardest=16,
        random_extra=16,
        steps=20_000 if paper else 1000,
        learning_rate=6e-5 if paper else 1e-3,
        log_every=500 if paper else 50,
    )
    return Experiment(
        "mnist-triplet-vs-quadruplet",
        "B: triplet vs quadruplet loss (learned metric) on MNIST, side by side from the same init.",
        _triplet_and_quadruplet(common, paper, triplet_margin=1.0),
        EvalConfig(ways=(10,), cmc_classes=10, lake_runs=False, first_n_images=3000),
    )


def _omniglot_triplet_vs_quadruplet(paper: bool) -> Experiment:
    """Experiment C: triplet vs quadruplet on Omniglot (background -> evaluation alphabets)."""
    common = dict(
        dataset="omniglot",
        image_size=105 if paper else 28,
        network="eric_omniglot" if paper else "conv4",
        embedding_dim=20 if paper else 64,
        network_kwargs={} if paper else {"width": 32},
        sampler="hard_batch",
        candidates=100,
        hardest=16,
        random_extra=16,
        steps=200_000 if paper else 1000,
        learning_rate=6e-5 if paper else 1e-3,
        log_every=1000 if paper else 100,
    )
    return Experiment(
        "omniglot-triplet-vs-quadruplet",
        "C: triplet vs quadruplet loss (learned metric) on Omniglot, evaluation alphabets held out.",
        _triplet_and_quadruplet(common, paper, triplet_margin=1.0 if paper else 0.2),
        EvalConfig(ways=(5, 20), cmc_classes=400, lake_runs=True, first_n_images=6000),
    )


def _mnist_siamese_contrastive(paper: bool) -> Experiment:
    run = SiameseRun(
        name="contrastive",
        dataset="mnist",
        network="conv4",
        embedding_dim=32,
        network_kwargs={"width": 32},
        head="contrastive",
        margin=1.0,
        batch_size=64,
        steps=20_000 if paper else 1000,
        learning_rate=1e-3,
        log_every=500 if paper else 50,
    )
    return Experiment(
        "mnist-siamese-contrastive",
        "Siamese network, contrastive loss on L2 distance, balanced random pairs on MNIST.",
        (run,),
        EvalConfig(ways=(10,), cmc_classes=10, lake_runs=False, first_n_images=3000),
    )


def batch_hard_loss(margin: float = 0.2) -> TripletMarginLoss:
    """Batch-hard triplets (Hermans 2017): hardest positive and negative per anchor, mean over
    anchors, Euclidean distance."""
    return TripletMarginLoss(
        margin, distance=LpDistance(), miner=BatchHardMiner(), reducer=MeanReducer()
    )


ONLINE_LOSSES: dict[str, Callable[[], keras.losses.Loss]] = {
    "batch_hard": batch_hard_loss,
    # every triplet still violating the margin, mean over those (Hermans 2017)
    "batch_all": lambda: TripletMarginLoss(
        0.2, distance=LpDistance(), miner=BatchAllMiner(0.2), reducer=MeanNonZeroReducer()
    ),
    # FaceNet semi-hard with the TensorFlow Addons rule, mean over positive pairs
    "semi_hard": lambda: TripletMarginLoss(
        0.2, distance=LpDistance(), miner=SemiHardMiner(0.2), reducer=MeanReducer()
    ),
}


def _omniglot_online(miner: str, summary: str) -> Callable[[bool], Experiment]:
    def build(paper: bool) -> Experiment:
        run = OnlineRun(
            name=miner.replace("_", "-"),
            dataset="omniglot",
            image_size=105 if paper else 28,
            network="conv4",
            embedding_dim=64,
            network_kwargs={"width": 32},
            loss=ONLINE_LOSSES[miner](),
            classes_per_batch=32,
            samples_per_class=4,
            augment=True,
            steps=20_000 if paper else 1000,
            learning_rate=1e-3,
            final_learning_rate=1e-4,
            log_every=500 if paper else 100,
        )
        return Experiment(
            f"omniglot-{miner.replace('_', '-')}",
            summary,
            (run,),
            EvalConfig(ways=(5, 20), cmc_classes=400, lake_runs=True, first_n_images=6000),
        )

    return build


# ---------------------------------------------------------------------------------------------
# Issue 8: past the published numbers on a 2-core CPU. One recipe, chosen on validation alphabets
# of the background set (``omniglot-tuning``), then trained on the whole background set.
# ---------------------------------------------------------------------------------------------

BEST_STEPS = 6000  # ~30 min on one core of the 2-core reference machine at 35x35 (25 s / 100 steps)


def _best_omniglot_run(name: str, loss: keras.losses.Loss, **overrides: Any) -> OnlineRun:
    """The best recipe: conv4 (width 64, BN before the L2 norm), 35x35 input, P x K = 32 x 4,
    Koch's affine augmentation, the 90/180/270-degree rotations as new classes, Adam 1e-3 with
    a cosine decay to 1e-5, and test-time averaging over one-pixel shifts."""
    values: dict[str, Any] = dict(
        name=name,
        dataset="omniglot",
        image_size=35,
        network="conv4",
        embedding_dim=64,
        network_kwargs={"width": 64},
        loss=loss,
        classes_per_batch=32,
        samples_per_class=4,
        augment=True,
        rotated_classes=True,
        steps=BEST_STEPS,
        learning_rate=1e-3,
        final_learning_rate=1e-5,
        log_every=500,
        test_shifts=1,
        monitor_episodes=500,
    )
    values.update(overrides)
    return OnlineRun(**values)


BEST_EVAL = EvalConfig(
    ways=(5, 20), cmc_classes=400, lake_runs=True, first_n_images=6000, mnist_transfer=True
)


def _omniglot_tuning(paper: bool) -> Experiment:
    """Recipe choices compared on 6 held-out background alphabets (evaluation set untouched)."""
    common = dict(validation_alphabets=6, steps=2500)
    return Experiment(
        "omniglot-tuning",
        "Tuning on 6 held-out background alphabets: the best recipe with and without rotated classes.",
        (
            _best_omniglot_run("rotated", batch_hard_loss(), **common),
            _best_omniglot_run("plain", batch_hard_loss(), rotated_classes=False, **common),
        ),
        dataclasses.replace(BEST_EVAL, lake_runs=False, mnist_transfer=False),
    )


def _omniglot_best(paper: bool) -> Experiment:
    """The best one-shot model: batch-hard triplets with the tuned recipe (CPU, ~30 min)."""
    return Experiment(
        "omniglot-best",
        "Best Omniglot model: batch-hard triplets, 35x35, rotated classes, shift averaging (~30 min).",
        (_best_omniglot_run("batch-hard", batch_hard_loss()),),
        BEST_EVAL,
    )


def _omniglot_best_quadruplet(paper: bool) -> Experiment:
    """Quadruplet loss (L2, margin-mined, fixed margins 0.2 / 0.1) on the best recipe's budget."""
    loss = QuadrupletLoss(alpha1=0.2, alpha2=0.1, adaptive_margin=False, distance=LpDistance())
    return Experiment(
        "omniglot-best-quadruplet",
        "Quadruplet loss (L2, margin mining) on the best recipe and budget, vs omniglot-best.",
        (_best_omniglot_run("quadruplet", loss),),
        BEST_EVAL,
    )


def _mnist_best(paper: bool) -> Experiment:
    """MNIST in under 5 minutes: online batch-hard on P x K = 10 x 16 batches, conv4 width 64."""
    run = OnlineRun(
        name="batch-hard",
        dataset="mnist",
        network="conv4",
        embedding_dim=64,
        network_kwargs={"width": 64},
        loss=batch_hard_loss(),
        classes_per_batch=10,
        samples_per_class=16,
        steps=1500,
        learning_rate=1e-3,
        final_learning_rate=1e-5,
        log_every=100,
    )
    return Experiment(
        "mnist-best",
        "Best MNIST model: online batch-hard on P x K = 10 x 16, conv4 width 64 (< 5 min).",
        (run,),
        EvalConfig(ways=(10,), cmc_classes=10, lake_runs=False, first_n_images=3000),
    )


EXPERIMENTS: dict[str, Callable[[bool], Experiment]] = {
    "mnist-triplet": _mnist_triplet,
    "mnist-triplet-vs-quadruplet": _mnist_triplet_vs_quadruplet,
    "omniglot-triplet-vs-quadruplet": _omniglot_triplet_vs_quadruplet,
    "mnist-siamese-contrastive": _mnist_siamese_contrastive,
    "omniglot-batch-hard": _omniglot_online(
        "batch_hard", "Online batch-hard triplet mining (Hermans 2017) on P x K Omniglot batches."
    ),
    "omniglot-semi-hard": _omniglot_online(
        "semi_hard", "Online semi-hard triplet mining (FaceNet) on P x K Omniglot batches."
    ),
    "omniglot-batch-all": _omniglot_online(
        "batch_all", "Online batch-all triplet loss on P x K Omniglot batches."
    ),
    "omniglot-tuning": _omniglot_tuning,
    "omniglot-best": _omniglot_best,
    "omniglot-best-quadruplet": _omniglot_best_quadruplet,
    "mnist-best": _mnist_best,
}


def get_experiment(name: str, paper: bool = False) -> Experiment:
    """The named experiment, CPU default or (``paper=True``) the published configuration."""
    if name not in EXPERIMENTS:
        raise ValueError(
            f"Invalid value for argument `experiment`. Expected one of {tuple(EXPERIMENTS)}. "
            f"Received: experiment={name!r}"
        )
    return EXPERIMENTS[name](paper)


def describe_experiments() -> str:
    """One line per named experiment, for ``--help``."""
    width = max(len(n) for n in EXPERIMENTS)
    return "\n".join(f"  {n:<{width}}  {get_experiment(n).summary}" for n in EXPERIMENTS)
