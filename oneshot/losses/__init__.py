"""Losses: each a pure function on whole batches plus a serializable Keras class.

In-batch (online) losses take integer labels as ``y_true`` and embeddings as ``y_pred``, with a
distance, a miner and a reducer as arguments (``oneshot.losses.base``): :class:`TripletMarginLoss`,
:class:`ContrastiveLoss`, :class:`QuadrupletLoss`. Offline models use the loss layers
(:class:`TripletLossLayer`, :class:`QuadrupletLossLayer`) and the siamese pair loss
(:class:`PairContrastiveLoss`), built on the same pure functions. Classification and proxy
losses (:class:`ArcFaceLoss`, :class:`CosFaceLoss`, :class:`SphereFaceLoss`,
:class:`NormalizedSoftmaxLoss`, :class:`SubCenterArcFaceLoss`, :class:`ProxyAnchorLoss`,
:class:`ProxyNCALoss`, :class:`SoftTripleLoss`) keep the in-batch signature and own their class
weights as a layer, ``loss.head`` (``oneshot.losses.proxies``). Label convention for pairs
everywhere: ``y = 1`` means the SAME class.
"""

from oneshot.losses.base import MetricLoss
from oneshot.losses.contrastive import ContrastiveLoss, PairContrastiveLoss, contrastive_loss
from oneshot.losses.legacy import OnlineContrastiveLoss, OnlineQuadrupletLoss, OnlineTripletLoss
from oneshot.losses.margin_softmax import (
    ArcFaceLoss,
    CosFaceLoss,
    NormalizedSoftmaxLoss,
    SubCenterArcFaceLoss,
)
from oneshot.losses.proxies import ClassProxies, ProxyLoss
from oneshot.losses.proxy_based import ProxyAnchorLoss, ProxyNCALoss, SoftTripleLoss
from oneshot.losses.quadruplet import (
    QuadrupletLoss,
    QuadrupletLossLayer,
    check_quadruplet_margins,
    quadruplet_loss,
    tuple_adaptive_margins,
)
from oneshot.losses.sphereface import SphereFaceLoss, sphereface_lambda
from oneshot.losses.triplet import (
    TripletLossLayer,
    TripletMarginLoss,
    active_triplet_fraction,
    triplet_loss,
    triplet_loss_from_distances,
)

__all__ = [
    "ArcFaceLoss",
    "ClassProxies",
    "ContrastiveLoss",
    "CosFaceLoss",
    "MetricLoss",
    "NormalizedSoftmaxLoss",
    "OnlineContrastiveLoss",
    "OnlineQuadrupletLoss",
    "OnlineTripletLoss",
    "PairContrastiveLoss",
    "ProxyAnchorLoss",
    "ProxyLoss",
    "ProxyNCALoss",
    "QuadrupletLoss",
    "QuadrupletLossLayer",
    "SoftTripleLoss",
    "SphereFaceLoss",
    "SubCenterArcFaceLoss",
    "TripletLossLayer",
    "TripletMarginLoss",
    "active_triplet_fraction",
    "check_quadruplet_margins",
    "contrastive_loss",
    "quadruplet_loss",
    "sphereface_lambda",
    "triplet_loss",
    "triplet_loss_from_distances",
    "tuple_adaptive_margins",
]
