"""Loading a saved model with a message that says what the file is when it is not a model.

``keras.saving.load_model`` reports a text file named ``.keras`` as "File not found" and a CSV
file as "File format not supported"; :func:`load_model` checks the file first and names what it
found and what was expected (a ``.keras`` zip archive with ``config.json``, ``metadata.json``
and ``model.weights.h5``, saved by Keras 3).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from oneshot.errors import UsageError
from oneshot.version import __version__

EXPECTED = (
    "a Keras 3 model file (.keras: a zip archive holding config.json, metadata.json and "
    "model.weights.h5, as written by model.save or python -m oneshot.train)"
)


class ModelFileError(UsageError, ValueError):
    """The file is not a model this version can load; the message says what it is."""


def describe_file(path: Path) -> str:
    """What ``path`` looks like from its first bytes: "an HDF5 file", "a text file starting
    with '...'", "an empty file", ..."""
    with open(path, "rb") as f:
        head = f.read(256)
    if not head:
        return "an empty file"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return (
            "an HDF5 file (a Keras 2 .h5 model or a .weights.h5 weights file: load weights into a "
            "built model with model.load_weights)"
        )
    if head.startswith(b"PK"):
        return "a zip archive"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "a binary file of an unknown kind"
    first = text.splitlines()[0][:60] if text.strip() else ""
    return f"a text file starting with {first!r}"


def check_model_file(path: str | Path) -> dict[str, Any]:
    """The ``metadata.json`` of the Keras archive at ``path``; ModelFileError if it is not one
    or was saved by another major version of Keras."""
    import keras  # late import: this module is read before TensorFlow starts (command lines)

    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"No such file: {path}. Expected {EXPECTED}.")
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder. Expected {EXPECTED}.")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path} is {describe_file(path)}, not a model. Expected {EXPECTED}.")
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        if not {"config.json", "metadata.json"} <= names:
            raise ModelFileError(
                f"{path} is a zip archive without config.json and metadata.json (it holds "
                f"{sorted(names)[:5]}), not a model. Expected {EXPECTED}."
            )
        try:
            metadata = json.loads(archive.read("metadata.json"))
        except ValueError as error:
            raise ModelFileError(
                f"{path} has an unreadable metadata.json ({error}). Expected {EXPECTED}."
            ) from None
    saved = str(metadata.get("keras_version", "unknown"))
    if saved.split(".")[0] != keras.__version__.split(".")[0]:
        raise ModelFileError(
            f"{path} was saved by Keras {saved}; this is Keras {keras.__version__}, which loads "
            f"models of Keras {keras.__version__.split('.')[0]}.x. Load it with a matching "
            "Keras, or retrain it with python -m oneshot.train."
        )
    return metadata


def load_model(path: str | Path, compile: bool = True) -> Any:
    """``keras.saving.load_model`` with oneshot's pieces registered and a clear
    :class:`ModelFileError` for a file that is not a loadable model.

    Args:
        path: the ``.keras`` file.
        compile: compile the model as it was saved. Defaults to True.

    Returns:
        The Keras model.
    """
    import keras  # late import: this module is read before TensorFlow starts (command lines)

    import oneshot.models.registry  # noqa: F401  (late import: registers the custom objects)

    metadata = check_model_file(path)
    try:
        return keras.saving.load_model(path, compile=compile)
    except (TypeError, ValueError, KeyError) as error:
        saved = metadata.get("keras_version", "unknown")
        raise ModelFileError(
            f"{path} is a Keras model saved by Keras {saved}, but this version (Keras "
            f"{keras.__version__}, oneshot {__version__}) cannot rebuild it: "
            f"{type(error).__name__}: {str(error)[:300]}"
        ) from error
