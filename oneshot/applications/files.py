"""Writing an output file atomically: a temporary file beside the target, then one rename.

Every file the applications write (index, verifier, cluster table, PNG strip) goes through
:func:`atomic_write`: an error or an interruption (Ctrl-C included) leaves the old file or the
new one, never half of one, and no temporary file behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from oneshot.errors import UsageError


class OutputFileError(UsageError, ValueError):
    """An output path that cannot be written: a folder, or an existing file without
    ``overwrite``; the message names the path."""


def check_output(path: str | Path, overwrite: bool, flag: str = "overwrite=True") -> Path:
    """``path`` as a Path if it can be written; OutputFileError if it is a folder, or exists
    and ``overwrite`` is False (``flag`` says how to allow it, e.g. ``--overwrite``).

    Call it before any long work, so that a refused output costs nothing.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputFileError(f"{path} is a folder. Expected a file name, e.g. {path / 'out'}.")
    if path.exists() and not overwrite:
        raise OutputFileError(f"{path} already exists; pass {flag} to replace it.")
    return path


def atomic_write(
    path: str | Path,
    write: Callable[[Path], None],
    overwrite: bool = True,
    flag: str = "overwrite=True",
) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path``, then rename it into place.

    Args:
        path: the output file.
        write: writes the whole file at the path it is given (which keeps ``path``'s suffix,
            so that e.g. matplotlib picks the format from it).
        overwrite: replace an existing file. Defaults to True.
        flag: how the caller allows overwriting, named in the refusal. Defaults to
            ``"overwrite=True"``.

    Returns:
        ``path`` as a Path.
    """
    path = check_output(path, overwrite, flag)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
