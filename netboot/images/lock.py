"""Advisory file locks (fcntl.flock) for the image cache and its jobs.

flock locks belong to an open file description and vanish when the holder dies (even
``kill -9``), so a crashed import never leaves a stale lock behind: the next import
takes the lock and resumes from the partial files.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path


class LockTimeout(TimeoutError):
    pass


class FileLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        """Take the lock now if nobody holds it; True on success."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return False
            raise
        self._fd = fd
        return True

    def acquire(self, timeout: float = 600.0, poll: float = 0.05) -> None:
        deadline = time.monotonic() + timeout
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                raise LockTimeout(f"{self.path} still locked after {timeout:.0f}s")
            time.sleep(poll)

    def held_by_other(self) -> bool:
        """Whether another process holds the lock (checked without keeping it)."""
        if self._fd is not None:
            return False
        if self.try_acquire():
            self.release()
            return False
        return True

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
