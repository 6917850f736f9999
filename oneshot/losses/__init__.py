"""Losses: each a pure function on whole batches plus a serializable Keras class.

In-batch (online) losses take integer labels as ``y_true`` and embeddings as ``y_pred``, with a
distance, a miner and a reducer as arguments (``oneshot.losses.base``): :class:`TripletMarginLoss`,
:class:`ContrastiveLoss`, :class:`QuadrupletLoss`. Offline models use the loss layers
(:class:`TripletLossLayer`, :class:`QuadrupletLossLayer`) and the siamese pair loss
(:class:`PairContrastiveLoss`), built on the same pure functions.

Pair- and batch-based in-batch losses: :class:`LiftedStructureLoss`,
:class:`GeneralizedLiftedStructureLoss`, :class:`MultiSimilarityLoss`, :class:`MarginLoss`,
:class:`NPairsLoss`, :class:`NTXentLoss`, :class:`SupConLoss`, and :data:`CircleLoss`
(``keras.losses.Circle`` itself). Label convention for pairs everywhere: ``y = 1`` means the
SAME class.
"""

from oneshot.losses.base import MetricLoss
from oneshot.losses.circle import CircleLoss
from oneshot.losses.contrastive import ContrastiveLoss, PairContrastiveLoss, contrastive_loss
from oneshot.losses.legacy import OnlineContrastiveLoss, OnlineQuadrupletLoss, OnlineTripletLoss
from oneshot.losses.lifted import GeneralizedLiftedStructureLoss, LiftedStructureLoss
from oneshot.losses.margin import MarginLoss
from oneshot.losses.multi_similarity import MultiSimilarityLoss
from oneshot.losses.npairs import NPairsLoss
from oneshot.losses.ntxent import NTXentLoss
from oneshot.losses.quadruplet import (
    QuadrupletLoss,
    QuadrupletLossLayer,
    check_quadruplet_margins,
    quadruplet_loss,
    tuple_adaptive_margins,
)
from oneshot.losses.supcon import SupConLoss
from oneshot.losses.triplet import (
    TripletLossLayer,
    TripletMarginLoss,
    active_triplet_fraction,
    triplet_loss,
    triplet_loss_from_distances,
)

__all__ = [
    "CircleLoss",
    "ContrastiveLoss",
    "GeneralizedLiftedStructureLoss",
    "LiftedStructureLoss",
    "MarginLoss",
    "MetricLoss",
    "MultiSimilarityLoss",
    "NPairsLoss",
    "NTXentLoss",
    "OnlineContrastiveLoss",
    "OnlineQuadrupletLoss",
    "OnlineTripletLoss",
    "PairContrastiveLoss",
    "QuadrupletLoss",
    "QuadrupletLossLayer",
    "SupConLoss",
    "TripletLossLayer",
    "TripletMarginLoss",
    "active_triplet_fraction",
    "check_quadruplet_margins",
    "contrastive_loss",
    "quadruplet_loss",
    "triplet_loss",
    "triplet_loss_from_distances",
    "tuple_adaptive_margins",
]
