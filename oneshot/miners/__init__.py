"""Mining: which tuples to train on.

Online (in-batch) miners are small serializable objects; ``miner(dist, labels)`` takes a (B, B)
dissimilarity matrix (smaller = closer, from ``distance.dissimilarity(distance.pairwise(x))``)
and labels, and returns int64 index tuples only (see :mod:`oneshot.miners.base`):

==========================  ==================  =====================================
miner                       name                returns
==========================  ==================  =====================================
``BatchHardMiner()``        "batch_hard"        ``(a, p, n)``
``BatchAllMiner(margin)``   "batch_all"         ``(a, p, n)``
``SemiHardMiner()``         "semi_hard"         ``(a, p, n)``
``HardPairMiner()``         "hard_pairs"        ``(a1, p, a2, n)``
``MultiSimilarityMiner()``  "multi_similarity"  ``(a1, p, a2, n)``
``QuadrupletMarginMiner()`` "quadruplet_margin" ``((a, p, n), (a, p, n, n2))``
==========================  ==================  =====================================

``DistanceWeightedMiner(embedding_dim)`` returns ``(a, p, a, n)`` with one negative drawn at
random per positive pair (Wu et al. 2017); it has no short name, as it needs the dimension.

Offline hard batches of the original experiments: :class:`HardBatchMiner` (best built with
:meth:`HardBatchMiner.from_model`).

Example:
    >>> distance = LpDistance()
    >>> dist = distance.dissimilarity(distance.pairwise(embeddings))
    >>> a, p, n = get_miner("batch_hard")(dist, labels)
"""

from __future__ import annotations

from typing import Any

from oneshot.miners.base import Miner, label_masks, positive_pairs, sorted_negatives
from oneshot.miners.distance_weighted import DistanceWeightedMiner
from oneshot.miners.offline import HardBatchMiner, quadruplet_hardness, select_hard
from oneshot.miners.pairs import HardPairMiner, MultiSimilarityMiner
from oneshot.miners.quadruplets import QuadrupletMarginMiner, adaptive_margins
from oneshot.miners.triplets import (
    SEMI_HARD_FALLBACKS,
    BatchAllMiner,
    BatchHardMiner,
    SemiHardMiner,
)
from oneshot.pieces import resolve

__all__ = [
    "MINERS",
    "SEMI_HARD_FALLBACKS",
    "BatchAllMiner",
    "BatchHardMiner",
    "DistanceWeightedMiner",
    "HardBatchMiner",
    "HardPairMiner",
    "Miner",
    "MultiSimilarityMiner",
    "QuadrupletMarginMiner",
    "SemiHardMiner",
    "adaptive_margins",
    "get_miner",
    "label_masks",
    "positive_pairs",
    "quadruplet_hardness",
    "select_hard",
    "sorted_negatives",
]

MINERS = {
    "batch_hard": BatchHardMiner,
    "batch_all": BatchAllMiner,
    "semi_hard": SemiHardMiner,
    "hard_pairs": HardPairMiner,
    "multi_similarity": MultiSimilarityMiner,
    "quadruplet_margin": QuadrupletMarginMiner,
}


def get_miner(miner: str | Miner | dict[str, Any]) -> Miner:
    """A :class:`Miner` from an object, a name (``MINERS``, default arguments) or a Keras
    config dict (``keras.saving.serialize_keras_object(miner)``)."""
    return resolve(miner, Miner, MINERS, "miner")
