"""Probes: can one backend run jobs on this machine, and if not, why not.

Each probe touches only its own backend: probing bwrap never contacts Docker
(nor imports its SDK), probing process touches neither. ``build_hint`` is the
caller's sentence for how to build a missing image or root filesystem.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import asdict, dataclass

from ._base import SandboxError


@dataclass(frozen=True)
class BackendStatus:
    """One backend: ``available`` if it can run jobs here; ``detail`` says what was found or
    why not, and what to do about it."""

    name: str
    available: bool
    detail: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def probe_docker(build_hint: str) -> BackendStatus:
    """Docker: is the SDK installed, the daemon reachable, and the default image built?"""
    try:
        import docker  # noqa: F401 - the SDK itself may be missing
    except ImportError:
        return BackendStatus("docker", False, "the docker SDK is not installed: pip install docker")
    from ._images import default_image, docker_client, image_exists

    try:
        client = docker_client()
        version = client.version().get("Version", "?")
        tag = default_image()
        if not image_exists(client, tag):
            return BackendStatus("docker", False, f"daemon {version} reachable, but the sandbox "
                                 f"image {tag} is not built: {build_hint}")
    except SandboxError as exc:
        return BackendStatus("docker", False, str(exc))
    return BackendStatus("docker", True, f"daemon {version}, image {tag}")


def probe_bwrap(build_hint: str, timeout: float = 20.0) -> BackendStatus:
    """bubblewrap: is it installed, and can it create user and network namespaces here?"""
    binary = shutil.which("bwrap")
    if binary is None:
        return BackendStatus("bwrap", False, "bubblewrap is not installed: apt-get install "
                             "bubblewrap (or use the docker backend)")
    try:
        probe = subprocess.run([binary, "--unshare-all", "--ro-bind", "/", "/", "true"],
                               capture_output=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return BackendStatus("bwrap", False, f"{binary} could not be run: {exc}")
    if probe.returncode != 0:
        why = probe.stderr.decode(errors="replace").strip()[-300:]
        return BackendStatus("bwrap", False, f"{binary} cannot create namespaces here ({why}); "
                             "enable unprivileged user namespaces (sysctl "
                             "kernel.unprivileged_userns_clone=1) or use the docker backend")
    from ._images import rootfs_path

    root = rootfs_path()
    where = (f"root filesystem {root}" if root.is_dir()
             else f"host system directories (no built root filesystem: {build_hint})")
    return BackendStatus("bwrap", True, f"{binary}: user and network namespaces work; {where}")


def probe_process(build_hint: str) -> BackendStatus:
    """The process backend needs nothing built and runs wherever Python does."""
    return BackendStatus("process", True, "no isolation: trusted code only")
