"""The loss-family comparison on one-shot Omniglot (``omniglot-losses``), the way Musgrave et al.
2020 ("A metric learning reality check", arXiv 2003.08505) compared losses for retrieval.

Everything but the loss is fixed: the conv4 of ``omniglot-best`` at 35x35 (64-d, unit norm),
P x K = 32 x 4 batches of the background set with its rotations as new classes, Koch's affine
augmentation, Adam 1e-3 with a cosine decay to 1e-5, and one budget of steps per run.

1. ``omniglot-losses-tuning``: each loss's :attr:`LossFamily.grid` (three values of one
   hyperparameter around the paper's default, the same grid size for every loss), trained for
   ``TUNING_STEPS`` on the background set without 6 held-out background alphabets, and scored
   by 20-way 1-shot within-alphabet accuracy on those alphabets. The evaluation set is never
   loaded for a choice.
2. ``omniglot-losses``: each loss with its chosen value (:data:`CHOSEN`, filled in from the
   committed tuning runs; a test checks that it is their argmax), ``COMPARISON_STEPS`` steps,
   3 seeds, every protocol of ``omniglot-best`` on the evaluation set.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras

from oneshot.distances import LpDistance
from oneshot.evaluation.report import task_name
from oneshot.experiments.online import BEST_EVAL, batch_hard_loss, best_omniglot_run
from oneshot.losses import (
    ArcFaceLoss,
    CircleLoss,
    ContrastiveLoss,
    CosFaceLoss,
    GeneralizedLiftedStructureLoss,
    LiftedStructureLoss,
    MarginLoss,
    MultiSimilarityLoss,
    NormalizedSoftmaxLoss,
    NPairsLoss,
    NTXentLoss,
    ProxyAnchorLoss,
    ProxyNCALoss,
    QuadrupletLoss,
    SoftTripleLoss,
    SphereFaceLoss,
    SubCenterArcFaceLoss,
    SupConLoss,
)
from oneshot.miners import DistanceWeightedMiner, MultiSimilarityMiner
from oneshot.runs import METRICS_FILE, headline_metrics
from oneshot.training.configs import OnlineRun
from oneshot.training.experiment import Experiment

TUNING_STEPS = 500  # ~2 min per run on one core of the 2-core machine
COMPARISON_STEPS = 1000  # ~4 min per run on one core: 3 seeds x 19 losses fit a few hours
EMBEDDING_DIM = 64
#: the hyperparameter every loss family without one of its own is tuned on
LEARNING_RATE = "learning_rate"


@dataclass(frozen=True)
class LossFamily:
    """One row of the comparison: how to build the loss for a value of its tuned parameter.

    Attributes:
        name: the run name, e.g. ``"arcface"``.
        family: ``"tuple"``, ``"pair"`` or ``"classification"`` (class weights / proxies).
        parameter: the tuned hyperparameter, named as in the paper (or ``learning_rate``).
        grid: its three values, around the paper's default (the middle one unless
            ``paper_default`` says otherwise).
        make: value -> the loss (``num_classes=None``: set from the training labels).
        overrides: run fields that differ from the common recipe (e.g. SphereFace's
            unnormalised embeddings, which its multiplicative margin needs).
        paper_default: the paper's value when it is not the grid's middle one.
    """

    name: str
    family: str
    parameter: str
    grid: tuple[float, float, float]
    make: Callable[[float], keras.losses.Loss]
    overrides: dict[str, Any] = field(default_factory=dict)
    paper_default: float | None = None

    @property
    def default(self) -> float:
        """The paper's value: the grid's middle one unless given."""
        return self.grid[1] if self.paper_default is None else self.paper_default

    def run(self, value: float, name: str, **fields: Any) -> OnlineRun:
        """The run of this loss with ``parameter = value``."""
        values = {**self.overrides, **fields}
        if self.parameter == LEARNING_RATE:
            values["learning_rate"] = value
            return best_omniglot_run(name, self.make(self.default), **values)
        return best_omniglot_run(name, self.make(value), **values)


def _quadruplet(alpha1: float) -> QuadrupletLoss:
    return QuadrupletLoss(
        alpha1=alpha1, alpha2=alpha1 / 2, adaptive_margin=False, distance=LpDistance()
    )


def _unit_sphere_margin(beta: float) -> MarginLoss:
    return MarginLoss(0.2, beta, miner=DistanceWeightedMiner(EMBEDDING_DIM))


FAMILIES: tuple[LossFamily, ...] = (
    # tuple losses: the rows of the existing experiments
    LossFamily("batch-hard", "tuple", "margin", (0.1, 0.2, 0.4), batch_hard_loss),
    LossFamily(
        "contrastive",
        "tuple",
        "neg_margin",
        (0.5, 1.0, 1.5),
        lambda m: ContrastiveLoss(0.0, m, distance=LpDistance()),
    ),  # fmt: skip
    LossFamily("quadruplet", "tuple", "alpha1", (0.1, 0.2, 0.4), _quadruplet),
    # pair- and batch-based
    LossFamily("lifted", "pair", "margin", (0.5, 1.0, 2.0), LiftedStructureLoss),
    LossFamily(
        "generalized-lifted", "pair", "margin", (0.5, 1.0, 2.0), GeneralizedLiftedStructureLoss
    ),
    LossFamily(
        "multi-similarity",
        "pair",
        "beta",
        (25.0, 50.0, 100.0),
        lambda b: MultiSimilarityLoss(2.0, b, 0.5, miner=MultiSimilarityMiner(0.1)),
    ),  # fmt: skip
    LossFamily("margin", "pair", "beta", (0.8, 1.2, 1.6), _unit_sphere_margin),
    LossFamily("n-pairs", "pair", LEARNING_RATE, (3e-4, 1e-3, 3e-3), lambda _: NPairsLoss()),
    LossFamily("nt-xent", "pair", "temperature", (0.1, 0.5, 1.0), NTXentLoss),
    LossFamily("supcon", "pair", "temperature", (0.05, 0.1, 0.2), SupConLoss),
    LossFamily(
        "circle", "pair", "gamma", (32.0, 80.0, 256.0), lambda g: CircleLoss(gamma=g, margin=0.4)
    ),
    # classification with class weights / proxies
    LossFamily(
        "normalized-softmax",
        "classification",
        "temperature",
        (0.025, 0.05, 0.1),
        lambda t: NormalizedSoftmaxLoss(None, temperature=t),
    ),  # fmt: skip
    LossFamily(
        "cosface",
        "classification",
        "margin",
        (0.2, 0.35, 0.5),
        lambda m: CosFaceLoss(None, margin=m),
    ),  # fmt: skip
    LossFamily(
        "arcface",
        "classification",
        "margin",
        (0.3, 0.5, 0.7),
        lambda m: ArcFaceLoss(None, margin=m),
    ),  # fmt: skip
    LossFamily(
        "sub-center-arcface",
        "classification",
        "margin",
        (0.3, 0.5, 0.7),
        lambda m: SubCenterArcFaceLoss(None, margin=m),
    ),  # fmt: skip
    LossFamily(
        "sphereface",
        "classification",
        "margin",
        (2, 3, 4),
        lambda m: SphereFaceLoss(None, margin=int(m)),
        overrides={"network_kwargs": {"width": 64, "l2_normalize": False}},
        paper_default=4,
    ),  # fmt: skip
    LossFamily(
        "proxy-anchor",
        "classification",
        "alpha",
        (16.0, 32.0, 64.0),
        lambda a: ProxyAnchorLoss(None, alpha=a),
    ),  # fmt: skip
    LossFamily(
        "proxy-nca",
        "classification",
        "scale",
        (1.0, 3.0, 9.0),
        lambda s: ProxyNCALoss(None, scale=s),
        paper_default=1.0,  # the paper has no scale; ProxyNCA++ uses about 9
    ),  # fmt: skip
    LossFamily(
        "soft-triple",
        "classification",
        "la",
        (10.0, 20.0, 40.0),
        lambda la: SoftTripleLoss(None, la=la),
    ),  # fmt: skip
)
FAMILY = {f.name: f for f in FAMILIES}

#: the value of each loss's parameter chosen on the validation alphabets (the best
#: ``omniglot-losses-tuning`` run); a loss not listed here is trained with its paper default
CHOSEN: dict[str, float] = {
    "batch-hard": 0.1,
    "contrastive": 1.5,
    "quadruplet": 0.2,
    "lifted": 1.0,
    "generalized-lifted": 2.0,
    "multi-similarity": 25.0,
    "margin": 0.8,
    "n-pairs": 0.001,
    "nt-xent": 0.1,
    "supcon": 0.1,
    "circle": 80.0,
    "normalized-softmax": 0.1,
    "cosface": 0.35,
    "arcface": 0.5,
    "sub-center-arcface": 0.3,
    "sphereface": 2.0,
    "proxy-anchor": 16.0,
    "proxy-nca": 1.0,
    "soft-triple": 10.0,
}

TUNING_EVAL = dataclasses.replace(BEST_EVAL, lake_runs=False, mnist_transfer=False)


def tuning_run_name(family: LossFamily, value: float) -> str:
    """``"arcface-margin=0.3"``: the tuning run of one grid value."""
    return f"{family.name}-{family.parameter}={value:g}"


def omniglot_losses_tuning(paper: bool) -> Experiment:
    """Every loss's grid on 6 held-out background alphabets (``TUNING_STEPS`` each)."""
    runs = tuple(
        family.run(
            value,
            tuning_run_name(family, value),
            validation_alphabets=6,
            steps=TUNING_STEPS,
            log_every=100,
            monitor_episodes=0,
        )  # fmt: skip
        for family in FAMILIES
        for value in family.grid
    )
    return Experiment(
        "omniglot-losses-tuning",
        f"Loss comparison, step 1: {len(FAMILIES)} losses x 3 values on 6 held-out background "
        "alphabets.",
        runs,
        TUNING_EVAL,
    )


def omniglot_losses(paper: bool) -> Experiment:
    """Every loss with its chosen value, same network, data, augmentation and budget."""
    runs = tuple(
        family.run(
            CHOSEN.get(family.name, family.default),
            family.name,
            steps=COMPARISON_STEPS,
            log_every=100,
        )  # fmt: skip
        for family in FAMILIES
    )
    return Experiment(
        "omniglot-losses",
        f"Loss comparison, step 2: {len(FAMILIES)} losses with their tuned value, "
        f"{COMPARISON_STEPS} steps each, evaluation alphabets.",
        runs,
        BEST_EVAL,
    )


SELECTION_TASK = "20-way 1-shot within-alphabet"  # on the held-out background alphabets


def tuning_scores(tuning_dir: str | Path) -> dict[str, dict[float, float]]:
    """Validation accuracy (:data:`SELECTION_TASK`) of every finished tuning run under
    ``tuning_dir`` (``results/omniglot-losses-tuning``): loss name -> {value: accuracy}."""

    scores: dict[str, dict[float, float]] = {}
    for family in FAMILIES:
        for value in family.grid:
            path = Path(tuning_dir) / tuning_run_name(family, value) / METRICS_FILE
            if path.exists():
                report = json.loads(path.read_text())
                accuracy = headline_metrics(report)[SELECTION_TASK]
                scores.setdefault(family.name, {})[value] = accuracy
    return scores


def tuning_table(tuning_dir: str | Path) -> str:
    """Markdown table of the tuning runs under ``tuning_dir``: per loss, each grid value's
    validation accuracy (:data:`SELECTION_TASK`, percent, with its 95% CI over episodes) and
    the value :data:`CHOSEN` keeps (``python -m oneshot.compare --tuning DIR`` prints it)."""

    rows = [
        f"| loss | family | value: validation {SELECTION_TASK} accuracy (%) | chosen |",
        "|---|---|---|---|",
    ]
    for family in FAMILIES:
        cells = []
        for value in family.grid:
            path = Path(tuning_dir) / tuning_run_name(family, value) / METRICS_FILE
            if not path.exists():
                cells.append(f"{family.parameter}={value:g}: -")
                continue
            report = json.loads(path.read_text())
            task = next(
                t for t in report["nway"] if task_name(t, report["dataset"]) == SELECTION_TASK
            )
            cells.append(
                f"{family.parameter}={value:g}: {100 * task['accuracy']:.1f} ± {100 * task['ci95']:.1f}"
            )
        chosen = f"{CHOSEN[family.name]:g}" if family.name in CHOSEN else "-"
        rows.append(f"| `{family.name}` | {family.family} | {'; '.join(cells)} | {chosen} |")
    return "\n".join(rows)


def choose(scores: dict[str, dict[float, float]]) -> dict[str, float]:
    """The best value of every loss whose whole grid was tuned (ties: the paper's value, then
    the smaller one)."""
    chosen = {}
    for name, by_value in scores.items():
        family = FAMILY[name]
        if set(by_value) != set(family.grid):
            continue
        best = max(by_value.values())
        ties = [v for v in family.grid if by_value[v] == best]
        chosen[name] = family.default if family.default in ties else min(ties)
    return chosen


def family_of(run_name: str) -> str | None:
    """The family (tuple, pair, classification) of a comparison run, None for other names."""
    family = FAMILY.get(run_name)
    return family.family if family else None
