"""Where a run on few classes starts: every available start scored on the held-out classes
before training, and the best one chosen.

A pretrained network helps when its classes resemble the new ones and hurts when they do not
(a network trained on Omniglot's strokes scored 43-44% 5-way 1-shot on the unseen classes of
another 28x28 grey data set, against 59-63% for the same architecture with random weights). So
the choice is made per folder, never imposed: :func:`score_starts` measures each candidate
(the run's own network with the seed's random weights, and each shipped start of
:mod:`oneshot.models.starts` that takes the folder's channels) with the run's own episode
monitor on its held-out classes, and :func:`choose_start` fits the run to the best: its
``init_from``, its image size (a start takes images of its own size) and, for a pretrained
start, the fine-tuning learning rate. The run then keeps its start unless training beats it
(``keep_start``, :meth:`oneshot.training.best.KeepBest.offer_start`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras

from oneshot.data.datasets import LabelledImages
from oneshot.distances import Distance
from oneshot.models.networks import build_network
from oneshot.models.starts import RANDOM, STARTS, starts_for
from oneshot.training.callbacks import run_monitor
from oneshot.training.configs import RunConfig
from oneshot.training.pretrained import pretrained_network

FINE_TUNE_LEARNING_RATE = 1e-4  # from a pretrained start (the few-class study's omniglot-init)


@dataclass(frozen=True)
class StartScore:
    """A candidate start's monitored accuracy on the held-out classes before training."""

    name: str  # RANDOM or a shipped start's name
    image_size: int
    accuracy: float
    key: str  # the monitor's column, e.g. "monitor_5way"


def candidate_names(channels: int) -> list[str]:
    """RANDOM, then each shipped start that takes ``channels`` channels."""
    return [RANDOM, *(start.name for start in starts_for(channels))]


def start_image_size(name: str, config: RunConfig) -> int:
    """The image size a run from start ``name`` takes: the start's own, or the run's."""
    return config.image_size if name == RANDOM else STARTS[name].image_size


def score_starts(
    config: RunConfig,
    held_out_at: Callable[[int], LabelledImages],
    seed: int,
    names: Sequence[str] | None = None,
) -> list[StartScore]:
    """Each start of ``names`` (default: :func:`candidate_names`) scored by the run's episode
    monitor (same episodes, same ways) on the held-out classes, whose images at a given size
    ``held_out_at`` returns. RANDOM is the network ``config`` builds after
    ``keras.utils.set_random_seed(seed)``, as the run itself does."""
    names = candidate_names(config.channels) if names is None else list(names)
    scores = []
    for name in names:
        size = start_image_size(name, config)
        sized = dataclasses.replace(config, image_size=size, init_from=None, init_checksum=None)
        if name == RANDOM:
            keras.utils.set_random_seed(seed)
            network = build_network(
                config.network, sized.input_shape, config.embedding_dim, **config.network_kwargs
            )
        else:
            network = pretrained_network(dataclasses.replace(sized, init_from=name))
        monitor = run_monitor(sized, held_out_at(size), seed)[0]
        monitor.distance = monitor.distance or training_distance(config)
        scores.append(StartScore(name, size, monitor.measure(network), monitor.key))
    return scores


def training_distance(config: RunConfig) -> Distance | str:
    """The distance the run's monitor scores with: its loss's (a bare network records none)."""
    distance = getattr(getattr(config, "loss", None), "distance", None)
    return distance if distance is not None else "euclidean"


def choose_start(
    config: RunConfig, scores: Sequence[StartScore], learning_rate: float | None = None
) -> RunConfig:
    """``config`` fitted to the best of ``scores`` (ties: the earlier, so RANDOM first): its
    ``init_from`` and image size, and for a pretrained start the fine-tuning learning rate
    unless ``learning_rate`` is given."""
    best = max(scores, key=lambda score: score.accuracy)  # max keeps the first of equals
    if best.name == RANDOM:
        changes = {"init_from": None, "init_checksum": None}
    else:
        changes = {
            "init_from": best.name,
            "init_checksum": None,
            "learning_rate": learning_rate or FINE_TUNE_LEARNING_RATE,
        }
    return dataclasses.replace(config, image_size=best.image_size, **changes)


def describe_scores(scores: Sequence[StartScore]) -> str:
    """One line: every start's score, the chosen one marked."""
    best = max(scores, key=lambda score: score.accuracy)
    shown = ", ".join(
        f"{s.name}{' (chosen)' if s is best else ''} {s.accuracy:.1%}" for s in scores
    )
    return f"starts scored on the held-out classes before training ({scores[0].key}): {shown}"
