"""make_sandbox: kinds by name, lazy imports, clear errors."""

from __future__ import annotations

import pytest

from sandboxes import SANDBOX_KINDS, BwrapSandbox, ProcessSandbox, SandboxError, make_sandbox
from sandboxes._images import rootfs_path


def test_the_kinds() -> None:
    assert SANDBOX_KINDS == ("docker", "bwrap", "process")


def test_bwrap_defaults_to_the_built_root_filesystem_else_the_host() -> None:
    sandbox = make_sandbox("bwrap")
    assert isinstance(sandbox, BwrapSandbox)
    assert sandbox.root == (rootfs_path() if rootfs_path().is_dir() else None)
    assert make_sandbox("bwrap", root=None).root is None


def test_process_is_made_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    sandbox = make_sandbox("process")
    assert isinstance(sandbox, ProcessSandbox) and not sandbox.isolated
    assert "no isolation" in caplog.text


def test_docker_is_made_without_touching_the_daemon() -> None:
    sandbox = make_sandbox("docker", warm=0)
    assert sandbox.name == "docker"
    sandbox.close()


def test_an_unknown_kind_suggests_the_close_match() -> None:
    with pytest.raises(SandboxError, match="did you mean 'bwrap'"):
        make_sandbox("bwarp")
    with pytest.raises(SandboxError, match="docker, bwrap, process"):
        make_sandbox("vm")


def test_an_unknown_option_names_the_accepted_ones() -> None:
    with pytest.raises(SandboxError, match="accepted: root, bwrap, tmp_dir, cgroups"):
        make_sandbox("bwrap", rot="/x")
