"""The shared limits machinery: reason mapping, rlimits, cgroups, workspaces, the run loop."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from sandboxes import EndReason, Job, Limits, ProcessSandbox
from sandboxes._cgroups import CgroupEvents, CgroupHost, RunCgroup, detect
from sandboxes._host_dirs import Workspace, workspace
from sandboxes._limits import NO_CGROUPS, Launch, Observed, classify, rlimits_for, run_limited

LIMITS = Limits(memory_mb=128, pids=16, wall_seconds=3.0, output_bytes=4096, workdir_mb=8)
ALL = frozenset({"memory", "pids", "cpu"})
#: A sleeper whose command line carries a marker (``sleep`` refuses extra arguments).
SLEEP_60 = "SLEEP = 'import time; time.sleep(60)'\n"


def seen(returncode: int | None, **fields: object) -> Observed:
    return Observed(returncode=returncode, limits=LIMITS, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("observed", "reason", "code"), [
    (seen(0), EndReason.OK, 0),
    (seen(3), EndReason.EXIT, 3),
    (seen(-signal.SIGSEGV), EndReason.EXIT, None),
    (seen(-signal.SIGKILL, stopped="timeout"), EndReason.TIMEOUT, None),
    (seen(-signal.SIGKILL, stopped="stdout"), EndReason.OUTPUT_LIMIT, None),
    (seen(-signal.SIGKILL, stopped="stderr"), EndReason.OUTPUT_LIMIT, None),
    (seen(-signal.SIGKILL, stopped="workdir"), EndReason.OUTPUT_LIMIT, None),
    (seen(0, workdir_full=True), EndReason.OUTPUT_LIMIT, 0),
    (seen(-signal.SIGXFSZ), EndReason.OUTPUT_LIMIT, None),
    (seen(-signal.SIGXCPU), EndReason.TIMEOUT, None),
    (seen(-signal.SIGKILL, events=CgroupEvents(oom_kills=1), controllers=ALL), EndReason.OOM,
     None),
    (seen(-signal.SIGKILL, events=CgroupEvents(memory_failcnt=4), controllers=ALL),
     EndReason.OOM, None),
    (seen(1, events=CgroupEvents(memory_failcnt=4), controllers=ALL), EndReason.EXIT, 1),
    (seen(1, events=CgroupEvents(pids_refused=2), controllers=ALL), EndReason.PIDS, 1),
    (seen(0, events=CgroupEvents(oom_kills=1, pids_refused=1), controllers=ALL), EndReason.OK, 0),
    (seen(1, stderr_tail=b"MemoryError\n"), EndReason.OOM, 1),
    (seen(1, stderr_tail=b"MemoryError\n", controllers=ALL), EndReason.EXIT, 1),
    (seen(1, stderr_tail=b"BlockingIOError: [Errno 11] Resource temporarily unavailable"),
     EndReason.PIDS, 1),
    (seen(137, signal_exit_codes=True), EndReason.EXIT, None),
    (seen(137, signal_exit_codes=True, events=CgroupEvents(oom_kills=1), controllers=ALL),
     EndReason.OOM, None),
    (seen(137), EndReason.EXIT, 137),
])
def test_classify_maps_what_was_seen_to_a_reason(observed: Observed, reason: EndReason,
                                                 code: int | None) -> None:
    got, exit_code, detail = classify(observed)
    assert (got, exit_code) == (reason, code)
    assert detail or got is EndReason.OK


def test_ok_after_meeting_a_limit_says_so() -> None:
    _, _, detail = classify(seen(0, events=CgroupEvents(oom_kills=1), controllers=ALL))
    assert "memory limit" in detail


def test_rlimits_always_cap_core_file_size_and_cpu_time() -> None:
    found = dict(rlimits_for(LIMITS, ALL))
    assert found[resource.RLIMIT_CORE] == (0, 0)
    assert found[resource.RLIMIT_FSIZE] == (8 << 20, 8 << 20)
    assert found[resource.RLIMIT_CPU][0] >= LIMITS.wall_seconds
    assert resource.RLIMIT_AS not in found and resource.RLIMIT_NPROC not in found


def test_rlimits_stand_in_for_missing_cgroup_controllers(tmp_path: Path) -> None:
    launch = Launch(argv=["true"], env={}, cwd=tmp_path, limits=LIMITS,
                    space=Workspace(tmp_path, tmp_path, 1), run_as=(65534, 65534))
    found = dict(rlimits_for(LIMITS, frozenset(), launch))
    assert found[resource.RLIMIT_AS] == (128 << 20, 128 << 20)
    assert found[resource.RLIMIT_NPROC][0] >= LIMITS.pids
    as_root = Launch(argv=["true"], env={}, cwd=tmp_path, limits=LIMITS,
                     space=Workspace(tmp_path, tmp_path, 1), run_as=(0, 0))
    assert resource.RLIMIT_NPROC not in dict(rlimits_for(LIMITS, frozenset(), as_root))


def _fake_cgroup_tree(root: Path) -> dict[str, Path]:
    parents = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        for name in names.split(","):
            if name in ("memory", "pids", "cpu"):
                parent = root / name / path.lstrip("/")
                parent.mkdir(parents=True, exist_ok=True)
                (parent / "cgroup.procs").write_text("")
                parents[name] = parent
    return parents


def test_detect_v1_finds_a_parent_per_controller(tmp_path: Path) -> None:
    parents = _fake_cgroup_tree(tmp_path)
    if not parents:
        pytest.skip("this process is in no v1 memory/pids/cpu cgroup")
    host = detect(tmp_path)
    assert host.version == 1
    assert dict(host.parents) == parents


def test_detect_v2_enables_controllers_or_says_why_not(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids io\n")
    own = next((line.split(":", 2)[2] for line in Path("/proc/self/cgroup").read_text()
                .splitlines() if line.startswith("0::")), None)
    if own is None:
        pytest.skip("no v2 line in /proc/self/cgroup")
    parent = tmp_path / own.lstrip("/")
    parent.mkdir(parents=True, exist_ok=True)
    (parent / "cgroup.controllers").write_text("cpu memory pids io\n")
    (parent / "cgroup.subtree_control").mkdir()  # writing to it fails, as v2 does when busy
    refused = detect(tmp_path)
    assert refused.version == 2 and not refused.parents and "Delegate" in refused.note
    (parent / "cgroup.subtree_control").rmdir()
    (parent / "cgroup.subtree_control").write_text("")
    host = detect(tmp_path)
    assert host.controllers == {"memory", "pids", "cpu"}
    assert set((parent / "cgroup.subtree_control").read_text().split()) == {
        "+memory", "+pids", "+cpu"}


@pytest.fixture
def cgroup_host() -> CgroupHost:
    host = detect()
    if not {"memory", "pids"} <= host.controllers:
        pytest.skip(f"needs writable memory and pids cgroups ({host.note})")
    return host


def test_a_run_cgroup_holds_the_limits_and_is_removed(cgroup_host: CgroupHost) -> None:
    group = RunCgroup.create(cgroup_host, memory_mb=100, pids=7, cpus=0.5)
    dirs = set(group.dirs.values())
    try:
        assert all(d.is_dir() for d in dirs)
        if group.version == 1:
            assert int((group.dirs["memory"] / "memory.limit_in_bytes").read_text()) == 100 << 20
        assert (group.dirs["pids"] / "pids.max").read_text().strip() == "7"
    finally:
        group.remove()
    assert not any(d.exists() for d in dirs)


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_cgroups_of_a_dead_host_process_are_swept(cgroup_host: CgroupHost) -> None:
    stale = [parent / f"cladeforge-{_dead_pid()}-stale" for parent in cgroup_host.parents.values()]
    for path in stale:
        path.mkdir(exist_ok=True)
    RunCgroup.create(cgroup_host, 64, 8, 1.0).remove()
    assert not any(path.exists() for path in stale)


def test_a_workspace_is_a_size_limited_tmpfs_as_root_and_is_removed() -> None:
    with workspace(4) as space:
        assert space.work.is_dir()
        if os.geteuid() == 0:
            assert space.mounted
            assert os.statvfs(space.work).f_blocks * os.statvfs(space.work).f_frsize == 4 << 20
        assert not space.full()
    assert not space.base.exists()
    assert str(space.base) not in Path("/proc/self/mounts").read_text()


def test_a_plain_work_dir_counts_its_bytes(tmp_path: Path) -> None:
    space = Workspace(base=tmp_path, work=tmp_path, size_bytes=64 * 1024)
    assert not space.full()
    (tmp_path / "a").write_bytes(b"x" * 70 * 1024)
    assert space.full()


def test_workspaces_of_a_dead_host_process_are_swept(tmp_path: Path) -> None:
    stale = tmp_path / f"cladeforge-run-{_dead_pid()}-abc"
    (stale / "work").mkdir(parents=True)
    (stale / "work" / "file").write_text("left behind")
    with workspace(1, parent=str(tmp_path)):
        assert not stale.exists()


def run_python(code: str, limits: Limits = LIMITS, **launch: object) -> object:
    with workspace(limits.workdir_mb) as space:
        return run_limited(Launch(argv=[sys.executable, "-c", code], env={}, cwd=space.work,
                                  limits=limits, space=space), **launch)  # type: ignore[arg-type]


def test_both_streams_are_read_concurrently() -> None:
    limits = Limits(output_bytes=1 << 20, wall_seconds=20)
    code = ("import sys\nfor _ in range(64):\n"
            "    sys.stdout.write('o' * 4096); sys.stderr.write('e' * 4096)")
    result = run_python(code, limits)
    assert result.reason is EndReason.OK, result
    assert result.stdout == b"o" * (64 * 4096) and result.stderr == b"e" * (64 * 4096)


def test_the_output_cap_is_all_that_is_kept() -> None:
    result = run_python("import sys\nwhile True: sys.stdout.write('x' * 65536)")
    assert result.reason is EndReason.OUTPUT_LIMIT
    assert result.stdout == b"x" * LIMITS.output_bytes


@pytest.mark.parametrize("host", [None, NO_CGROUPS], ids=["cgroup", "no-cgroup"])
def test_when_the_command_exits_its_background_children_die(host: CgroupHost | None) -> None:
    marker = uuid.uuid4().hex
    code = ("import subprocess, sys\n"
            f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', '{marker}'])\n"
            "print('started')")
    result = run_python(code, host=host)
    assert result.reason is EndReason.OK, result
    assert not _processes_with(marker)


def test_a_process_that_leaves_its_session_is_killed_with_the_cgroup(
        cgroup_host: CgroupHost) -> None:
    marker = uuid.uuid4().hex
    code = (SLEEP_60 + "import os, sys, time\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            f"    os.execv(sys.executable, [sys.executable, '-c', SLEEP, '{marker}'])\n"
            "time.sleep(60)\n")
    result = run_python(code, Limits(wall_seconds=1.0), host=cgroup_host)
    assert result.reason is EndReason.TIMEOUT
    assert not _processes_with(marker)


def test_without_cgroups_a_killed_tree_is_gone_when_the_result_returns() -> None:
    # a chain of descendants, one of them in a session of its own: every one is dead
    # (not merely signalled) by the time run_limited returns
    marker = uuid.uuid4().hex
    code = (SLEEP_60 + "import os, sys\n"
            "for depth in range(6):\n"
            "    if os.fork():\n"
            "        break\n"
            "    if depth == 3:\n"
            "        os.setsid()\n"
            f"os.execv(sys.executable, [sys.executable, '-c', SLEEP, '{marker}'])\n")
    result = run_python(code, Limits(wall_seconds=1.0, pids=16), host=NO_CGROUPS)
    assert result.reason is EndReason.TIMEOUT, result
    assert not _processes_with(marker)


def test_threads_fit_in_the_address_space_that_stands_in_for_memory() -> None:
    # without a memory cgroup, 128 MB of address space must still hold 16 threads
    code = ("import threading, time\n"
            "threads = [threading.Thread(target=time.sleep, args=(0.2,)) for _ in range(16)]\n"
            "for t in threads: t.start()\n"
            "for t in threads: t.join()\n"
            "print('joined')")
    sandbox = ProcessSandbox(cgroups=False)
    for _ in range(5):
        result = sandbox.run(Job([sys.executable, "-c", code],
                                 limits=Limits(memory_mb=128, pids=32, wall_seconds=10)))
        assert result.reason is EndReason.OK and result.stdout == b"joined\n", result


def test_a_missing_command_is_an_error_not_an_exception() -> None:
    with workspace(1) as space:
        result = run_limited(Launch(argv=["/no/such/command"], env={}, cwd=space.work,
                                    limits=LIMITS, space=space))
    assert result.reason is EndReason.ERROR and "could not start" in result.detail


def _processes_with(marker: str) -> list[str]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cmdline = Path(entry.path, "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(entry.name)
    return found


def test_no_cgroup_or_workspace_is_left_behind() -> None:
    run_python("print('hi')")
    mine = f"cladeforge-{os.getpid()}-"
    for parent in detect().parents.values():
        assert not [p for p in os.listdir(parent) if p.startswith(mine)]
    assert not [p for p in os.listdir(tempfile.gettempdir())
                if p.startswith(f"cladeforge-run-{os.getpid()}-")]
