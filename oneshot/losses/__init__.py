"""Losses: contrastive (pairs), triplet and quadruplet (offline tuples), online (in-batch).

Each loss is a pure function on whole batches plus a serializable Keras class. Label
convention everywhere: ``y = 1`` means the SAME class.
"""

from oneshot.losses.contrastive import ContrastiveLoss, contrastive_loss
from oneshot.losses.online import OnlineContrastiveLoss, OnlineQuadrupletLoss, OnlineTripletLoss
from oneshot.losses.quadruplet import (
    QuadrupletLossLayer,
    adaptive_margins,
    check_quadruplet_margins,
    quadruplet_hardness,
    quadruplet_loss,
)
from oneshot.losses.triplet import TripletLossLayer, triplet_loss, triplet_loss_from_distances

__all__ = [
    "ContrastiveLoss",
    "OnlineContrastiveLoss",
    "OnlineQuadrupletLoss",
    "OnlineTripletLoss",
    "QuadrupletLossLayer",
    "TripletLossLayer",
    "adaptive_margins",
    "check_quadruplet_margins",
    "contrastive_loss",
    "quadruplet_hardness",
    "quadruplet_loss",
    "triplet_loss",
    "triplet_loss_from_distances",
]
