"""The docker backend: each job runs in a locked-down container, optionally a warm one.

Every container: no network (``network_mode="none"``), memory limit with no
swap, CPU quota, pids limit, read-only root, a size-limited tmpfs /work and a
small tmpfs /tmp, all capabilities dropped, ``no-new-privileges``, only
PATH/HOME/LANG in its environment. Its init (``docker-init``) and an idle
``sleep`` run as uid 65533, so the job's user (65534) can neither signal nor
trace them. Jobs run as 65534 through ``docker exec`` (see
``_docker_exec.py``): a launcher (``_docker_guest.LAUNCH``) reads the job's
command, environment and files from its stdin and becomes the command; in a
warm container it is started ahead, right after the previous job's reset, so
that a warm job pays no process start by the daemon. After every job a settle
step kills the job's processes, reads the cgroup counters, collects the
output files and (warm) resets what a job could leave for the next one (every
writable mount, SysV IPC; see ``_docker_host``): from the host where
the daemon is local and we are root (``_docker_host.py``, a few ms), else by
an exec of ``_docker_guest.SETTLE``. A container that does not come out of it
clean (processes left, files left, OOM) is removed and replaced.

How each end reason is found:

- ``timeout``: the exec's output stream is still open at the wall-time deadline;
- ``output_limit``: stdout or stderr passed ``Limits.output_bytes`` (reading
  stops at once and the job is killed), or /work has no free block or inode left;
- ``oom``: the memory cgroup's ``oom_kill`` counter grew during the job (or,
  when the settle step cannot run, the container's ``State.OOMKilled``);
- ``pids``: the pids cgroup's ``max`` event counter grew (a fork failed at
  the limit), or, when the settle step cannot even start, the container's
  pids count stands at its limit;
- ``exit``/``ok``: the exec's exit code.

Containers carry the labels ``cladeforge.sandbox=1``, ``cladeforge.run`` and
``cladeforge.owner`` (boot id, pid namespace, pid and start time of the host
process); ``start()`` removes those whose owner process is gone.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from ._base import (
    LLM_SOCKET,
    LLM_SOCKET_ENV,
    SANDBOX_GID,
    SANDBOX_UID,
    WORKDIR,
    EndReason,
    Job,
    Limits,
    Result,
    Sandbox,
    SandboxError,
)
from ._docker_exec import ExecHandle, ExecOutcome, StdinClosed, finish_exec, run_exec, start_exec
from ._docker_guest import LAUNCH, SETTLE, pack_job
from ._docker_host import host_paths
from ._docker_host import settle as host_settle
from ._docker_pool import LABEL, Pool, PoolKey, Slot, owner_label, stale_containers
from ._images import DEFAULT_BUILD_HINT, default_image, docker_client, image_exists
from ._job_files import files_not_written, job_files_problem
from ._seccomp import docker_seccomp_profile

logger = logging.getLogger(__name__)

KEEPER_USER = f"{SANDBOX_UID - 1}:{SANDBOX_GID - 1}"  # the container's init and idle process
JOB_USER = f"{SANDBOX_UID}:{SANDBOX_GID}"
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": WORKDIR, "LANG": "C.UTF-8"}
TMP_MB = 16
_SETTLE_SECONDS = 20.0


class DockerSandbox(Sandbox):
    """Runs jobs in Docker containers through the docker SDK.

    ``image``: the image tag (default: ``default_image()``, which ``build_image()``
    builds). ``build_hint``: the sentence the error for a missing image ends
    with, telling the user how to build it. ``warm``: how many ready containers to
    keep per distinct set of container-level limits (memory, cpus, pids, work
    dir size, LLM socket); 0 starts a fresh container for every job (cold).
    ``run_id``: a label for the containers (``cladeforge.run``), to tell runs
    apart in ``docker ps``. ``client``: a ``docker.DockerClient`` (default:
    from the environment). ``limits``: the limits the warm pool is filled for
    ahead of time (default ``Limits()``); jobs with other container-level
    limits get their own pool, filled as they come (at most ``max_pools``
    pools are kept, least recently used dropped first). ``host_settle``: settle
    containers from the host (kill, counters, collect, reset) where the daemon is
    local and we are root; False always uses an exec into the container, as
    with a remote daemon.

    Nothing happens on construction. ``start()`` connects, checks the image,
    removes stale containers of killed processes and fills the warm pool; the
    first ``run`` calls it if needed. ``run`` is thread-safe. ``close()``
    removes every container this sandbox made.
    """

    name = "docker"
    isolated = True

    def __init__(self, image: str | None = None, *, warm: int = 0, run_id: str | None = None,
                 client: object = None, limits: Limits | None = None,
                 max_pools: int = 4, host_settle: bool = True,
                 build_hint: str = DEFAULT_BUILD_HINT) -> None:
        if warm < 0 or max_pools < 1:
            raise SandboxError("DockerSandbox: warm must be >= 0 and max_pools >= 1")
        self._image = image
        self._warm = warm
        self._run_id = run_id or ""
        self._client = client
        self._limits = limits or Limits()
        self._max_pools = max_pools
        self._host_settle = host_settle
        self._build_hint = build_hint
        self._lock = threading.Lock()
        self._started = False
        self._closed = False
        self._pool: Pool | None = None
        self._refill: ThreadPoolExecutor | None = None

    @property
    def image(self) -> str:
        return self._image or default_image()

    def start(self) -> DockerSandbox:
        """Connect, check the image, remove stale containers, fill the warm pool. Idempotent."""
        with self._lock:
            if self._closed:
                raise SandboxError("this DockerSandbox is closed")
            if self._started:
                return self
            self._client = docker_client(self._client)
            self._image = self.image
            if not image_exists(self._client, self._image):
                raise SandboxError(f"sandbox image {self._image} not found: {self._build_hint}"
                                   " (or choose sandbox backend bwrap)")
            self.remove_stale()
            self._pool = Pool(self._create, self._remove, self._warm, self._max_pools)
            self._refill = ThreadPoolExecutor(max_workers=2,
                                              thread_name_prefix="cladeforge-docker-warm")
            self._started = True
        if self._warm:
            self._pool.fill(PoolKey.of(self._limits, None), self._refill)
            self._pool.wait_filled()
        return self

    def remove_stale(self) -> list[str]:
        """Remove containers of this backend whose owning host process is gone; return their ids."""
        client = docker_client(self._client)
        removed = []
        for container in stale_containers(client):
            self._remove(Slot(container))
            removed.append(container.id)
        if removed:
            logger.info("removed %d stale sandbox containers", len(removed))
        return removed

    def run(self, job: Job) -> Result:
        import docker
        import requests

        problem = job_files_problem(job.files, job.limits.workdir_mb << 20)
        if problem:
            return files_not_written(problem)
        try:
            self.start()
            return self._run(job)
        except (requests.exceptions.ConnectionError, docker.errors.DockerException,
                OSError) as exc:
            if _daemon_gone(exc):
                raise SandboxError(f"cannot reach the Docker daemon ({exc}): start dockerd or "
                                   "choose sandbox backend bwrap") from exc
            return Result(EndReason.ERROR, None, b"", b"", {}, 0.0, detail=f"docker: {exc}")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, refill = self._pool, self._refill
            self._pool = self._refill = None
        if refill is not None:
            refill.shutdown(wait=True, cancel_futures=True)
        if pool is not None:
            pool.close()

    # -- one job -------------------------------------------------------------------------

    def _run(self, job: Job) -> Result:
        assert self._pool is not None and self._refill is not None
        key = PoolKey.of(job.limits, job.llm_socket)
        slot = self._pool.acquire(key, self._refill)
        reusable = False
        try:
            base = slot.baseline
            outcome = self._exec_job(slot, job)
            report, files = self._settle(slot, job, wipe=self._warm > 0)
            reason, exit_code, detail = _judge(outcome, report, base, slot.container, job.limits)
            reusable = report is not None and not report["dirty"] and reason != EndReason.OOM
            return Result(reason, exit_code, outcome.stdout.getvalue(), outcome.stderr.getvalue(),
                          files, outcome.seconds, detail)
        finally:
            if reusable and self._warm:
                with contextlib.suppress(RuntimeError):  # RuntimeError: closing
                    slot.prepared = self._refill.submit(self._prepare, slot)
            self._pool.release(key, slot, reusable, self._refill)

    def _exec_job(self, slot: Slot, job: Job) -> ExecOutcome:
        env = {**job.env, **BASE_ENV}
        if job.llm_socket:
            env[LLM_SOCKET_ENV] = LLM_SOCKET
        payload = pack_job(job.command, env, job.files)
        api = self._client.api
        handle = _take(slot)
        if handle is not None:
            try:
                return finish_exec(api, handle, stdin=payload, output_bytes=job.limits.output_bytes,
                                   deadline=time.monotonic() + job.limits.wall_seconds)
            except StdinClosed as exc:  # the launcher started ahead is gone: start another
                logger.info("launcher in %s was gone (%s)", slot.container.short_id, exc)
        handle = self._prepare(slot)
        return finish_exec(api, handle, stdin=payload, output_bytes=job.limits.output_bytes,
                           deadline=time.monotonic() + job.limits.wall_seconds)

    def _prepare(self, slot: Slot) -> ExecHandle:
        """Start the launcher that will become the next job (``_docker_guest.LAUNCH``)."""
        return start_exec(self._client.api, slot.container.id, ["python3", "-c", LAUNCH],
                          user=JOB_USER, workdir=WORKDIR, stdin=True)

    def _settle(self, slot: Slot, job: Job, wipe: bool) -> tuple[dict | None, dict[str, bytes]]:
        """Kill the job's processes, read counters and output files, wipe; None if it failed.

        From the host where it can (``_docker_host``), else by an exec into the container.
        """
        import json

        import docker

        max_bytes = job.limits.workdir_mb << 20
        if slot.host is not None:
            try:
                report, files = host_settle(slot.host, SANDBOX_UID, WORKDIR, wipe, job.collect,
                                            max_bytes)
            except OSError as exc:  # the container died under us
                logger.info("settle from the host failed in %s: %s", slot.container.short_id, exc)
                return None, {}
            slot.baseline = {"oom_kill": report["oom_kill"], "pids_max": report["pids_max"]}
            return report, files
        command = ["python3", "-c", SETTLE, str(max_bytes), "1" if wipe else "0", *job.collect]
        container = slot.container
        try:
            out = run_exec(self._client.api, container.id, command, user=JOB_USER,
                           workdir="/", stdin=None,
                           deadline=time.monotonic() + _SETTLE_SECONDS,
                           output_bytes=max_bytes * max(1, len(job.collect)) + (1 << 20))
        except docker.errors.APIError as exc:
            logger.info("settle step failed in %s: %s", container.short_id, exc)
            return None, {}
        data = out.stdout.getvalue()
        head, _, body = data.partition(b"\n")
        if out.exit_code != 0 or not head.startswith(b"{"):
            logger.info("settle step failed in %s (exit %s): %s", container.short_id,
                        out.exit_code, out.stderr.getvalue()[-300:])
            return None, {}
        report = json.loads(head)
        slot.baseline = {"oom_kill": report["oom_kill"], "pids_max": report["pids_max"]}
        files, offset = {}, 0
        for rel, size in report.pop("files"):
            files[rel] = body[offset:offset + size]
            offset += size
        return report, files

    # -- containers ----------------------------------------------------------------------

    def _create(self, key: PoolKey) -> Slot:
        import docker

        mounts = []
        if key.llm_socket:
            mounts.append(docker.types.Mount(LLM_SOCKET, key.llm_socket, type="bind",
                                             read_only=True))
        container = self._client.containers.run(
            self.image, ["sleep", "infinity"], detach=True, init=True, user=KEEPER_USER,
            network_mode="none", read_only=True, working_dir=WORKDIR,
            mem_limit=f"{key.memory_mb}m", memswap_limit=f"{key.memory_mb}m",
            nano_cpus=int(key.cpus * 1e9), pids_limit=key.pids + 3,
            tmpfs={WORKDIR: f"rw,exec,nosuid,nodev,size={key.workdir_mb}m,"
                            f"uid={SANDBOX_UID},gid={SANDBOX_GID},mode=0700",
                   "/tmp": f"rw,noexec,nosuid,nodev,size={TMP_MB}m,mode=1777"},
            shm_size="1m", cap_drop=["ALL"],
            security_opt=["no-new-privileges", f"seccomp={docker_seccomp_profile()}"],
            environment=BASE_ENV, mounts=mounts, hostname="sandbox",
            labels={LABEL: "1", "cladeforge.run": self._run_id, "cladeforge.owner": owner_label()})
        host = None
        if self._host_settle:
            try:
                container.reload()
                host = host_paths(int(container.attrs["State"]["Pid"]), SANDBOX_UID, SANDBOX_GID)
            except (docker.errors.DockerException, KeyError, ValueError):
                host = None
        slot = Slot(container, host, prepared=Future())
        try:
            slot.prepared.set_result(self._prepare(slot))
        except BaseException:
            self._remove(slot)
            raise
        return slot

    def _remove(self, slot: Slot) -> None:
        import docker

        if slot.prepared is not None and slot.prepared.done():
            _close_handle(slot.prepared)
        elif slot.prepared is not None:
            slot.prepared.add_done_callback(_close_handle)
        container = slot.container
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if "already in progress" not in str(exc):
                logger.warning("could not remove sandbox container %s: %s", container.short_id,
                               exc)


def _take(slot: Slot) -> ExecHandle | None:
    """The launcher started ahead for ``slot`` (waiting for it if still starting), or None."""
    future, slot.prepared = slot.prepared, None
    if future is None:
        return None
    try:
        return future.result(timeout=60)
    except Exception as exc:  # noqa: BLE001 - any failure: start a launcher now instead
        logger.info("launcher started ahead failed: %s", exc)
        return None


def _close_handle(future: Future) -> None:
    if future.done() and not future.cancelled() and future.exception() is None:
        future.result().close()


def _judge(outcome: ExecOutcome, report: dict | None, base: dict, container,  # noqa: ANN001
           limits: Limits) -> tuple[EndReason, int | None, str]:
    """The end reason, exit code and detail of one job from what was observed."""
    exit_code = outcome.exit_code
    if report is not None:
        oom = (report["oom_kill"] or 0) > (base.get("oom_kill") or 0)
        pids = (report["pids_max"] or 0) > (base.get("pids_max") or 0)
        work_full = report["work_full"]
    else:  # the settle step could not run: ask the daemon
        oom, pids, work_full = _daemon_evidence(container, limits)
    if oom:
        return EndReason.OOM, None, f"memory limit of {limits.memory_mb} MB reached"
    if pids:
        return EndReason.PIDS, exit_code, f"process limit of {limits.pids} reached"
    if outcome.overflowed:
        return EndReason.OUTPUT_LIMIT, None, f"output passed {limits.output_bytes} bytes"
    if work_full:
        return EndReason.OUTPUT_LIMIT, exit_code, f"work dir full ({limits.workdir_mb} MB)"
    if outcome.timed_out:
        return EndReason.TIMEOUT, None, f"wall time of {limits.wall_seconds} s reached"
    if exit_code == 0:
        return EndReason.OK, 0, ""
    return EndReason.EXIT, exit_code, "" if exit_code is not None else "exit code unknown"


def _daemon_evidence(container, limits: Limits) -> tuple[bool, bool, bool]:  # noqa: ANN001
    import docker

    try:
        container.reload()
        oom = bool(container.attrs["State"].get("OOMKilled"))
        stats = container.stats(stream=False, one_shot=True)
        current = (stats.get("pids_stats") or {}).get("current") or 0
    except docker.errors.DockerException:
        return False, False, False
    return oom, current >= limits.pids, False


def _daemon_gone(exc: BaseException) -> bool:
    import requests

    while exc is not None:
        if isinstance(exc, (requests.exceptions.ConnectionError, ConnectionError,
                            FileNotFoundError)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
