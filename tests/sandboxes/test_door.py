"""The one door into sandboxes: SandboxSpec, open_executor, check_backend, the two registries.

Jobs run on the real backends (docker and bwrap skip where they cannot run, and fail in CI);
checks run against a Docker daemon that is not there (``DOCKER_HOST`` at a dead socket).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sandboxes import (
    DEFAULT_BUILD_HINT,
    EXECUTOR_KINDS,
    SANDBOX_KINDS,
    BackendStatus,
    EndReason,
    Job,
    LocalExecutor,
    RayExecutor,
    SandboxError,
    SandboxSpec,
    check_backend,
    check_backends,
    make_sandbox,
    open_executor,
)
from sandboxes._backends import BACKENDS, backend
from sandboxes._spec import EXECUTORS

from .conftest import bwrap_problem, docker_problem, unavailable

DEAD_DOCKER = "unix:///nonexistent.sock"
HINT = "run 'make sandbox-image'"
#: Reverses its input file, prints it and writes it back as an output file.
REVERSE = Job(("python3", "-c", "s = open('in.txt').read()[::-1]; print(s); "
                                "open('out.txt', 'w').write(s)"),
              files={"in.txt": b"abc"}, collect=("out.txt",))


def _require(kind: str) -> None:
    """Skip (fail in CI) unless backend ``kind`` can run jobs here, as conftest judges it."""
    if kind == "bwrap":
        problem = bwrap_problem(make_sandbox("bwrap"))
    elif kind == "docker":
        problem = docker_problem()
        if problem is None:
            from sandboxes import build_image

            build_image()  # a no-op when the default image is there
    else:
        problem = None
    if problem:
        unavailable(problem)


@pytest.fixture
def dead_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    """``DOCKER_HOST`` at a socket nobody listens on."""
    monkeypatch.setenv("DOCKER_HOST", DEAD_DOCKER)


@pytest.fixture
def no_docker_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything asks for a Docker client."""
    import sandboxes._images

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a Docker client was asked for")

    monkeypatch.setattr(sandboxes._images, "docker_client", refuse)
    docker = pytest.importorskip("docker")
    monkeypatch.setattr(docker, "from_env", refuse)
    monkeypatch.setattr(docker.DockerClient, "__init__", refuse)
    monkeypatch.setattr(docker.APIClient, "__init__", refuse)


# --- open_executor: a real job on each backend ---

@pytest.mark.parametrize("kind", SANDBOX_KINDS)
def test_open_executor_runs_a_job_on_each_backend(kind: str) -> None:
    _require(kind)
    spec = SandboxSpec(kind, warm=1, workers=1)
    with open_executor(spec) as executor:
        assert isinstance(executor, LocalExecutor)
        assert executor.sandbox.name == kind and executor.max_workers == 1
        result = asyncio.run(executor.run(REVERSE))
    assert result.reason is EndReason.OK, (result.detail, result.stderr)
    assert result.stdout == b"cba\n"
    assert result.files == {"out.txt": b"cba"}


def test_open_executor_runs_workers_jobs_at_once() -> None:
    job = Job(("python3", "-c", "import time; time.sleep(1)"))

    async def three() -> list[float]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.gather(*(executor.run(job) for _ in range(3)))
        return loop.time() - started

    with open_executor(SandboxSpec("process", workers=3)) as executor:
        elapsed = asyncio.run(three())
    assert elapsed < 2.5  # three one-second jobs side by side, not one after another


def test_the_spec_gives_each_backend_its_own_options() -> None:
    spec = SandboxSpec("docker", warm=3, build_hint=HINT)
    assert backend("docker").spec_options(spec) == {"warm": 3, "build_hint": HINT}
    assert backend("bwrap").spec_options(spec) == {"build_hint": HINT}
    assert backend("process").spec_options(spec) == {}  # warm is ignored without a warm pool


def test_open_executor_with_ray_builds_a_ray_executor_and_starts_nothing() -> None:
    spec = SandboxSpec("bwrap", executor="ray", workers=3, ray_address="ray://head:10001",
                       build_hint=HINT)
    executor = open_executor(spec)
    assert isinstance(executor, RayExecutor)
    assert (executor.kind, executor.options, executor.workers, executor.address) == (
        "bwrap", {"build_hint": HINT}, 3, "ray://head:10001")
    executor.close()  # nothing was started, so nothing to stop (no Ray needed)


@pytest.mark.slow
def test_open_executor_with_ray_runs_a_job() -> None:
    ray = pytest.importorskip("ray", reason="needs the 'ray' extra: pip install 'cladeforge[ray]'")
    with open_executor(SandboxSpec("process", executor="ray", workers=1)) as executor:
        result = asyncio.run(executor.run(REVERSE))
    assert result.stdout == b"cba\n" and result.files == {"out.txt": b"cba"}
    assert not ray.is_initialized()  # the executor started Ray, so it stopped it


# --- SandboxSpec: bad values are refused on construction ---

@pytest.mark.parametrize(("fields", "message"), [
    ({"backend": "bwarp"}, r"unknown sandbox backend 'bwarp'; did you mean 'bwrap'\? "
                           r"\(choose one of docker, bwrap, process\)"),
    ({"backend": "vm"}, r"unknown sandbox backend 'vm' \(choose one of docker, bwrap, process\)"),
    ({"backend": ["docker"]}, r"unknown sandbox backend \['docker'\]"),
    ({"backend": "process", "executor": "rey"}, r"unknown executor 'rey'; did you mean 'ray'\?"),
    ({"backend": "process", "executor": "threads"},
     r"unknown executor 'threads' \(choose one of local, ray\)"),
    ({"backend": "process", "workers": 0}, r"workers must be an integer of at least 1, got 0"),
    ({"backend": "process", "workers": True}, r"workers must be an integer"),
    ({"backend": "docker", "warm": -1}, r"warm must be an integer of at least 0, got -1"),
    ({"backend": "docker", "warm": "2"}, r"warm must be an integer of at least 0, got '2'"),
])
def test_a_bad_spec_is_refused_with_a_clear_message(fields: dict, message: str) -> None:
    with pytest.raises(SandboxError, match=message):
        SandboxSpec(**fields)


def test_a_spec_is_frozen_and_has_the_defaults() -> None:
    spec = SandboxSpec("process")
    assert (spec.warm, spec.executor, spec.workers, spec.ray_address, spec.build_hint) == (
        0, "local", 2, None, DEFAULT_BUILD_HINT)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.workers = 5  # type: ignore[misc]


# --- the registries ---

def test_the_registries_name_the_kinds() -> None:
    assert SANDBOX_KINDS == tuple(BACKENDS) == ("docker", "bwrap", "process")
    assert all(record.name == name for name, record in BACKENDS.items())
    assert EXECUTOR_KINDS == tuple(EXECUTORS) == ("local", "ray")


def test_make_sandbox_is_the_registrys_entry() -> None:
    for kind in SANDBOX_KINDS:
        sandbox = make_sandbox(kind)
        assert sandbox.name == kind
        sandbox.close()


# --- check_backend: one backend probed, nothing else touched ---

@pytest.mark.parametrize("kind", ["bwrap", "process"])
def test_checking_bwrap_or_process_does_not_contact_docker(
        kind: str, dead_docker: None, no_docker_client: None) -> None:
    _require(kind)
    status = check_backend(kind)
    assert status == BackendStatus(kind, True, status.detail)


def test_checking_bwrap_does_not_import_the_docker_sdk() -> None:
    _require("bwrap")
    code = ("import sys, sandboxes; s = sandboxes.check_backend('bwrap'); "
            "print(s.available, 'docker' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.split() == ["True", "False"]


def test_checking_docker_with_no_daemon_says_so(dead_docker: None) -> None:
    pytest.importorskip("docker")
    status = check_backend("docker")
    assert not status.available
    assert f"cannot reach the Docker daemon at {DEAD_DOCKER}" in status.detail


def test_check_backends_is_every_backend_in_order(dead_docker: None) -> None:
    statuses = check_backends()
    assert [s.name for s in statuses] == list(SANDBOX_KINDS)
    assert statuses[-1] == BackendStatus("process", True, "no isolation: trusted code only")


def test_checking_an_unknown_backend_is_an_error() -> None:
    with pytest.raises(SandboxError, match="did you mean 'docker'"):
        check_backend("dokcer")


# --- the build hint comes from the caller; by default it names no CLI ---

@pytest.mark.parametrize("hint", [HINT, None])
def test_the_missing_rootfs_message_carries_the_build_hint(hint: str | None,
                                                           tmp_path: Path) -> None:
    if shutil.which("bwrap") is None:
        unavailable("needs bubblewrap: `bwrap` is not installed (apt-get install bubblewrap)")
    options = {} if hint is None else {"build_hint": hint}
    sandbox = make_sandbox("bwrap", root=tmp_path / "missing", **options)
    with pytest.raises(SandboxError, match="root filesystem") as error:
        sandbox.run(REVERSE)
    assert (hint or DEFAULT_BUILD_HINT) in str(error.value)
    assert "evolve" not in str(error.value)


@pytest.mark.parametrize("hint", [HINT, None])
def test_no_built_rootfs_is_reported_with_the_build_hint(
        hint: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    _require("bwrap")
    monkeypatch.setenv("CLADEFORGE_CACHE", str(tmp_path))  # where no root filesystem is built
    options = {} if hint is None else {"build_hint": hint}
    status = check_backend("bwrap", **options)
    assert status.available and "no built root filesystem" in status.detail
    with caplog.at_level(logging.INFO, logger="sandboxes"):
        spec = SandboxSpec("bwrap", **options)
        with open_executor(spec) as executor:
            assert executor.sandbox.root is None  # the host's system directories
    for text in (status.detail, caplog.text):
        assert (hint or DEFAULT_BUILD_HINT) in text
        assert "evolve" not in text


@pytest.mark.parametrize("hint", [HINT, None])
def test_the_missing_image_message_carries_the_build_hint(
        hint: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    _require("docker")
    import sandboxes._images

    missing = "cladeforge-sandbox:no-such-image"
    monkeypatch.setattr(sandboxes._images, "default_image", lambda *_: missing)
    options = {} if hint is None else {"build_hint": hint}
    status = check_backend("docker", **options)
    assert not status.available and f"image {missing} is not built" in status.detail
    sandbox = make_sandbox("docker", image=missing, **options)
    with pytest.raises(SandboxError, match=f"sandbox image {missing} not found") as error:
        sandbox.start()
    sandbox.close()
    for text in (status.detail, str(error.value)):
        assert (hint or DEFAULT_BUILD_HINT) in text
        assert "evolve" not in text


def test_no_module_of_sandboxes_names_the_evolve_cli() -> None:
    root = Path(__file__).resolve().parents[2] / "sandboxes"
    naming = [str(path.relative_to(root)) for path in sorted(root.rglob("*.py"))
              if "evolve sandbox" in path.read_text(encoding="utf-8")]
    assert naming == []
