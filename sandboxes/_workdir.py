"""Work-dir helpers all backends share: safe relative paths, writing inputs, collecting outputs."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath

from ._base import SandboxError


def check_relpath(path: str) -> str:
    """Return ``path`` normalised if it is a plain relative path inside the work dir, else raise."""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or "\0" in path:
        raise SandboxError(f"sandbox file path must be relative, inside the work dir: {path!r}")
    return str(pure)


def write_files(root: Path, files: Mapping[str, bytes], mode: int = 0o644) -> None:
    """Write ``files`` under ``root`` (directories created as needed)."""
    for rel, data in files.items():
        target = root / check_relpath(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(mode)


def collect_files(root: Path, paths: Iterable[str], max_bytes: int) -> dict[str, bytes]:
    """Read the regular files ``paths`` under ``root``, without following symlinks.

    A candidate controls the work dir, so a path that is a symlink, a
    directory, a FIFO or larger than ``max_bytes`` is left out rather than read.
    """
    found: dict[str, bytes] = {}
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for rel in paths:
            data = _read_below(root_fd, check_relpath(rel), max_bytes)
            if data is not None:
                found[rel] = data
    finally:
        os.close(root_fd)
    return found


def _read_below(root_fd: int, rel: str, max_bytes: int) -> bytes | None:
    parts = rel.split("/")
    fds: list[int] = []
    try:
        dir_fd = root_fd
        for part in parts[:-1]:
            dir_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
            fds.append(dir_fd)
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
        fds.append(fd)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            return None
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read(max_bytes + 1)[:max_bytes]
    except OSError:
        return None
    finally:
        for fd in fds:
            os.close(fd)


class CappedBuffer:
    """Keeps the first ``limit`` bytes written to it and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._chunks: list[bytes] = []
        self.kept = 0
        self.total = 0

    def write(self, data: bytes) -> None:
        self.total += len(data)
        room = self.limit - self.kept
        if room > 0:
            piece = data[:room]
            self._chunks.append(piece)
            self.kept += len(piece)

    @property
    def overflowed(self) -> bool:
        return self.total > self.limit

    def getvalue(self) -> bytes:
        return b"".join(self._chunks)
