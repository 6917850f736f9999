"""The in-batch losses of oneshot 0.1, as thin aliases of the composable ones.

They keep their constructor arguments and saved configs, so models saved with them load and
train with the same results: ``OnlineTripletLoss("semi_hard")`` is the previous semi-hard rule
(``SemiHardMiner(fallback="hardest")``), not the TensorFlow Addons rule that
``SemiHardMiner()`` now follows. New code should use the classes they map to.
"""

from __future__ import annotations

from typing import Any

import keras

from oneshot.checks import check_choice
from oneshot.losses.base import check_margin
from oneshot.losses.contrastive import ContrastiveLoss
from oneshot.losses.quadruplet import QuadrupletLoss
from oneshot.losses.triplet import TripletMarginLoss
from oneshot.miners import BatchAllMiner, BatchHardMiner, HardPairMiner, SemiHardMiner
from oneshot.pieces import register
from oneshot.reducers import MeanNonZeroReducer, MeanReducer

TRIPLET_MINERS = ("batch_hard", "batch_all", "semi_hard")
PAIR_MINERS = ("hard_pairs", "all")
_DROP = ("miner", "reducer")


def _base(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k in ("name", "reduction", "dtype")}


@register
class OnlineTripletLoss(TripletMarginLoss):
    """``TripletMarginLoss`` with the miner named by a string: "batch_hard" (mean over
    anchors), "batch_all" (mean over active triplets), "semi_hard" (previous oneshot rule)."""

    def __init__(self, miner: str = "batch_hard", margin: float = 0.2, distance: Any = "euclidean",
                 soft_margin: bool = False, name: str = "online_triplet_loss",
                 reduction: str = "sum_over_batch_size", **kwargs) -> None:  # fmt: skip
        check_choice("miner", miner, TRIPLET_MINERS)
        check_margin(margin)
        if soft_margin and miner == "batch_all":
            raise ValueError(
                "Invalid arguments: `soft_margin=True` has no active set for miner='batch_all'. "
                "Use miner='batch_hard' or 'semi_hard' with soft_margin, or soft_margin=False."
            )
        pieces = {
            "batch_hard": (BatchHardMiner(), MeanReducer()),
            "batch_all": (BatchAllMiner(margin=margin), MeanNonZeroReducer()),
            "semi_hard": (SemiHardMiner(margin=margin, fallback="hardest"), MeanReducer()),
        }[miner]
        super().__init__(
            margin, soft_margin, distance, *pieces, name, reduction, kwargs.get("dtype")
        )
        self.miner_name = miner

    def get_config(self) -> dict[str, Any]:
        config = _base(super().get_config())
        return {**config, "miner": self.miner_name, "margin": self.margin,
                "distance": keras.saving.serialize_keras_object(self.distance),
                "soft_margin": self.soft_margin}  # fmt: skip


@register
class OnlineQuadrupletLoss(QuadrupletLoss):
    """``QuadrupletLoss`` under its previous argument names (margin1, margin2, adaptive)."""

    def __init__(self, margin1: float = 1.0, margin2: float = 0.5, adaptive: bool = True,
                 w1: float = 1.0, w2: float = 0.5, distance: Any = "euclidean",
                 name: str = "online_quadruplet_loss", reduction: str = "sum_over_batch_size",
                 **kwargs) -> None:  # fmt: skip
        check_margin(margin1, "margin1")  # name the arguments the caller used
        check_margin(margin2, "margin2")
        super().__init__(margin1, margin2, adaptive, w1, w2, distance, None, name, reduction,
                         kwargs.get("dtype"))  # fmt: skip

    def get_config(self) -> dict[str, Any]:
        return {**_base(super().get_config()), "margin1": self.alpha1, "margin2": self.alpha2,
                "adaptive": self.adaptive_margin, "w1": self.w1, "w2": self.w2,
                "distance": keras.saving.serialize_keras_object(self.distance)}  # fmt: skip


@register
class OnlineContrastiveLoss(ContrastiveLoss):
    """``ContrastiveLoss(pos_margin=0, neg_margin=margin)`` on "hard_pairs" (positives with
    d > 0, negatives inside the margin) or "all" pairs."""

    def __init__(self, miner: str = "hard_pairs", margin: float = 1.0, distance: Any = "euclidean",
                 name: str = "online_contrastive_loss", reduction: str = "sum_over_batch_size",
                 **kwargs) -> None:  # fmt: skip
        check_choice("miner", miner, PAIR_MINERS)
        check_margin(margin)
        pairs = HardPairMiner(0.0, margin) if miner == "hard_pairs" else None
        super().__init__(0.0, margin, distance=distance, miner=pairs, name=name,
                         reduction=reduction, dtype=kwargs.get("dtype"))  # fmt: skip
        self.miner_name = miner

    def get_config(self) -> dict[str, Any]:
        return {**_base(super().get_config()), "miner": self.miner_name, "margin": self.neg_margin,
                "distance": keras.saving.serialize_keras_object(self.distance)}  # fmt: skip
