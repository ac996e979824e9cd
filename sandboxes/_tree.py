"""Walking a tree a candidate made: iterative, fd-relative, bounded, never following links.

A candidate controls what it leaves in its work dir (and ``/tmp``): a tree
thousands of levels deep, millions of names, symlinks to host paths,
directories it made unreadable. ``os.walk`` and ``shutil.rmtree`` recurse in
Python on 3.11 (``RecursionError`` past about a thousand levels) and work with
whole paths (``ENAMETOOLONG`` past ``PATH_MAX``). The walks here:

* keep their own stack (never recursive) and hold one directory descriptor
  open besides the top's, whatever the depth: a level is re-entered through
  ``..`` and its identity (device, inode) checked, so a directory moved
  during the walk stops it instead of leading it elsewhere;
* act on names relative to a directory descriptor (``dir_fd``), open
  directories with ``O_NOFOLLOW`` and never follow a symlink: a link to a
  host path is removed, chowned or sized as the link itself;
* stop after ``max_entries`` names or ``max_depth`` levels and say so
  (``complete`` is False; the callers treat that as "not empty", "full").

The module uses the standard library only (no dataclasses either), so its
source can also be run inside a container, e.g. by a settle script.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator

__all__ = ["MAX_DEPTH", "MAX_ENTRIES", "Walk", "chown_tree", "remove_contents", "remove_tree",
           "tree_size"]

#: Names one walk visits at most (a candidate may leave millions of empty files).
MAX_ENTRIES = 1_000_000
#: Levels one walk descends at most (each level costs a few hundred bytes of stack).
MAX_DEPTH = 100_000

FILE, DIR, LEFT = "file", "dir", "left"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OWNER_RWX = stat.S_IRWXU


class _Level:
    """A directory on the walk's current path: its identity, its name, what is left of it."""

    __slots__ = ("depth", "entries", "ident", "name")

    def __init__(self, ident: tuple[int, int], name: str, entries: list[tuple[str, bool]],
                 depth: int) -> None:
        self.ident = ident
        self.name = name
        self.entries = entries  # (name, is a directory), popped from the end
        self.depth = depth


class Walk:
    """One bounded walk below the open directory ``top_fd`` (which the caller keeps and closes).

    Iterating yields ``(kind, dir_fd, name)``, ``dir_fd`` being valid until the
    next step: ``FILE`` for anything that is not a directory (symlinks
    included), ``DIR`` for a directory before its contents, ``LEFT`` for it
    after them. ``loosen`` gives each directory its owner's rwx first, so that
    directories a candidate made unreadable or unwritable can be walked and
    emptied. ``complete`` is False after a walk that stopped early (a bound, a
    directory that could not be opened, a tree that changed under it);
    ``entries`` counts the names listed.
    """

    def __init__(self, top_fd: int, max_entries: int = MAX_ENTRIES,
                 max_depth: int = MAX_DEPTH, loosen: bool = False) -> None:
        self.top_fd = top_fd
        self.max_entries = max_entries
        self.max_depth = max_depth
        self.loosen = loosen
        self.complete = True
        self.entries = 0

    def __iter__(self) -> Iterator[tuple[str, int, str]]:
        top = os.fstat(self.top_fd)
        if self.loosen:
            _owner_rwx(self.top_fd, top)
        path = [_Level((top.st_dev, top.st_ino), "", self._list(self.top_fd), 0)]
        fd = self.top_fd
        try:
            while path:
                level = path[-1]
                if level.entries:
                    name, is_dir = level.entries.pop()
                    if not is_dir:
                        yield FILE, fd, name
                        continue
                    yield DIR, fd, name
                    if level.depth + 1 > self.max_depth:
                        self.complete = False
                        continue
                    child = self._enter(fd, name)
                    if child is None:
                        continue
                    info = os.fstat(child)
                    if fd != self.top_fd:
                        os.close(fd)
                    fd = child
                    path.append(_Level((info.st_dev, info.st_ino), name, self._list(fd),
                                       level.depth + 1))
                    continue
                path.pop()
                if not path:
                    break
                parent = self._leave(fd, path)  # closes ``fd``
                fd = self.top_fd if parent is None else parent
                if parent is None:  # the tree changed under the walk: stop, act on nothing more
                    self.complete = False
                    return
                yield LEFT, fd, level.name
        finally:
            if fd != self.top_fd:
                os.close(fd)

    def _list(self, fd: int) -> list[tuple[str, bool]]:
        """The entries of directory ``fd`` (up to what is left of the entry bound)."""
        found: list[tuple[str, bool]] = []
        room = self.max_entries - self.entries
        try:
            with os.scandir(fd) as scan:
                for entry in scan:
                    if len(found) >= room:
                        self.complete = False
                        break
                    try:
                        is_dir = entry.is_dir(follow_symlinks=False)
                    except OSError:
                        is_dir = False
                    found.append((entry.name, is_dir))
        except OSError:
            self.complete = False
        self.entries += len(found)
        found.reverse()  # popped from the end: visited in directory order
        return found

    def _enter(self, fd: int, name: str) -> int | None:
        """An open descriptor of the directory ``name`` in ``fd`` (never through a symlink)."""
        try:
            child = os.open(name, _DIR_FLAGS, dir_fd=fd)
        except PermissionError:
            if not self.loosen or not _chmod_no_follow(fd, name):
                self.complete = False
                return None
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError:
                self.complete = False
                return None
        except OSError:  # gone, or no longer a directory (a symlink: ELOOP)
            self.complete = False
            return None
        if self.loosen:
            _owner_rwx(child, os.fstat(child))
        return child

    def _leave(self, fd: int, path: list[_Level]) -> int | None:
        """The descriptor of the parent level after ``fd`` (closed), or None if it moved."""
        if len(path) == 1:
            if fd != self.top_fd:
                os.close(fd)
            return self.top_fd
        try:
            parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
        except OSError:
            parent = -1
        os.close(fd)
        if parent < 0:
            return None
        info = os.fstat(parent)
        if (info.st_dev, info.st_ino) != path[-1].ident:
            os.close(parent)
            return None
        return parent


def _owner_rwx(fd: int, info: os.stat_result) -> None:
    """Give directory ``fd`` its owner's rwx if it lacks them (a candidate's chmod 000)."""
    if info.st_mode & _OWNER_RWX != _OWNER_RWX:
        with contextlib.suppress(OSError):
            os.fchmod(fd, stat.S_IMODE(info.st_mode) | _OWNER_RWX)


def _chmod_no_follow(dir_fd: int, name: str) -> bool:
    """Give the directory ``name`` in ``dir_fd`` its owner's rwx, never through a symlink."""
    try:
        handle = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        info = os.fstat(handle)
        if not stat.S_ISDIR(info.st_mode):
            return False
        # an O_PATH descriptor cannot be fchmod-ed; its /proc link names exactly that inode
        os.chmod(f"/proc/self/fd/{handle}", stat.S_IMODE(info.st_mode) | _OWNER_RWX)
        return True
    except OSError:
        return False
    finally:
        os.close(handle)


def _open_top(directory: str | os.PathLike[str]) -> int:
    """An open descriptor of ``directory`` (not a symlink), made searchable if need be."""
    try:
        return os.open(directory, _DIR_FLAGS)
    except PermissionError:
        parent, _, name = os.fspath(directory).rstrip("/").rpartition("/")
        parent_fd = os.open(parent or "/", _DIR_FLAGS)
        try:
            if not _chmod_no_follow(parent_fd, name):
                raise
            return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        finally:
            os.close(parent_fd)


def remove_contents(directory: str | os.PathLike[str], *, max_entries: int = MAX_ENTRIES,
                    max_depth: int = MAX_DEPTH) -> bool:
    """Empty ``directory`` whatever its depth, never following symlinks; True if it is empty
    afterwards (False too when it cannot be opened or a bound stopped the walk).

    Directories a candidate made unreadable or unwritable are given their
    owner's rwx first (as far as this process may chmod them).
    """
    try:
        top = _open_top(directory)
    except OSError:
        return False
    try:
        walk = Walk(top, max_entries, max_depth, loosen=True)
        for kind, dir_fd, name in walk:
            with contextlib.suppress(OSError):
                if kind == FILE:
                    os.unlink(name, dir_fd=dir_fd)
                elif kind == LEFT:
                    os.rmdir(name, dir_fd=dir_fd)
        try:
            return not os.listdir(top)
        except OSError:
            return False
    finally:
        os.close(top)


def remove_tree(path: str | os.PathLike[str], *, max_entries: int = MAX_ENTRIES,
                max_depth: int = MAX_DEPTH) -> bool:
    """Remove ``path`` and everything below it (a symlink or file: itself only); True if it is
    gone afterwards."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode):
        with contextlib.suppress(OSError):
            os.unlink(path)
        return not os.path.lexists(path)
    remove_contents(path, max_entries=max_entries, max_depth=max_depth)
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def tree_size(directory: str | os.PathLike[str], *, max_entries: int = MAX_ENTRIES,
              max_depth: int = MAX_DEPTH) -> tuple[int, bool]:
    """``(bytes, complete)``: the disk blocks (``st_blocks * 512``) of everything below
    ``directory``, symlinks counted as themselves; ``complete`` is False when a bound or an
    unreadable directory stopped the walk (the sum is then too small)."""
    top = os.open(directory, _DIR_FLAGS)
    total = 0
    try:
        walk = Walk(top, max_entries, max_depth)
        for kind, dir_fd, name in walk:
            if kind != LEFT:
                with contextlib.suppress(OSError):
                    total += os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_blocks * 512
        return total, walk.complete
    finally:
        os.close(top)


def chown_tree(directory: str | os.PathLike[str], uid: int, gid: int, *,
               max_entries: int = MAX_ENTRIES, max_depth: int = MAX_DEPTH) -> bool:
    """Give ``directory`` and everything below it to ``uid:gid`` (symlinks themselves, never
    their targets); True if every entry was reached and changed."""
    top = os.open(directory, _DIR_FLAGS)
    done = True
    try:
        os.fchown(top, uid, gid)
        walk = Walk(top, max_entries, max_depth)
        for kind, dir_fd, name in walk:
            if kind != LEFT:
                try:
                    os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
                except OSError as exc:
                    if exc.errno != errno.ENOENT:
                        done = False
        return done and walk.complete
    finally:
        os.close(top)
