"""Sandbox fixtures: real backends, skipped with a reason where they cannot run (failed in CI)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandboxes import BwrapSandbox, EndReason, Job, ProcessSandbox, Sandbox, make_sandbox

IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture
def tmp_path(tmp_path: Path) -> Iterator[Path]:
    """pytest's ``tmp_path``, emptied afterwards by ``rm -rf`` even when a test failed: a tree
    thousands of levels deep left there would crash pytest's own cleanup (``shutil.rmtree``
    recurses) at the end of this or a later session."""
    yield tmp_path
    subprocess.run(["chmod", "-R", "u+rwx", str(tmp_path)], capture_output=True)
    subprocess.run(["rm", "-rf", "--one-file-system", str(tmp_path)], check=False)


def unavailable(reason: str) -> None:
    """Skip with ``reason`` locally; in CI (``CI=true``) every backend must run, so fail."""
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def bwrap_problem(sandbox: BwrapSandbox) -> str | None:
    """Why bubblewrap cannot run here, or None."""
    if shutil.which("bwrap") is None:
        return "needs bubblewrap: `bwrap` is not installed (apt-get install bubblewrap)"
    result = sandbox.run(Job(command=["python3", "-c", "print('ready')"]))
    if result.stdout.strip() != b"ready":
        return (f"bubblewrap cannot start a sandbox here ({result.reason}: {result.detail}; "
                f"{result.stderr.decode(errors='replace').strip()[-300:]})")
    return None


def docker_problem() -> str | None:
    """Why the docker backend cannot run here, or None (the docker helper's check if present)."""
    if importlib.util.find_spec("tests.sandboxes._docker_available") is not None:
        from tests.sandboxes._docker_available import docker_unavailable_reason

        return docker_unavailable_reason()
    if importlib.util.find_spec("sandboxes._docker") is None:
        return "the docker backend (sandboxes._docker) is not there"
    try:
        import docker

        docker.from_env(timeout=5).ping()
    except Exception as exc:  # noqa: BLE001 - any failure means: no daemon to use
        return f"needs a reachable Docker daemon ({type(exc).__name__}: {exc})"
    return None


@pytest.fixture(scope="session")
def bwrap_sandbox() -> Iterator[Sandbox]:
    """The bwrap backend as ``make_sandbox("bwrap")`` gives it (the built rootfs if any)."""
    sandbox = make_sandbox("bwrap")
    assert isinstance(sandbox, BwrapSandbox)
    problem = bwrap_problem(sandbox)
    if problem:
        unavailable(problem)
    yield sandbox
    sandbox.close()


@pytest.fixture(scope="session")
def process_sandbox() -> Iterator[Sandbox]:
    sandbox = ProcessSandbox()
    yield sandbox
    sandbox.close()


@pytest.fixture(scope="session")
def docker_sandbox() -> Iterator[Sandbox]:
    """A warm-pool docker backend on the default image (built if missing)."""
    problem = docker_problem()
    if problem:
        unavailable(problem)
    from sandboxes._docker import DockerSandbox
    from sandboxes._images import build_image

    sandbox = DockerSandbox(image=build_image(), warm=2)
    probe = sandbox.run(Job(command=["python3", "-c", "print('ready')"]))
    if probe.reason is not EndReason.OK:
        sandbox.close()
        unavailable(f"the docker sandbox does not run a trivial job: {probe.detail}")
    yield sandbox
    sandbox.close()


@pytest.fixture(scope="session")
def bwrap_user_sandbox() -> Iterator[Sandbox]:
    """The bwrap backend as an ordinary user runs it (no root: no cgroups, no tmpfs work dir).

    Run as root (CI), the jobs go to a server process running as an ordinary uid
    (``tests/sandboxes/user_sandbox.py``); run as a plain user, that is this process.
    """
    if os.geteuid() != 0:
        sandbox: Sandbox = BwrapSandbox(root=None)
    else:
        from .user_sandbox import UserBwrapSandbox

        sandbox = UserBwrapSandbox()
    problem = bwrap_problem(sandbox)
    if problem:
        sandbox.close()
        unavailable(f"as an ordinary user, {problem}")
    yield sandbox
    sandbox.close()


@pytest.fixture(scope="session")
def docker_cold_sandbox() -> Iterator[Sandbox]:
    """The docker backend without a warm pool: a fresh container for every job."""
    problem = docker_problem()
    if problem:
        unavailable(problem)
    from sandboxes._docker import DockerSandbox
    from sandboxes._images import build_image

    sandbox = DockerSandbox(image=build_image(), warm=0)
    yield sandbox
    sandbox.close()


#: The isolating configurations every hostile test runs against.
ISOLATING = ["bwrap", "bwrap_user", "docker", "docker_cold"]


@pytest.fixture(params=ISOLATING)
def isolating_sandbox(request: pytest.FixtureRequest) -> Sandbox:
    """Every isolating configuration in turn: bwrap as root and as an ordinary user, the docker
    warm pool and docker cold."""
    sandbox = request.getfixturevalue(f"{request.param}_sandbox")
    assert sandbox.isolated
    return sandbox


@pytest.fixture
def token() -> str:
    """A fresh marker for one hostile test (in secrets, file names, process names)."""
    return uuid.uuid4().hex
