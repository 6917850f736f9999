"""Losses: each a pure function on whole batches plus a serializable Keras class.

In-batch (online) losses take integer labels as ``y_true`` and embeddings as ``y_pred``, with a
distance, a miner and a reducer as arguments (``oneshot.losses.base``). The families:

- tuple losses: :class:`TripletMarginLoss`, :class:`ContrastiveLoss`, :class:`QuadrupletLoss`;
- pair- and batch-based: :class:`LiftedStructureLoss`, :class:`GeneralizedLiftedStructureLoss`,
  :class:`MultiSimilarityLoss`, :class:`MarginLoss`, :class:`NPairsLoss`, and the
  contrastive losses of self-supervised learning :class:`NTXentLoss` and :class:`SupConLoss`;
  :class:`CircleLoss` (constant weights, the paper's; ``keras.losses.Circle`` is
  :data:`KerasCircleLoss`);
- classification with class weights and proxies, which own their weights as a layer,
  ``loss.head`` (``oneshot.losses.proxies``): :class:`NormalizedSoftmaxLoss`,
  :class:`CosFaceLoss`, :class:`ArcFaceLoss`, :class:`SubCenterArcFaceLoss`,
  :class:`SphereFaceLoss`, :class:`ProxyAnchorLoss`, :class:`ProxyNCALoss`,
  :class:`SoftTripleLoss`. The training model must hold that layer:
  :func:`oneshot.models.build_online`, or :func:`attach` for a model of your own (it returns a
  :class:`LossHeadModel`); any other model computing such a loss is refused.

Under a ``tf.distribute`` strategy, :class:`GlobalBatchLoss` wraps any of these so that it mines
and computes on the global batch of all replicas, not on each replica's slice.
:class:`CrossBatchMemory` (XBM) wraps a tuple or pair loss so that it mines the batch against a
queue of recent embeddings (an :class:`EmbeddingMemory` layer, ``loss.head``).

Offline models use the loss layers (:class:`TripletLossLayer`, :class:`QuadrupletLossLayer`) and
the siamese pair loss (:class:`PairContrastiveLoss`), built on the same pure functions. Label
convention for pairs everywhere: ``y = 1`` means the SAME class.
"""

from oneshot.losses.base import MetricLoss
from oneshot.losses.circle import CircleLoss, KerasCircleLoss
from oneshot.losses.contrastive import ContrastiveLoss, PairContrastiveLoss, contrastive_loss
from oneshot.losses.cross_batch import CrossBatchMemory, EmbeddingMemory
from oneshot.losses.global_batch import GlobalBatchLoss
from oneshot.losses.heads import LossHeadModel, attach
from oneshot.losses.legacy import OnlineContrastiveLoss, OnlineQuadrupletLoss, OnlineTripletLoss
from oneshot.losses.lifted import GeneralizedLiftedStructureLoss, LiftedStructureLoss
from oneshot.losses.margin import MarginLoss
from oneshot.losses.margin_softmax import (
    ArcFaceLoss,
    CosFaceLoss,
    NormalizedSoftmaxLoss,
    SubCenterArcFaceLoss,
)
from oneshot.losses.multi_similarity import MultiSimilarityLoss
from oneshot.losses.npairs import NPairsLoss
from oneshot.losses.ntxent import NTXentLoss
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
from oneshot.losses.supcon import SupConLoss
from oneshot.losses.triplet import (
    TripletLossLayer,
    TripletMarginLoss,
    active_triplet_fraction,
    triplet_loss,
    triplet_loss_from_distances,
)

__all__ = [
    "ArcFaceLoss",
    "CircleLoss",
    "ClassProxies",
    "ContrastiveLoss",
    "CosFaceLoss",
    "CrossBatchMemory",
    "EmbeddingMemory",
    "GeneralizedLiftedStructureLoss",
    "GlobalBatchLoss",
    "KerasCircleLoss",
    "LiftedStructureLoss",
    "LossHeadModel",
    "MarginLoss",
    "MetricLoss",
    "MultiSimilarityLoss",
    "NPairsLoss",
    "NTXentLoss",
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
    "SupConLoss",
    "TripletLossLayer",
    "TripletMarginLoss",
    "active_triplet_fraction",
    "attach",
    "check_quadruplet_margins",
    "contrastive_loss",
    "quadruplet_loss",
    "sphereface_lambda",
    "triplet_loss",
    "triplet_loss_from_distances",
    "tuple_adaptive_margins",
]
