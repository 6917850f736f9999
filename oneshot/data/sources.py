"""Where the raw data files live: locate, download and verify them, and where decoded arrays go.

Files are looked up, in order, in:

1. an explicit ``data_dir`` argument,
2. the folder named by the ``ONESHOT_DATA_DIR`` environment variable,
3. the Keras cache (``$KERAS_HOME/datasets/oneshot``, i.e. ``~/.keras/datasets/oneshot``),
   downloading from the official URL when the file is not there yet.

Every folder has the layout ``mnist/mnist.npz`` and ``omniglot/<archive>.zip``. A file is only
used once its hash is one of the accepted hashes (official release or the offline shared copy).
Decoded arrays are cached in ``$ONESHOT_CACHE_DIR`` (default ``~/.cache/oneshot``), never in the
data folder, which may be read-only.
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ENV_DATA_DIR = "ONESHOT_DATA_DIR"
ENV_CACHE_DIR = "ONESHOT_CACHE_DIR"
# Bump when the decoded layout changes: old cache files are then ignored.
FORMAT_VERSION = 1

_OMNIGLOT_URL = "https://github.com/brendenlake/omniglot/raw/master/python/"


class DataError(ValueError):
    """A data file is missing, unreachable or corrupt (the message says what to do)."""


@dataclass(frozen=True)
class DataFile:
    """One raw file: its place in the data folder, its official URL and its accepted hashes.

    ``accepted`` maps each accepted hex digest (sha256: 64 characters, md5: 32) to where it comes
    from ("official" or "shared copy").
    """

    key: str
    relpath: str
    url: str
    accepted: dict[str, str]


FILES: dict[str, DataFile] = {
    f.key: f
    for f in (
        DataFile(
            "mnist",
            "mnist/mnist.npz",
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
            {
                "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1": "official",
                "06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64": "shared copy",
            },
        ),
        DataFile(
            "omniglot_background",
            "omniglot/images_background.zip",
            _OMNIGLOT_URL + "images_background.zip",
            {
                "68d2efa1b9178cc56df9314c21c6e718": "official",
                "798b85e458ecd503a57c7e2eec20ba39921a3fbbf61101ac6afef98137f8b214": "shared copy",
            },
        ),
        DataFile(
            "omniglot_evaluation",
            "omniglot/images_evaluation.zip",
            _OMNIGLOT_URL + "images_evaluation.zip",
            {
                "6b91aef0f799c5bb55b94e3f2daec811": "official",
                "c3d25494472d8c764f84a4fc00449c537c15d594ea2aa2f28fa65e2ed23a69a8": "shared copy",
            },
        ),
        DataFile(
            "lake_runs",
            "omniglot/all_runs.zip",
            _OMNIGLOT_URL + "one-shot-classification/all_runs.zip",
            {
                "e8996daecdf12afeeb4a53a179f06b19": "official",
                "437c1eeab0af8484112e1b4cc0f3d541ec727f7c47b9b202da738af9dfd6c325": "shared copy",
            },
        ),
    )
}

LAYOUT = "\n".join(f"  <data_dir>/{f.relpath}" for f in FILES.values())

# (path, size, mtime_ns) -> (sha256, md5): each file is hashed once per process.
_DIGESTS: dict[tuple[str, int, int], tuple[str, str]] = {}


def keras_cache_dir() -> Path:
    """The folder where downloads go: ``$KERAS_HOME/datasets/oneshot`` (``~/.keras/...``)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets" / "oneshot"


def decoded_cache_dir() -> Path:
    """The folder for decoded arrays: ``$ONESHOT_CACHE_DIR``, else ``~/.cache/oneshot``."""
    env = os.environ.get(ENV_CACHE_DIR)
    return Path(env) if env else Path.home() / ".cache" / "oneshot"


def download(url: str, target: Path) -> Path:
    """Download ``url`` to ``target`` with ``keras.utils.get_file`` and return the path.

    Module-level so tests can replace it (``monkeypatch.setattr(sources, "download", fake)``).
    """
    import keras  # late import: this module is read before TensorFlow starts (command lines)

    got = keras.utils.get_file(
        fname=target.name, origin=url, cache_dir=str(target.parent), cache_subdir=""
    )
    return Path(got)


def file_digests(path: str | Path) -> tuple[str, str]:
    """Return ``(sha256, md5)`` hex digests of a file, computed in one pass and memoised."""
    path = Path(path)
    stat = path.stat()
    memo_key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if memo_key not in _DIGESTS:
        sha, md5 = hashlib.sha256(), hashlib.md5()
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                sha.update(chunk)
                md5.update(chunk)
        _DIGESTS[memo_key] = (sha.hexdigest(), md5.hexdigest())
    return _DIGESTS[memo_key]


def verify(path: str | Path, key: str) -> str:
    """Check ``path`` against the accepted hashes of ``FILES[key]``; return where it comes from.

    Raises:
        DataError: the hash is not accepted. The message names the file, the expected and the
            actual hashes, and what to do.
    """
    spec = FILES[key]
    sha, md5 = file_digests(path)
    for digest in (sha, md5):
        if digest in spec.accepted:
            return spec.accepted[digest]
    expected = ", ".join(f"{d} ({src})" for d, src in spec.accepted.items())
    raise DataError(
        f"Checksum mismatch for {path}. Expected one of: {expected}. "
        f"Received: sha256 {sha}, md5 {md5}. The file is corrupt or not the right one: delete "
        f"it so that it is downloaded again, or point {ENV_DATA_DIR} (or --data-dir) at a folder "
        f"holding a good copy."
    )


def data_root(data_dir: str | Path | None = None) -> tuple[Path, bool]:
    """Return the folder to read from and whether it was chosen explicitly (argument or env)."""
    if data_dir is not None:
        return Path(data_dir).expanduser(), True
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser(), True
    return keras_cache_dir(), False


def locate(key: str, data_dir: str | Path | None = None) -> Path:
    """Return the verified path of raw file ``key`` (a key of ``FILES``), downloading if needed.

    Args:
        key: which file, e.g. ``"mnist"`` or ``"omniglot_background"``.
        data_dir: folder laid out like the shared data folder. Defaults to ``$ONESHOT_DATA_DIR``,
            else the Keras cache (downloading there when the file is missing).

    Returns:
        The path of a file whose hash is accepted.

    Raises:
        DataError: missing from an explicit folder, not downloadable, or checksum mismatch.
    """
    if key not in FILES:
        raise ValueError(
            f"Invalid value for argument `key`. Expected one of {tuple(FILES)}. Received: key={key!r}"
        )
    spec = FILES[key]
    root, explicit = data_root(data_dir)
    path = root / spec.relpath
    if not path.is_file():
        if explicit:
            source = "data_dir" if data_dir is not None else f"${ENV_DATA_DIR}"
            raise DataError(
                f"Copy {spec.relpath} into {root} (the folder from {source}), or point "
                f"{ENV_DATA_DIR} / --data-dir at a folder that has it; then check the data with "
                f"`python -m oneshot.data --check`. Missing data file: {path}. Expected layout:"
                f"\n{LAYOUT}"
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path = download(spec.url, path)
        except Exception as error:  # offline, proxy, read-only home ...: one clear message
            raise DataError(
                f"Set {ENV_DATA_DIR} (or pass --data-dir / data_dir=) to a folder holding the "
                f"data and check it with `python -m oneshot.data --check`: there is no local "
                f"copy of {spec.relpath} in {root} and downloading {spec.url} failed "
                f"({type(error).__name__}: {error}). The folder is laid out as:\n{LAYOUT}"
            ) from error
    verify(path, key)
    return path


def cache_path(key: str, sha256: str, variant: str) -> Path:
    """Decoded-cache file for raw file ``key`` with hash ``sha256`` and ``variant`` (size etc.)."""
    return decoded_cache_dir() / f"{key}-{sha256[:16]}-{variant}-v{FORMAT_VERSION}.npz"


def read_cached(path: Path) -> dict[str, np.ndarray] | None:
    """Arrays saved by ``write_cached``, or None if absent or unreadable (then decode again)."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return None
    if "bits" in arrays:  # binary images stored 8 pixels per byte
        shape = tuple(int(n) for n in arrays.pop("shape"))
        pixels = np.unpackbits(arrays.pop("bits"), axis=1, count=shape[1] * shape[2])
        arrays["images"] = np.multiply(pixels, np.uint8(255), out=pixels).reshape(shape)
    return arrays


def write_cached(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Save ``arrays`` atomically (tmp file + rename); 0/255 images are bit-packed.

    A cache that cannot be written only costs speed: warn, never fail.
    """
    arrays = dict(arrays)
    images = arrays["images"]
    if bool(((images == 0) | (images == 255)).all()):
        flat = arrays.pop("images").reshape(len(images), -1) > 127
        arrays["bits"], arrays["shape"] = np.packbits(flat, axis=1), np.array(images.shape)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        warnings.warn(
            f"Could not cache decoded arrays in {path.parent} ({error}); set {ENV_CACHE_DIR} to "
            "a writable folder to make later loads fast.",
            stacklevel=3,
        )
