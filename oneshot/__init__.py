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

``import oneshot`` sets ``KERAS_BACKEND`` to ``tensorflow`` and ``TF_CPP_MIN_LOG_LEVEL`` to 3
(fatal only: TensorFlow's errors still raise) when they are unset, starts TensorFlow without its start-up lines
(``oneshot.startup``; set ``TF_CPP_MIN_LOG_LEVEL`` yourself to see them) and registers every
serializable class, so that ``keras.saving.load_model`` works. Nothing else global changes:
Python's logging, Keras's dtype policy and seeds stay the user's.
"""

import os
import sys

# Keras runs on TensorFlow unless the user chose another backend before importing oneshot (the
# library is written for TensorFlow).
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.2.0"

from oneshot.saving import load_model  # noqa: E402,F401  (says what a non-model file is)


def register() -> None:
    """Import every module that registers serializable classes (distances, miners, reducers,
    losses, layers, networks) with Keras, so that ``keras.saving.load_model`` reads the models
    of oneshot. ``import oneshot`` does it; the command lines do it after their arguments
    are parsed (:func:`oneshot.cli.run_command`)."""
    from oneshot import (  # noqa: F401
        backbones,
        distances,
        losses,
        miners,
        models,
        networks,
        reducers,
    )


# ``python -m oneshot.<command>`` imports this package while ``sys.argv[0]`` is still "-m"
# (Python's documented behaviour while it locates the module): the command then registers
# after parsing its arguments, so that --help and argument errors answer before TensorFlow is
# imported. Any other ``import oneshot`` registers at once.
if sys.argv[:1] != ["-m"]:
    from oneshot.startup import start_tensorflow_quietly

    start_tensorflow_quietly()
    register()
