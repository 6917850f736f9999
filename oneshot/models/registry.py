"""Registers every serializable class of oneshot with Keras, so that ``keras.saving.load_model``
rebuilds oneshot's models: importing a module that defines such a class registers it
(:func:`oneshot.pieces.register`), and this module imports all of them.

``import oneshot`` imports it; a command line imports it after parsing its arguments, so that
``--help`` answers before TensorFlow starts.
"""

from __future__ import annotations

import oneshot.distances  # noqa: F401
import oneshot.losses  # noqa: F401
import oneshot.miners  # noqa: F401
import oneshot.models.backbones  # noqa: F401
import oneshot.models.builders  # noqa: F401
import oneshot.models.layers  # noqa: F401
import oneshot.models.networks  # noqa: F401
import oneshot.reducers  # noqa: F401
