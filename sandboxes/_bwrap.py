"""The bubblewrap backend: every job in fresh namespaces over a read-only root.

Each run: ``bwrap --unshare-all --unshare-user --disable-userns`` (user, pid,
net, ipc, uts and cgroup namespaces; no nested user namespaces), a new
session, ``--die-with-parent``, ``--cap-drop ALL``, uid/gid 65534, a cleared
environment (the job's ``env`` plus ``PATH``, ``HOME=/work``, ``LANG``), and
the system-call policy of ``_seccomp`` (``--seccomp``: no keyrings, no ptrace
of the sandbox's init or of other processes, no io_uring, no mounts). The
network namespace has only ``lo``; nothing of the host's network is reachable.
bwrap reads its arguments (``--args``), the filter and the generated
``/etc/passwd``/``group`` from memory files, so the sandbox's command lines
show no host path. Its mount table still names the sources of the read-only
binds (the root filesystem's directory) and, without root, the work dir's
host directory: a bind mount shows its source path, and hiding it would mean
copying the tree.

The file system is a read-only tmpfs root with:

* ``root`` given (a Debian rootfs from ``sandboxes._images.ensure_rootfs()``):
  each top-level directory of it bound read-only;
* ``root=None``: only the host's system directories (``/usr``, ``/bin``,
  ``/lib*``, ``/sbin``) and a minimal ``/etc`` (the dynamic loader's files,
  ``alternatives``) read-only, plus a generated ``passwd``/``group`` that
  know only ``nobody``. Never ``/work``, ``/root``, ``/home`` or ``/tmp`` of the host;

and a fresh ``/proc``, a minimal ``/dev``, tmpfs ``/tmp`` and ``/dev/shm``
(each ``--size`` = the work-dir limit; their pages count against the memory limit), the work dir at
``/work`` and, when the job names one, the LLM gateway socket at ``LLM_SOCKET``.

When this process is root, bwrap itself runs as uid/gid 65534 on the host too
(after joining the run's cgroup), so even an escape from the namespaces finds
an unprivileged user; the work dir is a size-limited tmpfs owned by 65534 (see
``_host_dirs``). A root filesystem the host user 65534 cannot reach by path
(e.g. below ``/root``) is bound read-only into the run's private directory
first. Memory, pids, CPU, wall time and output are limited by ``_limits``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import stat
from dataclasses import replace
from pathlib import Path

from ._base import (
    LLM_SOCKET,
    LLM_SOCKET_ENV,
    SANDBOX_GID,
    SANDBOX_UID,
    WORKDIR,
    EndReason,
    Job,
    Result,
    Sandbox,
    SandboxError,
)
from ._cgroups import CgroupHost, detect
from ._host_dirs import MB, Workspace, workspace
from ._images import DEFAULT_BUILD_HINT
from ._job_files import collect_files, files_not_written, job_files_problem, write_files
from ._limits import NO_CGROUPS, Launch, fallback_env, limits_enforcement, run_limited
from ._seccomp import seccomp_program

logger = logging.getLogger(__name__)

BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": WORKDIR, "LANG": "C.UTF-8"}
HOST_SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
HOST_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives")
#: Top-level entries of a root filesystem the sandbox replaces or never shows.
ROOTFS_SKIP = frozenset({"proc", "dev", "sys", "tmp", "work", "run", "home", "root", "mnt",
                         "media", "lost+found"})
_PASSWD = "nobody:x:65534:65534:nobody:/work:/usr/sbin/nologin\n"
_GROUP = "nogroup:x:65534:\n"
#: Processes bwrap keeps besides the command: the outer bwrap and the namespace's init.
BWRAP_PIDS = 2


class BwrapSandbox(Sandbox):
    """Runs each job with bubblewrap in fresh namespaces, as uid 65534, over a read-only root.

    ``root``: a root filesystem directory to use as ``/`` (read-only), e.g.
    ``sandboxes._images.ensure_rootfs()``; None uses the host's system
    directories only. ``bwrap``: the bubblewrap executable (name or path).
    ``tmp_dir``: where per-run host directories are made (default: the system
    temp dir). ``cgroups``: limit memory/pids/CPU with a per-run cgroup when this
    process can make one (False: rlimits only, see ``_limits``). ``build_hint``:
    the sentence the error for a missing ``root`` ends with, telling the user
    how to build it. Commands run in ``/work``; ``python3`` is the interpreter.
    """

    name = "bwrap"
    isolated = True
    python = "python3"

    def __init__(self, root: Path | None = None, *, bwrap: str = "bwrap",
                 tmp_dir: str | None = None, cgroups: bool = True,
                 build_hint: str = DEFAULT_BUILD_HINT) -> None:
        self.root = Path(root) if root is not None else None
        self.bwrap = bwrap
        self.tmp_dir = tmp_dir
        self.cgroups = cgroups
        self.build_hint = build_hint
        self._announced = False

    def __repr__(self) -> str:
        return f"BwrapSandbox(root={self.root!r})"

    def executable(self) -> str:
        """The bwrap path, or a SandboxError saying how to get it."""
        found = shutil.which(self.bwrap)
        if found is None:
            raise SandboxError(f"bubblewrap ({self.bwrap!r}) is not installed: install the "
                               "'bubblewrap' package, or use the docker sandbox")
        if self.root is not None and not (self.root / "usr").is_dir():
            raise SandboxError(f"the bwrap root filesystem {self.root} is missing or incomplete:"
                               f" {self.build_hint}, or use root=None")
        return found

    def run(self, job: Job) -> Result:
        exe = self.executable()
        owner = (SANDBOX_UID, SANDBOX_GID) if os.geteuid() == 0 else None
        limits = job.limits
        problem = job_files_problem(job.files, limits.workdir_mb * MB)
        if problem:
            return files_not_written(problem)
        host = detect() if self.cgroups else NO_CGROUPS
        with workspace(limits.workdir_mb, owner, self.tmp_dir) as space:
            self._announce(host, space.enforcement)
            write_files(space.work, job.files)
            if owner is not None:
                space.chown_tree(*owner)
            status_r, status_w = os.pipe()
            hidden = [status_w]
            try:
                # bwrap reads its arguments and the filter from memory files: its command
                # line (and that of the sandbox's init, /proc/1/cmdline) shows no host path
                arguments = self._arguments(job, space, owner, status_w, hidden, host)
                hidden.append(_memfd("args", b"".join(a.encode() + b"\0" for a in arguments)))
                argv = [exe, "--args", str(hidden[-1]), "--", *job.command]
                result = run_limited(Launch(
                    argv=argv, env={"PATH": BASE_ENV["PATH"]}, cwd=Path("/"), limits=limits,
                    space=space, run_as=owner, extra_pids=BWRAP_PIDS, signal_exit_codes=True,
                    pass_fds=tuple(hidden)), host)
                os.close(status_w)
                hidden.remove(status_w)
                ran = _command_exited(status_r)
            finally:
                os.close(status_r)
                for fd in hidden:
                    os.close(fd)
            if not ran and result.reason is EndReason.EXIT:
                # bwrap itself failed: setting up the mounts, or exec of the command
                message = result.stderr.decode(errors="replace").strip().splitlines()
                result = replace(result, reason=EndReason.ERROR, exit_code=None,
                                 detail="bubblewrap could not set up the sandbox: "
                                 + (message[-1] if message else f"({result.detail})"))
            files = collect_files(space.work, job.collect, space.size_bytes)
        return replace(result, files=files)

    def _announce(self, host: CgroupHost, workdir: str) -> None:
        if not self._announced:  # once per instance: how limits are enforced here
            self._announced = True
            enforced = limits_enforcement(host)
            logger.info("bwrap sandbox: %s; work dir size: %s", enforced, workdir)

    def _arguments(self, job: Job, space: Workspace, owner: tuple[int, int] | None,
                   status_fd: int, hidden: list[int], host: CgroupHost) -> list[str]:
        """bwrap's arguments before ``--``; memory files it reads are appended to ``hidden``."""
        args = ["--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
                "--new-session", "--cap-drop", "ALL", "--uid", str(SANDBOX_UID),
                "--gid", str(SANDBOX_GID), "--hostname", "sandbox", "--clearenv"]
        env = {**job.env, **fallback_env(host), **BASE_ENV}
        if job.llm_socket is not None:
            env[LLM_SOCKET_ENV] = LLM_SOCKET
        for key, value in env.items():
            args += ["--setenv", key, value]
        args += self._root_binds(space, owner, hidden)
        size = str(job.limits.workdir_mb * MB)
        args += ["--proc", "/proc", "--dev", "/dev", "--size", size, "--tmpfs", "/dev/shm",
                 "--size", size, "--tmpfs", "/tmp",
                 "--bind", str(space.work), WORKDIR]
        if job.llm_socket is not None:
            args += ["--ro-bind", job.llm_socket, LLM_SOCKET]
        hidden.append(_memfd("seccomp", seccomp_program()))
        args += ["--chdir", WORKDIR, "--remount-ro", "/", "--json-status-fd", str(status_fd),
                 "--seccomp", str(hidden[-1])]
        return args

    def _root_binds(self, space: Workspace, owner: tuple[int, int] | None,
                    hidden: list[int]) -> list[str]:
        if self.root is None:
            return _host_binds(hidden)
        source = self.root
        if owner is not None and not _reachable_by_others(source):
            source = space.bind_readonly(source, "rootfs")
        args = []
        for entry in sorted(os.scandir(source), key=lambda e: e.name):
            if entry.name in ROOTFS_SKIP or entry.name.startswith("."):
                continue
            if entry.is_symlink():
                args += ["--symlink", os.readlink(entry.path), f"/{entry.name}"]
            elif entry.is_dir():
                args += ["--ro-bind", entry.path, f"/{entry.name}"]
        return args


def _host_binds(hidden: list[int]) -> list[str]:
    args = []
    for name in HOST_SYSTEM_DIRS:
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), f"/{name}"]
        elif path.is_dir():
            args += ["--ro-bind", str(path), f"/{name}"]
    for name in HOST_ETC:
        if (Path("/etc") / name).exists():
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    for name, text in (("passwd", _PASSWD), ("group", _GROUP)):  # copied in: no host path
        hidden.append(_memfd(name, text.encode("ascii")))
        args += ["--perms", "0644", "--file", str(hidden[-1]), f"/etc/{name}"]
    return args


def _memfd(name: str, data: bytes) -> int:
    """A memory file holding ``data``, positioned at its start, for bwrap to read."""
    fd = os.memfd_create(f"cladeforge-bwrap-{name}", os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        os.close(fd)
        raise
    return fd


def _reachable_by_others(path: Path) -> bool:
    """True when every directory from / down to ``path`` is searchable by any user."""
    current = path.resolve()
    for directory in [current, *current.parents]:
        with contextlib.suppress(OSError):
            if not os.stat(directory).st_mode & stat.S_IXOTH:
                return False
    return True


def _command_exited(status_fd: int) -> bool:
    """Whether bwrap reported the command's own exit (``exit-code`` on --json-status-fd).

    bwrap reports it only for a command that was set up, exec'd and ended; not
    when its setup or the exec failed (nor when the run was killed from outside).
    """
    os.set_blocking(status_fd, False)
    data = b""
    with contextlib.suppress(BlockingIOError, OSError):
        while chunk := os.read(status_fd, 65536):
            data += chunk
            if len(data) > 1 << 16:
                break
    decoder = json.JSONDecoder()
    text = data.decode(errors="replace")
    index = 0
    while index < len(text):
        try:
            obj, index = decoder.raw_decode(text, index)
        except ValueError:
            return False
        if isinstance(obj, dict) and "exit-code" in obj:
            return True
        while index < len(text) and text[index].isspace():
            index += 1
    return False
