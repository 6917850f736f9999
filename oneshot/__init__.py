"""oneshot: one-shot learning with siamese, triplet and quadruplet networks in Keras 3.

Layout (data -> sampling/mining -> networks/losses -> training -> evaluation -> plots):

- ``oneshot.data``        real datasets (MNIST, Omniglot, Lake's runs) and tf.data samplers
- ``oneshot.distances``   pairwise and paired distances, numerically safe
- ``oneshot.miners``      offline hard-batch and online (in-batch) mining
- ``oneshot.losses``      contrastive, triplet and quadruplet losses (serializable)
- ``oneshot.networks``    embedding networks and the learned metric network
- ``oneshot.models``      siamese / triplet / quadruplet / online model builders
- ``oneshot.inference``   one scoring interface for every model kind (embed + distance)
- ``oneshot.evaluation``  N-way K-shot accuracy, Lake's runs, ROC, CMC, retrieval metrics
- ``oneshot.plots``       every figure
- ``oneshot.train`` / ``oneshot.evaluate`` / ``oneshot.compare``   the command lines
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
