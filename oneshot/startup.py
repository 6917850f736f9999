"""Starting TensorFlow without its start-up noise, for the package import and the commands.

TensorFlow's C++ core writes a few lines to file descriptor 2 when it is imported and when it
first probes for devices (absl's pre-init warning, oneDNN and CUDA notices, ``cuInit``); they
ignore ``TF_CPP_MIN_LOG_LEVEL`` and, in a notebook, land in the first cell's output. Here they
go to the null device while TensorFlow starts, unless the user asked to see them (a
``TF_CPP_MIN_LOG_LEVEL`` of their own, or a command's ``--debug``). This module imports
nothing heavy, so the command lines can use it before parsing their arguments.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

#: TensorFlow's C++ log level that ``import oneshot`` and the command lines set when the user
#: has not chosen one: fatal only (TensorFlow's errors reach Python as exceptions; what is left
#: are notices such as tf.data's "NodeDef mentions attribute use_unbounded_threadpool")
QUIET_LOG_LEVEL = "3"


@contextlib.contextmanager
def native_stderr_silenced(silenced: bool = True) -> Iterator[None]:
    """Inside, what native code writes to file descriptor 2 goes to the null device; Python's
    own ``sys.stderr`` is flushed first and restored after, so an exception raised inside still
    prints its traceback."""
    if not silenced:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def start_tensorflow_quietly(quiet: bool = True) -> None:
    """Import TensorFlow and probe its devices. With ``quiet``, unless the user set a
    ``TF_CPP_MIN_LOG_LEVEL`` of their own (then they see what it shows), the level is
    :data:`QUIET_LOG_LEVEL` and the start-up lines are dropped. Nothing happens when TensorFlow is
    already imported."""
    if "tensorflow" in sys.modules:
        return
    quiet = quiet and "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    if quiet:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = QUIET_LOG_LEVEL
    with native_stderr_silenced(quiet):
        import tensorflow as tf  # late import: starting TensorFlow quietly is this module's job

        tf.config.list_physical_devices()  # the CUDA probe writes its failure here
