"""One run at a time per run folder: an exclusive ``flock`` on ``<run>/.lock``, released by the kernel
when the holder exits, however it exits (even ``kill -9``), so a stale lock never blocks a rerun."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs are not protected from each other there
    fcntl = None

LOCK_NAME = ".lock"


class RunLocked(RuntimeError):
    """Another process holds the run folder; the message names it."""


class RunLock:
    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 400).decode("utf-8", "replace").strip() or "another process"
                os.close(fd)
                raise RunLocked(f"run folder {self.path.parent} is in use by {holder} (lock {self.path}); "
                                "wait for it to finish or use --out for another folder") from None
        os.ftruncate(fd, 0)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {stamp}: {' '.join(sys.argv)}".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock; the file stays (removing it would race a waiting run)
            self._fd = None
