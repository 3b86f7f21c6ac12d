"""The project's one way to write a file: to a uniquely named temporary file beside the target, then
renamed over it. A crash (even ``kill -9``) leaves either the old file or the new one, never half of
one; two writers never share a temporary name; a failed write (disk full) removes its temporary file. The
file gets the permissions an ordinary ``open(path, "w")`` would give (0666 less the umask), not mkstemp's
owner-only 0600, so a run folder shared on a cluster stays readable by the group."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

TMP_SUFFIX = ".tmp"


def temp_name_pattern(path: Path) -> str:
    """Glob pattern of the temporary files ``atomic_write`` makes for ``path`` (for cleaning up after kills)."""
    return f".{Path(path).name}.*{TMP_SUFFIX}"


def _umask() -> int:
    """The process's umask, read from /proc where there is one (reading it with ``os.umask`` means setting it,
    for an instant, which another thread could see)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` to fill a fresh temporary file beside ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    os.close(fd)
    tmp = Path(tmp)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
