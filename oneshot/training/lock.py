"""A lock on a run folder, so that only one process writes into it.

The lock is an OS lock (``fcntl.flock``) on the file ``<folder>/.lock``, which also holds the
owner's process id and command. The operating system releases it when the process ends, however
it ends, so the file a killed process leaves behind is stale: the next run takes the lock, and
rewrites the file. A second run while the first holds it fails at once, naming the owner.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

from oneshot.errors import UsageError

LOCK_FILE = ".lock"

try:
    import fcntl
except ImportError:  # Windows: no flock; fall back on a process-id check
    fcntl = None


class RunLockedError(UsageError, RuntimeError):
    """Another process is writing into the run folder."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


class FolderLock:
    """Exclusive lock on ``folder`` (created if needed; removed again on release if this lock
    created it and left it empty).

    Args:
        folder: the folder to lock.
        blocking: wait for the lock instead of failing at once. Defaults to False.
        what: how the message names the folder. Defaults to "run folder".
    """

    def __init__(self, folder: str | Path, blocking: bool = False, what: str = "run folder"):
        self.folder, self.blocking, self.what = Path(folder), blocking, what
        self.path = self.folder / LOCK_FILE
        self._fd: int | None = None
        self._created: list[Path] = []

    @staticmethod
    def check_free(folder: str | Path, what: str = "run folder") -> None:
        """Raise :class:`RunLockedError` if another process holds the lock of ``folder``;
        writes nothing (a refused run must leave the folder as it was)."""
        path = Path(folder) / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return
        try:
            probe = FolderLock(folder, what=what)
            if not probe._lock_fd(fd):
                probe._refuse(fd)
        finally:
            os.close(fd)  # also releases a probe lock we took

    def _refuse(self, fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        owner = os.read(fd, 4096).decode(errors="replace").strip() or "unknown"
        raise RunLockedError(
            f"Another training is writing into the {self.what} {self.folder} ({owner}). Wait "
            "for it to finish, or choose another --out."
        )

    def acquire(self) -> FolderLock:
        missing = []
        for parent in (self.folder, *self.folder.parents):
            if parent.exists():
                break
            missing.append(parent)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._created = missing
        try:
            self._take()
        except BaseException:
            self._remove_created()
            raise
        return self

    def _take(self) -> None:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if not self._lock_fd(fd):
                    self._refuse(fd)
                # the file may have been removed by its previous owner between open and lock
                same = (
                    os.path.exists(self.path) and os.stat(self.path).st_ino == os.fstat(fd).st_ino
                )
            except BaseException:
                os.close(fd)
                raise
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        command = " ".join(sys.argv)[:300]
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        os.write(
            fd, f"pid {os.getpid()} on {socket.gethostname()} since {stamp}: {command}\n".encode()
        )
        self._fd = fd

    def _lock_fd(self, fd: int) -> bool:
        if fcntl is not None:
            flags = fcntl.LOCK_EX | (0 if self.blocking else fcntl.LOCK_NB)
            try:
                fcntl.flock(fd, flags)
            except BlockingIOError:
                return False
            return True
        text = os.read(fd, 4096).decode(errors="replace")  # pragma: no cover (no fcntl)
        os.lseek(fd, 0, os.SEEK_SET)
        pid = int(text.split()[1]) if text.startswith("pid ") else None
        return pid is None or pid == os.getpid() or not _pid_alive(pid)

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self._fd)  # closing releases the flock
        self._fd = None
        self._remove_created()

    def _remove_created(self) -> None:
        for folder in self._created:  # deepest first
            try:
                folder.rmdir()
            except OSError:  # not empty (the run wrote into it) or already gone
                break
        self._created = []

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
