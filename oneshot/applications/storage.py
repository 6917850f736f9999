"""The index file: one ``.npz`` archive of arrays plus a JSON metadata record, written atomically.

Layout (format version 1): ``metadata`` (a JSON string: format name and version, oneshot
version, distance config, backend, model identity, sizes), ``embeddings`` (N, D) float32, ``ids``
(N,) int64 or unicode, optionally ``labels`` (N,) int64 or unicode and ``faiss`` (the serialised
FAISS index of an approximate backend). Nothing needs pickle to load (``allow_pickle=False``).

Writes go to a temporary file beside the target, then ``os.replace`` it into place
(:func:`oneshot.applications.files.atomic_write`): an error or an interruption leaves either the
old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from oneshot.applications.files import atomic_write
from oneshot.errors import UsageError
from oneshot.models.saving import describe_file

FORMAT = "oneshot.EmbeddingIndex"
FORMAT_VERSION = 1
EXPECTED = "an embedding index file (.npz) written by EmbeddingIndex.save"


class IndexFileError(UsageError, ValueError):
    """The file is not an index this version can load; the message names the path and what
    it holds."""


def write_index_file(
    path: str | Path, metadata: dict[str, Any], arrays: dict[str, np.ndarray], overwrite: bool
) -> Path:
    """Write ``metadata`` and ``arrays`` to ``path`` atomically; return the path.

    Refuses a folder, and an existing file unless ``overwrite``. The temporary file is removed
    on any error (Ctrl-C included).
    """
    path = Path(path)
    if path.is_dir():
        raise IndexFileError(f"{path} is a folder. Expected a file name, e.g. {path / 'index.npz'}")
    if path.exists() and not overwrite:
        raise IndexFileError(f"{path} already exists; pass overwrite=True to replace it.")
    record = {"format": FORMAT, "format_version": FORMAT_VERSION, **metadata}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, metadata=np.array(json.dumps(record)), **arrays)

    return atomic_write(path, write)


def read_index_file(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(metadata, arrays)`` of an index file; IndexFileError naming ``path`` if it is missing,
    not an index, corrupt, or of another format version."""
    path = Path(path)
    if not path.exists():
        raise IndexFileError(f"No such file: {path}. Expected {EXPECTED}.")
    if path.is_dir():
        raise IndexFileError(f"{path} is a folder. Expected {EXPECTED}.")
    if not zipfile.is_zipfile(path):
        kind = describe_file(path)
        if kind == "a zip archive":  # starts like one, but its end (the directory) is missing
            raise IndexFileError(f"{path} is a damaged (truncated?) zip archive. Rebuild it.")
        raise IndexFileError(f"{path} is {kind}, not an index. Expected {EXPECTED}.")
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = set(archive.files)
            if "metadata" not in names:
                raise IndexFileError(
                    f"{path} is an .npz archive without index metadata (it holds "
                    f"{sorted(names)[:5]}), not an index. Expected {EXPECTED}."
                )
            metadata = json.loads(str(archive["metadata"]))
            arrays = {name: archive[name] for name in names - {"metadata"}}
    except IndexFileError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise IndexFileError(
            f"{path} is a damaged index file ({type(error).__name__}: {error}). Rebuild it."
        ) from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise IndexFileError(
            f"{path} holds metadata of another kind ({str(metadata)[:80]}). Expected {EXPECTED}."
        )
    if metadata.get("format_version") != FORMAT_VERSION:
        raise IndexFileError(
            f"{path} is an index of format version {metadata.get('format_version')!r}; this "
            f"version of oneshot reads version {FORMAT_VERSION}. Rebuild the index."
        )
    return metadata, arrays


def check_index_arrays(
    path: str | Path,
    embeddings: np.ndarray,
    ids: np.ndarray,
    labels: np.ndarray | None,
    size: int,
    dim: int | None,
) -> None:
    """An :class:`IndexFileError` unless the arrays read from ``path`` match its metadata:
    float32 (size, dim) embeddings and (size,) ids and labels."""
    if (
        embeddings.dtype != np.float32
        or embeddings.ndim != 2
        or len(embeddings) != size
        or (size and embeddings.shape[1] != dim)
        or ids.shape != (size,)
        or (labels is not None and labels.shape != (size,))
    ):
        raise IndexFileError(
            f"{path} has arrays that do not match its metadata (size {size}, dim {dim}; "
            f"embeddings {embeddings.dtype} {embeddings.shape}, ids {ids.shape}). Rebuild it."
        )
