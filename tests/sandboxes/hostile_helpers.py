"""What the hostile-candidate suites share: limits, the probe of a clean sandbox, checks."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from sandboxes import EndReason, Job, Limits, Result, Sandbox

LIMITS = Limits(memory_mb=128, cpus=1.0, pids=32, wall_seconds=4.0, output_bytes=1 << 20,
                workdir_mb=16)
#: Probes after an attack: more than the docker fixture's warm containers, so each is seen.
PROBES = 3
PROBE = r"""
import json, os
procs = []
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            procs.append(open(f"/proc/{pid}/cmdline", "rb").read().decode("latin-1"))
        except OSError:
            pass
print(json.dumps({"work": sorted(os.listdir(".")), "tmp": sorted(os.listdir("/tmp")),
                  "procs": procs}))
"""


def attack(sandbox: Sandbox, token: str, code: str, *, args: tuple[str, ...] = (),
           files: dict[str, bytes] | None = None, collect: tuple[str, ...] = ()) -> Result:
    """Run ``code`` as ``attack_<token>.py`` (the token marks its processes on the host)."""
    name = f"attack_{token}.py"
    return sandbox.run(Job(command=["python3", name, *args],
                           files={name: code.encode(), **(files or {})},
                           limits=LIMITS, collect=collect))


def host_processes_with(marker: str) -> list[int]:
    """Host pids whose command line contains ``marker`` (a /proc scan)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = Path(entry.path, "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry.name))
    return found


def leftover_workspaces(sandbox: Sandbox | None = None) -> list[str]:
    """Workspaces of this process (or of ``sandbox``'s ordinary-user server) still on disk."""
    places = [(tempfile.gettempdir(), os.getpid())]
    if hasattr(sandbox, "server_pid"):
        places.append((sandbox.tmp_dir, sandbox.server_pid))  # type: ignore[union-attr]
    return [name for parent, pid in places for name in os.listdir(parent)
            if name.startswith(f"cladeforge-run-{pid}-")]


def assert_contained(sandbox: Sandbox, token: str, *secrets: str, result: Result) -> None:
    """The host and the next evaluations are unaffected by the attack marked ``token``."""
    for secret in secrets:
        assert secret.encode() not in result.stdout + result.stderr
        assert all(secret.encode() not in data for data in result.files.values())
    assert host_processes_with(token) == []
    assert leftover_workspaces(sandbox) == []
    for _ in range(PROBES):
        probe = sandbox.run(Job(command=["python3", "-c", PROBE], limits=LIMITS))
        assert probe.reason is EndReason.OK, probe
        seen = json.loads(probe.stdout)
        assert seen["work"] == [] and seen["tmp"] == [], seen
        assert not [cmd for cmd in seen["procs"] if token in cmd]


# --- resource attacks -------------------------------------------------------------------
