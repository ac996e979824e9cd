"""The process backend: a plain subprocess with limits, for trusted code only.

It isolates nothing: the command runs as this process's user and sees the
host's file system, network and processes. What it does give: a fresh temp
work dir as the current directory (size-limited like bwrap's, see
``_host_dirs``), a cleared environment (the job's ``env`` plus ``PATH``,
``HOME`` = the work dir, ``LANG``), and the limits of ``_limits``: rlimits,
its own session killed as a whole, a cgroup for memory/pids/CPU when one can be
made. Without a mount namespace the work dir is *not* at ``WORKDIR``
(``/work``): commands must use relative paths (or ``$HOME``). The LLM socket,
if any, is passed by its host path in ``LLM_SOCKET_ENV``. A job whose files cannot be
written (a name too long for the file system, see ``job_files_problem``) ends with
``EndReason.ERROR`` without running.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import replace

from ._base import LLM_SOCKET_ENV, Job, Result, Sandbox
from ._cgroups import detect
from ._host_dirs import MB, workspace
from ._job_files import collect_files, files_not_written, job_files_problem, write_files
from ._limits import NO_CGROUPS, Launch, fallback_env, limits_enforcement, run_limited

logger = logging.getLogger(__name__)

SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


class ProcessSandbox(Sandbox):
    """Runs each job as a plain subprocess in a fresh temp dir: limits, but no isolation.

    ``tmp_dir``: where per-run work dirs are made (default: the system temp
    dir). ``cgroups``: limit memory/pids/CPU with a per-run cgroup when this
    process can make one (False: rlimits only, see ``_limits``). The directory
    of ``sys.executable`` comes first on ``PATH``, so ``python3`` in a command
    is this interpreter's.
    """

    name = "process"
    isolated = False
    python = "python3"

    def __init__(self, *, tmp_dir: str | None = None, cgroups: bool = True) -> None:
        self.tmp_dir = tmp_dir
        self.cgroups = cgroups
        self._announced = False
        logger.warning("process backend: no isolation; use only for trusted code")

    def __repr__(self) -> str:
        return "ProcessSandbox()"

    def run(self, job: Job) -> Result:
        limits = job.limits
        problem = job_files_problem(job.files, limits.workdir_mb * MB)
        if problem:
            return files_not_written(problem)
        host = detect() if self.cgroups else NO_CGROUPS
        with workspace(limits.workdir_mb, None, self.tmp_dir) as space:
            if not self._announced:  # once per instance: how limits are enforced here
                self._announced = True
                enforced = limits_enforcement(host)
                logger.info("process sandbox: %s; work dir size: %s", enforced,
                            space.enforcement)
            try:
                write_files(space.work, job.files)
            except OSError as exc:  # e.g. the work dir's inodes ran out
                return files_not_written(f"{exc.strerror or exc}: {str(exc.filename)[:80]!r}")
            env = {**job.env, **fallback_env(host),
                   "PATH": f"{os.path.dirname(sys.executable)}:{SYSTEM_PATH}",
                   "HOME": str(space.work), "LANG": "C.UTF-8"}
            if job.llm_socket is not None:
                env[LLM_SOCKET_ENV] = job.llm_socket
            result = run_limited(Launch(argv=job.command, env=env, cwd=space.work,
                                        limits=limits, space=space), host)
            files = collect_files(space.work, job.collect, space.size_bytes)
        return replace(result, files=files)
