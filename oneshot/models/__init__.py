"""Models: the embedding networks, the siamese / triplet / quadruplet / online models built
around them, the small layers they share, and saving and loading.

- :mod:`oneshot.models.networks`   embedding networks (conv4, Koch's, Eric's) and the learned metric
- :mod:`oneshot.models.backbones`  any ``keras.applications`` model as the embedding network
- :mod:`oneshot.models.layers`     the layers and layer names every model shares
- :mod:`oneshot.models.builders`   siamese, triplet, quadruplet and online (in-batch) models
- :mod:`oneshot.models.identity`   a fingerprint of the network that made an embedding
- :mod:`oneshot.models.saving`     :func:`load_model` with a clear error for a file that is no model
- :mod:`oneshot.models.registry`   registers every serializable class of oneshot with Keras
"""

from oneshot.models.backbones import build_backbone, find_backbone, set_backbone_trainable
from oneshot.models.builders import (
    DISTANCE_TAG,
    LOSS_HEAD,
    QUADRUPLET_METRICS,
    SIAMESE_HEADS,
    build_online,
    build_quadruplet,
    build_siamese,
    build_triplet,
    inputs_only,
    loss_head,
    saveable_model,
    siamese_loss,
)
from oneshot.models.identity import ModelIdentity, embedding_network
from oneshot.models.layers import (
    EMBEDDING_NAME,
    METRIC_NAME,
    SIMILARITY_NAME,
    AbsoluteDifference,
    EmbeddingDistance,
    MetricDistance,
    PairDistance,
)
from oneshot.models.networks import (
    NETWORKS,
    build_network,
    conv4,
    eric_mnist,
    eric_omniglot,
    koch,
    metric_network,
)
from oneshot.models.saving import ModelFileError, load_model

__all__ = [
    "DISTANCE_TAG",
    "EMBEDDING_NAME",
    "LOSS_HEAD",
    "METRIC_NAME",
    "NETWORKS",
    "QUADRUPLET_METRICS",
    "SIAMESE_HEADS",
    "SIMILARITY_NAME",
    "AbsoluteDifference",
    "EmbeddingDistance",
    "MetricDistance",
    "ModelFileError",
    "ModelIdentity",
    "PairDistance",
    "build_backbone",
    "build_network",
    "build_online",
    "build_quadruplet",
    "build_siamese",
    "build_triplet",
    "conv4",
    "embedding_network",
    "eric_mnist",
    "eric_omniglot",
    "find_backbone",
    "inputs_only",
    "koch",
    "load_model",
    "loss_head",
    "metric_network",
    "saveable_model",
    "set_backbone_trainable",
    "siamese_loss",
]
