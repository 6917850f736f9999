"""What an experiment is: run configs trained side by side, and the protocols that evaluate them."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from oneshot.training.config_checks import refuse
from oneshot.training.configs import RunConfig


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
