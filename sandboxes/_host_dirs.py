"""Per-run host directories: the work dir (size-limited) and private files beside it.

Each run gets a fresh private base directory ``<tmp>/cladeforge-<pid>-<token>/``
holding ``work/`` (the work dir) and whatever else the backend needs
(a generated ``/etc/passwd``, read-only bind mounts). How the work dir's size
is limited:

* **tmpfs** (when this process may mount, i.e. runs as root): ``work/`` is a
  tmpfs mounted with ``size=<workdir_mb>``. The kernel refuses writes past the
  size (``ENOSPC``), nothing reaches the host disk, and the pages are charged
  to the memory cgroup of the writer. A run that leaves it (nearly) full ends
  with ``output_limit``.
* **plain** (fallback): a plain directory. ``RLIMIT_FSIZE`` caps each file at
  the limit (a larger write raises ``SIGXFSZ``) and the run loop polls the
  total size, killing the run when it passes the limit. This is weaker: many
  files may overshoot by what is written between two polls.

Directories of a host process that died (killed before its cleanup ran) are
swept on the next run: their mounts are detached and the directory removed.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ._tree import chown_tree, remove_tree, tree_size

logger = logging.getLogger(__name__)

PREFIX = "cladeforge-run-"
MB = 1 << 20
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_REMOUNT, _MS_BIND, _MS_REC = 1, 2, 4, 32, 4096, 16384
_MNT_DETACH = 2
#: A tmpfs work dir with less room than this left counts as full.
FULL_SLACK = 64 * 1024


@dataclass
class Workspace:
    """One run's host directories. ``work`` is the work dir; ``base`` is private to the host."""

    base: Path
    work: Path
    size_bytes: int
    mounted: bool = False
    mounts: list[Path] = field(default_factory=list)

    @property
    def enforcement(self) -> str:
        """How the work-dir size is limited: ``tmpfs`` or ``rlimit+poll``."""
        return "tmpfs" if self.mounted else "rlimit+poll"

    def used_bytes(self) -> int:
        """Bytes the work dir holds now (tmpfs: statvfs; plain: a bounded walk not following
        symlinks, see ``_tree``). A plain work dir with more names than ``MAX_ENTRIES`` or
        deeper than ``MAX_DEPTH`` counts as full: its size cannot be told cheaply."""
        if self.mounted:
            st = os.statvfs(self.work)
            return (st.f_blocks - st.f_bfree) * st.f_frsize
        try:
            total, complete = tree_size(self.work)
        except OSError:  # the candidate made the work dir itself unreadable
            return self.size_bytes
        return total if complete else max(total, self.size_bytes)

    def full(self) -> bool:
        """True when the work dir reached its size limit (tmpfs: or ran out of inodes)."""
        if self.mounted and os.statvfs(self.work).f_ffree == 0:
            return True
        return self.used_bytes() >= self.size_bytes - (FULL_SLACK if self.mounted else 0)

    def chown_tree(self, uid: int, gid: int) -> None:
        """Give the work dir and everything in it to ``uid:gid`` (the sandbox user)."""
        chown_tree(self.work, uid, gid)

    def bind_readonly(self, source: Path, name: str) -> Path:
        """Bind ``source`` read-only at ``base/name`` and return that path (root only).

        Used to reach a directory the sandbox user could not traverse to
        (e.g. a root filesystem under ``/root/.cache``) through ``base``.
        """
        target = self.base / name
        target.mkdir()
        _mount(str(source), target, None, _MS_BIND | _MS_REC, None)
        self.mounts.append(target)
        _mount("none", target, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV,
               None)
        return target


@contextlib.contextmanager
def workspace(size_mb: int, owner: tuple[int, int] | None = None,
              parent: str | None = None) -> Iterator[Workspace]:
    """A fresh workspace whose work dir holds at most ``size_mb`` MB; removed on exit.

    ``owner`` (uid, gid) owns the work dir (the sandbox user); None keeps
    this process's user. ``parent`` is where base directories are made
    (default: the system temp dir).
    """
    parent = parent or tempfile.gettempdir()
    sweep_stale(parent)
    base = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=parent))
    space = Workspace(base=base, work=base / "work", size_bytes=size_mb * MB)
    try:
        base.chmod(0o711)  # the sandbox user may pass through, not list
        space.work.mkdir(mode=0o700)
        space.mounted = _mount_tmpfs(space.work, size_mb, owner)
        if owner is not None and not space.mounted:
            os.chown(space.work, *owner)
        yield space
    finally:
        _remove(space)


def _mount_tmpfs(target: Path, size_mb: int, owner: tuple[int, int] | None) -> bool:
    if os.geteuid() != 0:
        return False
    uid, gid = owner if owner is not None else (os.getuid(), os.getgid())
    options = f"size={size_mb}m,nr_inodes={max(1024, size_mb * 256)},mode=0700,uid={uid},gid={gid}"
    try:
        _mount("tmpfs", target, "tmpfs", _MS_NOSUID | _MS_NODEV, options)
    except OSError as exc:
        logger.warning("cannot mount a size-limited tmpfs work dir (%s); falling back to "
                       "RLIMIT_FSIZE and polling its size", exc)
        return False
    return True


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _mount(source: str, target: Path, fstype: str | None, flags: int, data: str | None) -> None:
    rc = _libc().mount(source.encode(), os.fsencode(target),
                       fstype.encode() if fstype else None, flags,
                       data.encode() if data else None)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def _umount(target: str) -> None:
    if _libc().umount2(os.fsencode(target), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):  # EINVAL: not a mount point (any more)
            logger.warning("cannot unmount %s: %s", target, os.strerror(err))


def _mounts_below(base: str) -> list[str]:
    found = []
    try:
        with open("/proc/self/mounts", encoding="utf-8") as handle:
            for line in handle:
                point = line.split()[1].replace("\\040", " ")
                if point == base or point.startswith(base + "/"):
                    found.append(point)
    except OSError:
        return []
    return sorted(found, key=len, reverse=True)  # deepest first


def _remove(space: Workspace) -> None:
    for point in _mounts_below(str(space.base)):
        _umount(point)
    _rmtree(space.base)


def _rmtree(path: Path) -> None:
    # iterative and fd-relative: a candidate's tree may be deeper than any recursion allows
    if not remove_tree(path):
        logger.warning("could not remove the sandbox workspace %s", path)


def sweep_stale(parent: str) -> list[Path]:
    """Remove workspaces under ``parent`` whose owning process is gone; return them."""
    removed = []
    try:
        entries = os.listdir(parent)
    except OSError:
        return []
    for name in entries:
        if not name.startswith(PREFIX):
            continue
        owner = name[len(PREFIX):].split("-", 1)[0]
        if not owner.isdigit() or int(owner) == os.getpid() or pid_alive(int(owner)):
            continue
        stale = Path(parent) / name
        _remove(Workspace(base=stale, work=stale / "work", size_bytes=0))
        logger.info("removed the stale sandbox workspace %s (its process %s is gone)",
                    stale, owner)
        removed.append(stale)
    return removed


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (possibly as another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
