"""Is a Docker daemon reachable? Tests that need one skip locally and fail in CI (``CI=true``)."""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def docker_unavailable_reason() -> str | None:
    """Why the docker backend cannot be tested here, or None if a daemon answers a ping."""
    try:
        import docker
    except ImportError:
        return "needs the docker SDK (pip install docker)"
    try:
        docker.from_env(timeout=5).ping()
    except Exception as exc:  # noqa: BLE001 - any failure means: no daemon to use
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        return f"needs a reachable Docker daemon at {where} ({type(exc).__name__}: {exc})"
    return None


def require_docker() -> None:
    """Skip the calling test (fail it in CI) unless a Docker daemon is reachable."""
    reason = docker_unavailable_reason()
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"CI=true but the test {reason}", pytrace=False)
    pytest.skip(reason)
