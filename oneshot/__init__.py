"""oneshot: one-shot learning with siamese, triplet and quadruplet networks in Keras 3.

Layout (data -> sampling/mining -> networks/losses -> training -> evaluation -> plots):

- ``oneshot.data``        real datasets (MNIST, Omniglot, Lake's runs) and tf.data samplers
- ``oneshot.distances``   Lp distances and similarities (cosine, dot, RBF), NaN-safe, chunked
- ``oneshot.miners``      which tuples to train on: online miners and offline hard batches
- ``oneshot.losses``      triplet, contrastive and quadruplet losses and loss layers
- ``oneshot.reducers``    per-tuple losses -> per-sample values (mean, non-zero mean, ...)
- ``oneshot.networks``    embedding networks and the learned metric network
- ``oneshot.backbones``   any keras.applications model as the embedding network
- ``oneshot.models``      siamese / triplet / quadruplet / online model builders
- ``oneshot.inference``   one scoring interface for every model kind (embed + distance)
- ``oneshot.evaluation``  N-way K-shot accuracy, Lake's runs, ROC, CMC, retrieval metrics
- ``oneshot.applications``  a trained embedding on a user's gallery: the embedding index (k-NN)
- ``oneshot.plots``       every figure
- ``oneshot.train`` / ``oneshot.evaluate`` / ``oneshot.compare``   the command lines
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.2.0"

# Register every serializable class (distances, miners, reducers, losses, layers, networks) so
# that ``keras.saving.load_model`` works after ``import oneshot``.
from oneshot import (  # noqa: E402,F401
    backbones,
    distances,
    losses,
    miners,
    models,
    networks,
    reducers,
)
from oneshot.saving import load_model  # noqa: E402,F401  (says what a non-model file is)
