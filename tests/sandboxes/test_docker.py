"""The docker backend against the real daemon: limits, reasons, isolation, warm pool, cleanup."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandboxes import (
    LLM_SOCKET,
    LLM_SOCKET_ENV,
    DockerSandbox,
    EndReason,
    Job,
    Limits,
    SandboxError,
    build_image,
)
from tests.sandboxes._docker_available import require_docker

ROOT = Path(__file__).parents[2]


def py(code: str, **job: object) -> Job:
    return Job(["python3", "-c", textwrap.dedent(code)], **job)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def image() -> str:
    require_docker()
    return build_image()


@pytest.fixture(scope="module")
def docker_client(image: str):  # noqa: ANN201
    import docker

    return docker.from_env()


@pytest.fixture(scope="module")
def warm(image: str) -> Iterator[DockerSandbox]:
    with DockerSandbox(image, warm=2, run_id=f"test-{uuid.uuid4().hex[:8]}") as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def cold(image: str) -> Iterator[DockerSandbox]:
    with DockerSandbox(image, warm=0, run_id=f"test-{uuid.uuid4().hex[:8]}") as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def warm_exec(image: str) -> Iterator[DockerSandbox]:
    """Settling by an exec into the container, as with a remote daemon or without root."""
    with DockerSandbox(image, warm=2, run_id=f"test-{uuid.uuid4().hex[:8]}",
                       host_settle=False) as sandbox:
        yield sandbox


@pytest.fixture(params=["warm", "cold", "warm_exec"])
def sandbox(request: pytest.FixtureRequest) -> DockerSandbox:
    return request.getfixturevalue(request.param)


def containers_of(client, run_id: str) -> list:  # noqa: ANN001
    return client.containers.list(all=True, filters={"label": f"cladeforge.run={run_id}"})


# -- reasons ----------------------------------------------------------------------------


def test_ok_with_stdout_stderr_and_input_files(sandbox: DockerSandbox) -> None:
    result = sandbox.run(Job(["python3", "main.py"], files={
        "main.py": b"import sys, json\nprint(open('data/in.json').read())\n"
                   b"print('to stderr', file=sys.stderr)\n",
        "data/in.json": b'{"x": 1}'}))
    assert result.reason is EndReason.OK, result
    assert result.exit_code == 0
    assert result.stdout == b'{"x": 1}\n' and result.stderr == b"to stderr\n"
    assert result.wall_seconds > 0


def test_a_non_zero_exit_is_exit(sandbox: DockerSandbox) -> None:
    result = sandbox.run(py("import sys; print('bye'); sys.exit(3)"))
    assert (result.reason, result.exit_code, result.stdout) == (EndReason.EXIT, 3, b"bye\n")


def test_wall_time_limit_is_timeout(sandbox: DockerSandbox) -> None:
    result = sandbox.run(py("print('start', flush=True)\nwhile True: pass",
                            limits=Limits(wall_seconds=1.0)))
    assert result.reason is EndReason.TIMEOUT, result
    assert result.exit_code is None and result.stdout == b"start\n"


def test_memory_limit_is_oom(sandbox: DockerSandbox) -> None:
    result = sandbox.run(py("x = bytearray(400 << 20); print('survived')",
                            limits=Limits(memory_mb=96)))
    assert result.reason is EndReason.OOM, result
    assert b"survived" not in result.stdout


def test_process_limit_is_pids(sandbox: DockerSandbox) -> None:
    bomb = "i=0; while [ $i -lt 100 ]; do sleep 30 & i=$((i+1)); done; wait"
    result = sandbox.run(Job(["sh", "-c", bomb], limits=Limits(pids=16, wall_seconds=10)))
    assert result.reason is EndReason.PIDS, result


def test_too_much_stdout_is_output_limit_and_is_capped(sandbox: DockerSandbox) -> None:
    limits = Limits(output_bytes=10_000, wall_seconds=20)
    result = sandbox.run(py("import sys\nwhile True: sys.stdout.write('x' * 65536)",
                            limits=limits))
    assert result.reason is EndReason.OUTPUT_LIMIT, result
    assert result.stdout == b"x" * 10_000


def test_a_full_work_dir_is_output_limit(sandbox: DockerSandbox) -> None:
    code = """
    try:
        with open('big', 'wb') as f:
            while True: f.write(b'x' * (1 << 20))
    except OSError as exc:
        print(exc.errno)
    """
    result = sandbox.run(py(code, limits=Limits(workdir_mb=8)))
    assert result.reason is EndReason.OUTPUT_LIMIT, result  # even though it exited 0
    assert result.stdout == b"28\n"  # ENOSPC


def test_collect_reads_regular_files_only(sandbox: DockerSandbox) -> None:
    code = """
    import os
    os.makedirs('out', exist_ok=True)
    open('out/result.txt', 'w').write('42')
    os.symlink('/etc/passwd', 'link')
    os.mkfifo('fifo')
    open('big', 'wb').write(b'x' * (2 << 20))
    """
    result = sandbox.run(py(code, limits=Limits(workdir_mb=2 + 1),
                            collect=["out/result.txt", "link", "fifo", "missing", "out"]))
    assert result.reason is EndReason.OK, result
    assert dict(result.files) == {"out/result.txt": b"42"}


# -- isolation --------------------------------------------------------------------------


def test_environment_is_only_what_the_job_names(sandbox: DockerSandbox,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLADEFORGE_HOST_SECRET", "s3cret")
    result = sandbox.run(py("import os, json; print(json.dumps(dict(os.environ)))",
                            env={"TASK": "sum"}))
    env = __import__("json").loads(result.stdout)
    assert env["TASK"] == "sum"
    assert set(env) == {"TASK", "PATH", "HOME", "LANG"}
    assert b"s3cret" not in result.stdout


def test_non_root_no_capabilities_no_new_privileges(sandbox: DockerSandbox) -> None:
    result = sandbox.run(py("""
    import os
    status = dict(l.split(':', 1) for l in open('/proc/self/status'))
    print(os.getuid(), os.getgid(), status['CapEff'].strip(), status['NoNewPrivs'].strip())
    """))
    assert result.stdout.split() == [b"65534", b"65534", b"0000000000000000", b"1"]


def test_root_is_read_only_and_work_dir_writable(sandbox: DockerSandbox) -> None:
    result = sandbox.run(py("""
    import os
    for path in ('/etc/evil', '/usr/evil', '/evil', '/work/ok', '/tmp/ok'):
        try:
            open(path, 'w').write('x'); print(path, 'written')
        except OSError as exc:
            print(path, exc.errno)
    print(os.getcwd())
    """))
    lines = result.stdout.decode().splitlines()
    assert lines[:3] == ["/etc/evil 30", "/usr/evil 30", "/evil 30"]  # EROFS
    assert lines[3:] == ["/work/ok written", "/tmp/ok written", "/work"]


def test_no_network_interface_but_loopback(sandbox: DockerSandbox) -> None:
    result = sandbox.run(py("""
    import os
    print(sorted(os.listdir('/sys/class/net')))
    print([l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]])
    """))
    assert result.stdout.decode().split("\n")[:2] == ["['lo']", "['lo']"]


def test_llm_socket_is_mounted_and_named(sandbox: DockerSandbox, tmp_path: Path) -> None:
    path = tmp_path / "llm.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    os.chmod(path, 0o666)
    server.listen(1)

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"hello " + conn.recv(100))

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    result = sandbox.run(py("""
    import os, socket
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.environ['CLADEFORGE_LLM_SOCKET'])
    s.sendall(b'agent')
    print(s.recv(100).decode())
    """, llm_socket=str(path)))
    thread.join(5)
    server.close()
    assert result.reason is EndReason.OK, result
    assert result.stdout == b"hello agent\n"
    assert LLM_SOCKET_ENV == "CLADEFORGE_LLM_SOCKET" and LLM_SOCKET.endswith(".sock")


# -- warm pool --------------------------------------------------------------------------


@pytest.mark.parametrize("host_settle", [True, False], ids=["host-settle", "exec-settle"])
def test_warm_pool_reuses_one_container_and_resets_it(image: str, docker_client,  # noqa: ANN001
                                                      host_settle: bool) -> None:
    run_id = f"test-{uuid.uuid4().hex[:8]}"
    with DockerSandbox(image, warm=1, run_id=run_id, host_settle=host_settle) as sandbox:
        dirty = sandbox.run(Job(["sh", "-c", "echo left > /work/left; echo t > /tmp/t; "
                                 "echo s > /dev/shm/s; mkdir -p /work/d; chmod 000 /work/d; "
                                 "setsid sleep 1000 > /dev/null 2>&1 < /dev/null & echo started"]))
        assert dirty.reason is EndReason.OK and dirty.stdout == b"started\n", dirty
        probe = sandbox.run(py("""
        import os
        me = os.getpid()
        procs = [p for p in os.listdir('/proc') if p.isdigit() and int(p) != me
                 and os.stat(f'/proc/{p}').st_uid == os.getuid()]
        print(os.listdir('/work'), os.listdir('/tmp'), os.listdir('/dev/shm'), procs)
        """))
        assert probe.stdout == b"[] [] [] []\n", probe
        assert len(containers_of(docker_client, run_id)) == 1  # the same container, reset
    assert containers_of(docker_client, run_id) == []


@pytest.mark.parametrize("host_settle", [True, False], ids=["host-settle", "exec-settle"])
def test_warm_pool_resets_ipc_objects_in_place(image: str, docker_client,  # noqa: ANN001
                                               host_settle: bool) -> None:
    """POSIX message queues and System V objects are removed by the reset itself: the same
    container serves the next job (not a replacement), and it finds none of them."""
    run_id = f"test-{uuid.uuid4().hex[:8]}"
    with DockerSandbox(image, warm=1, run_id=run_id, host_settle=host_settle) as sandbox:
        left = sandbox.run(py("""
        import ctypes, os
        rt = ctypes.CDLL("librt.so.1")
        libc = ctypes.CDLL(None)
        print(rt.mq_open(b"/left", os.O_CREAT | os.O_RDWR, 0o666, None) >= 0,
              libc.syscall(29, 4242, 4096, 0o1666) >= 0)  # shmget(IPC_CREAT)
        """))
        assert left.stdout == b"True True\n", left
        before = {c.id for c in containers_of(docker_client, run_id)}
        probe = sandbox.run(py("""
        import ctypes, os
        rt = ctypes.CDLL("librt.so.1")
        libc = ctypes.CDLL(None)
        print(os.listdir("/dev/mqueue"), rt.mq_open(b"/left", os.O_RDONLY, 0, None),
              libc.syscall(29, 4242, 0, 0))
        """))
        assert probe.stdout == b"[] -1 -1\n", probe
        assert {c.id for c in containers_of(docker_client, run_id)} == before  # reused


def test_a_container_that_hit_oom_is_replaced(image: str, docker_client) -> None:  # noqa: ANN001
    run_id = f"test-{uuid.uuid4().hex[:8]}"
    limits = Limits(memory_mb=96)
    with DockerSandbox(image, warm=1, run_id=run_id, limits=limits) as sandbox:
        sandbox.start()
        first = {c.id for c in containers_of(docker_client, run_id)}
        assert sandbox.run(py("x = bytearray(400 << 20)", limits=limits)).reason is EndReason.OOM
        after = sandbox.run(py("print('fine')", limits=limits))
        assert after.reason is EndReason.OK and after.stdout == b"fine\n"
        now = {c.id for c in containers_of(docker_client, run_id)}
        assert now and not now & first


def test_concurrent_runs_from_threads(warm: DockerSandbox) -> None:
    results: dict[int, bytes] = {}

    def one(i: int) -> None:
        results[i] = warm.run(py(f"import time; time.sleep(0.2); print({i})")).stdout

    threads = [threading.Thread(target=one, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert results == {i: f"{i}\n".encode() for i in range(5)}


# -- lifecycle --------------------------------------------------------------------------


def test_close_removes_every_container(image: str, docker_client) -> None:  # noqa: ANN001
    run_id = f"test-{uuid.uuid4().hex[:8]}"
    sandbox = DockerSandbox(image, warm=2, run_id=run_id).start()
    assert len(containers_of(docker_client, run_id)) == 2
    assert sandbox.run(py("print(1)")).ok
    sandbox.close()
    sandbox.close()
    assert containers_of(docker_client, run_id) == []


def test_containers_of_a_killed_process_are_removed_on_start(image: str,
                                                             docker_client) -> None:  # noqa: ANN001
    run_id = f"test-{uuid.uuid4().hex[:8]}"
    code = textwrap.dedent(f"""
        import time
        from sandboxes import DockerSandbox
        DockerSandbox({image!r}, warm=2, run_id={run_id!r}).start()
        print("ready", flush=True)
        time.sleep(600)
        """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=ROOT)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        assert len(containers_of(docker_client, run_id)) == 2
        with DockerSandbox(image) as other:
            assert other.remove_stale() == []  # its owner is alive: left alone
    finally:
        proc.kill()
        proc.wait()
    assert len(containers_of(docker_client, run_id)) == 2  # a SIGKILL leaves them behind
    with DockerSandbox(image) as fresh:
        fresh.start()
    assert containers_of(docker_client, run_id) == []


def test_a_missing_image_is_a_sandbox_error(image: str) -> None:
    with pytest.raises(SandboxError, match=r"not found: build it with sandboxes\.build_image\(\)"):
        DockerSandbox("cladeforge-sandbox:doesnotexist").start()


def test_no_daemon_is_a_sandbox_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/missing.sock")
    with pytest.raises(SandboxError, match="cannot reach the Docker daemon"):
        DockerSandbox("any:tag").run(py("pass"))
