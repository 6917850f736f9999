"""oneshot: one-shot learning with siamese, triplet and quadruplet networks in Keras 3.

Layout, lowest layer first (each imports only from those above it in this list; a test checks it):

- ``oneshot.errors``, ``checks``, ``names``, ``pieces``, ``startup``   errors, argument checks,
  shared names, the base of serializable pieces, a quiet TensorFlow start
- ``oneshot.data``        real datasets (MNIST, Omniglot, Lake's runs), folders, tf.data samplers
- ``oneshot.distances``   Lp distances and similarities (cosine, dot, RBF), NaN-safe, chunked
- ``oneshot.miners``, ``oneshot.reducers``   which tuples to train on; per-tuple losses -> per-sample values
- ``oneshot.losses``      triplet, pair, quadruplet, in-batch and class-weight losses
- ``oneshot.models``      embedding networks, backbones, model builders, layers, saving
- ``oneshot.evaluation``  the Scorer (embed + distance), N-way K-shot accuracy, Lake's runs, ROC, CMC
- ``oneshot.plots``       every figure
- ``oneshot.runs``        run folders: reading them, tables, statistics over seeds
- ``oneshot.training``    configs, input, the training loop and run folders
- ``oneshot.experiments`` the named experiments and studies (configs)
- ``oneshot.applications``  a trained embedding on a user's gallery: index, verify, identify, cluster
- ``oneshot.cli``         every command line (``oneshot <command>``, ``python -m oneshot.<command>``)

See ``docs/architecture.md``.

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

from oneshot.version import __version__  # noqa: E402,F401


def load_model(path, compile: bool = True):
    """:func:`oneshot.models.saving.load_model`: ``keras.saving.load_model`` with oneshot's
    classes registered, and an error that says what the file is when it is not a model."""
    from oneshot.models.saving import load_model as load  # late import: keeps -m commands light

    return load(path, compile=compile)


def register() -> None:
    """Register every serializable class of oneshot (distances, miners, reducers, losses,
    layers, networks) with Keras, so that ``keras.saving.load_model`` reads oneshot's models
    (:mod:`oneshot.models.registry`). ``import oneshot`` does it; the command lines do it after
    their arguments are parsed (:func:`oneshot.cli.common.run_command`)."""
    import oneshot.models.registry  # noqa: F401  (late import: keeps -m commands light)


# ``python -m oneshot.<command>`` imports this package while ``sys.argv[0]`` is still "-m"
# (Python's documented behaviour while it locates the module): the command then registers
# after parsing its arguments, so that --help and argument errors answer before TensorFlow is
# imported. Any other ``import oneshot`` registers at once.
if sys.argv[:1] != ["-m"]:
    from oneshot.startup import start_tensorflow_quietly

    start_tensorflow_quietly()
    register()
