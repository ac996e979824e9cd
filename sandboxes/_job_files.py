"""A job's files in and out, for every backend: safe relative paths, writing, collecting.

A job's file names may come from a candidate (its files are kept in git,
which takes names no file system does), so before a backend writes them it
asks ``job_files_problem``; a name the host cannot take ends the job as an
``EndReason.ERROR`` result (``files_not_written``), never as an ``OSError``
out of ``Sandbox.run``. Writing and reading go from directory descriptor to
directory descriptor (``dir_fd``, ``O_NOFOLLOW``), one level at a time, so a
path's length never meets ``PATH_MAX`` and a symlink is never followed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath

from ._base import EndReason, Result, SandboxError

#: Longest name of one path component, in bytes (NAME_MAX of Linux file systems).
MAX_NAME_BYTES = 255
#: Longest relative path of a job's file, in bytes (PATH_MAX, 4096, counts the final NUL).
MAX_PATH_BYTES = 4095
#: Most directory levels of a job's file: far below any recursion limit of the tools
#: that handle the tree (git trees, ``os.makedirs``), far above what programs use.
MAX_FILE_DEPTH = 64
#: Most files in one job.
MAX_JOB_FILES = 100_000

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def check_relpath(path: str) -> str:
    """Return ``path`` normalised if it is a plain relative path inside the work dir, else raise."""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or "\0" in path:
        raise SandboxError(f"sandbox file path must be relative, inside the work dir: {path!r}")
    return str(pure)


def path_problem(path: object) -> str | None:
    """Why ``path`` cannot name a file in the work dir (relative, no ``..`` or NUL, each
    component at most ``MAX_NAME_BYTES``, at most ``MAX_PATH_BYTES`` and ``MAX_FILE_DEPTH``
    levels), or None when it can."""
    shown = repr(path) if len(repr(path)) <= 80 else repr(path)[:77] + "..."
    if not isinstance(path, str) or not path:
        return f"the file name {shown} is not a non-empty string"
    if "\0" in path:
        return f"the file name {shown} contains a NUL byte"
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        return f"the file name {shown} is not a relative path inside the work dir"
    try:
        raw = os.fsencode(str(pure))
    except UnicodeEncodeError:
        return f"the file name {shown} cannot be encoded for the file system"
    if len(raw) > MAX_PATH_BYTES:
        return f"the file name {shown} has {len(raw)} bytes, more than {MAX_PATH_BYTES}"
    parts = raw.split(b"/")
    if len(parts) > MAX_FILE_DEPTH:
        return f"the file name {shown} is {len(parts)} levels deep, more than {MAX_FILE_DEPTH}"
    longest = max(len(part) for part in parts)
    if longest > MAX_NAME_BYTES:
        return (f"the file name {shown} has a component of {longest} bytes, more than the "
                f"{MAX_NAME_BYTES} a file system allows")
    return None


def job_files_problem(files: Mapping[str, bytes], max_bytes: int | None = None) -> str | None:
    """Why ``files`` (relative path -> bytes) cannot all be written into a work dir, or None.

    Checks every name (``path_problem``), that no name is both a file and a
    directory of another, that there are at most ``MAX_JOB_FILES`` of them and,
    with ``max_bytes``, that their bytes fit. A backend that gets a problem
    ends the job with ``files_not_written(problem)`` without running it.
    """
    if len(files) > MAX_JOB_FILES:
        return f"{len(files)} files, more than {MAX_JOB_FILES}"
    names: set[str] = set()
    directories: set[str] = set()
    total = 0
    for path, data in files.items():
        problem = path_problem(path)
        if problem:
            return problem
        pure = PurePosixPath(path)
        names.add(str(pure))
        directories.update(str(parent) for parent in pure.parents if str(parent) != ".")
        total += len(data)
    clash = sorted(names & directories)
    if clash:
        return f"{clash[0][:80]!r} is both a file and a directory"
    if max_bytes is not None and total > max_bytes:
        return f"the files hold {total} bytes, more than the work dir's {max_bytes}"
    return None


def files_not_written(problem: str) -> Result:
    """The result of a job whose input files could not be written: it never ran."""
    return Result(EndReason.ERROR, None, b"", b"", {}, 0.0,
                  detail=f"the job's files could not be written: {problem}")


def write_files(root: Path, files: Mapping[str, bytes], mode: int = 0o644) -> None:
    """Write ``files`` under ``root`` (directories created as needed), never through a symlink.

    Raises ``SandboxError`` for a path that is not relative, and ``OSError``
    for one the file system refuses (check ``job_files_problem`` first).
    """
    root_fd = os.open(root, _DIR_FLAGS)
    try:
        for rel, data in files.items():
            _write_below(root_fd, check_relpath(rel).split("/"), data, mode)
    finally:
        os.close(root_fd)


def _write_below(root_fd: int, parts: list[str], data: bytes, mode: int) -> None:
    dir_fd = root_fd
    try:
        for part in parts[:-1]:
            try:
                os.mkdir(part, 0o777, dir_fd=dir_fd)
            except FileExistsError:
                pass
            child = os.open(part, _DIR_FLAGS, dir_fd=dir_fd)
            if dir_fd != root_fd:
                os.close(dir_fd)
            dir_fd = child
        fd = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                     | os.O_CLOEXEC, mode, dir_fd=dir_fd)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            os.fchmod(handle.fileno(), mode)
    finally:
        if dir_fd != root_fd:
            os.close(dir_fd)


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
    dir_fd = root_fd
    fd = -1
    try:
        for part in parts[:-1]:  # one directory open at a time, however deep the path
            child = os.open(part, _DIR_FLAGS, dir_fd=dir_fd)
            if dir_fd != root_fd:
                os.close(dir_fd)
            dir_fd = child
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=dir_fd)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            return None
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read(max_bytes + 1)[:max_bytes]
    except OSError:
        return None
    finally:
        if fd >= 0:
            os.close(fd)
        if dir_fd != root_fd:
            os.close(dir_fd)


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
