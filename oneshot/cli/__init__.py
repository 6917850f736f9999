"""Every command line of oneshot: ``oneshot <command> ...`` (the console script),
``python -m oneshot.cli.<command>``, or the old ``python -m oneshot.<command>``.

- ``train``     train a named experiment or a folder of images, then evaluate (:mod:`.train`)
- ``evaluate``  evaluate a saved model with any protocol (:mod:`.evaluate`)
- ``compare``   loss curves and metrics of run folders side by side, or over seeds (:mod:`.compare`)
- ``data``      check, time and export the data (:mod:`.data`)
- ``networks``  parameter counts of every network (:mod:`.networks`)
- ``index``, ``verify``, ``identify``, ``cluster``, ``novelty``   a trained model on your images

The library never imports this package. :mod:`.common` holds what the commands share (one
``error:`` line for user errors, ``--debug``, a quiet and late start of TensorFlow), and
:mod:`.apps` what the application commands share. Each command parses its arguments before
TensorFlow is imported, so ``--help`` and argument errors answer at once.
"""

COMMANDS = (
    "train",
    "evaluate",
    "compare",
    "data",
    "networks",
    "index",
    "verify",
    "identify",
    "cluster",
    "novelty",
)
