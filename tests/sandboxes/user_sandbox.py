"""The bwrap backend as an ordinary user would run it, for tests that run as root (CI).

``UserBwrapSandbox`` hands each job to a server process that runs as an
unprivileged host uid (``ORDINARY_UID``, not the sandbox's 65534) and runs it
with ``BwrapSandbox(root=None)`` there: no cgroups (rlimits instead), no tmpfs
work dir, and bwrap in an unprivileged user namespace — the configuration of a
user without root. Jobs and results travel pickled over the server's stdin and
stdout. As a plain user it runs ``BwrapSandbox`` directly in the test process.

``python -m tests.sandboxes.user_sandbox`` is the server.
"""

from __future__ import annotations

import os
import pickle
import stat
import struct
import subprocess
import sys
import sysconfig
import tempfile
import threading
from pathlib import Path

from sandboxes import BwrapSandbox, Job, Result, Sandbox

#: The host uid the server runs as: an ordinary user, not root and not the sandbox user.
ORDINARY_UID = 1000
_FRAME = struct.Struct(">Q")
_REPO = Path(__file__).resolve().parents[2]


class UserBwrapSandbox(Sandbox):
    """bwrap run by an ordinary user (see the module docstring). ``run`` is thread-safe;
    jobs run one at a time (make two instances for concurrent jobs)."""

    name = "bwrap"
    isolated = True

    def __init__(self, uid: int = ORDINARY_UID) -> None:
        self.uid = uid
        self.tmp_dir = tempfile.mkdtemp(prefix="cladeforge-user-")
        os.chown(self.tmp_dir, uid, uid)
        os.chmod(self.tmp_dir, 0o700)
        self._lock = threading.Lock()
        self._server = subprocess.Popen(
            [_python_for_everyone(), "-m", "tests.sandboxes.user_sandbox", self.tmp_dir],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=_REPO, user=uid, group=uid,
            extra_groups=[], env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                  "HOME": self.tmp_dir, "PYTHONPATH": _import_path()})

    @property
    def server_pid(self) -> int:
        """The pid whose workspaces (``cladeforge-run-<pid>-*``) this sandbox makes."""
        return self._server.pid

    def run(self, job: Job) -> Result:
        with self._lock:
            assert self._server.stdin is not None and self._server.stdout is not None
            _send(self._server.stdin, pickle.dumps(job))
            data = _receive(self._server.stdout)
        if data is None:
            raise RuntimeError(f"the ordinary-user bwrap server died ({self._server.poll()})")
        return pickle.loads(data)

    def close(self) -> None:
        if self._server.poll() is None:
            assert self._server.stdin is not None
            self._server.stdin.close()
            self._server.wait(timeout=30)
        subprocess.run(["rm", "-rf", self.tmp_dir], check=False)


def _python_for_everyone() -> str:
    """An interpreter any user may run: ours, unless it lives below a private directory
    (pyenv under /root), then the system's (the server needs only the standard library)."""
    real = Path(sys.executable).resolve()
    if all(os.stat(parent).st_mode & stat.S_IXOTH for parent in real.parents):
        return sys.executable
    return "/usr/bin/python3"


def _import_path() -> str:
    """The repository and this environment's packages (``sandboxes`` imports some), for the
    server's interpreter, which may be the system's (same Python version)."""
    return os.pathsep.join([str(_REPO), sysconfig.get_paths()["purelib"]])


def _send(stream, data: bytes) -> None:  # noqa: ANN001 - a binary stream
    stream.write(_FRAME.pack(len(data)) + data)
    stream.flush()


def _receive(stream) -> bytes | None:  # noqa: ANN001 - a binary stream
    head = stream.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return None
    (size,) = _FRAME.unpack(head)
    return stream.read(size)


def _serve(tmp_dir: str) -> None:
    """Run pickled jobs from stdin in ``BwrapSandbox``; pickled results to stdout."""
    sandbox = BwrapSandbox(root=None, tmp_dir=tmp_dir)
    while (data := _receive(sys.stdin.buffer)) is not None:
        _send(sys.stdout.buffer, pickle.dumps(sandbox.run(pickle.loads(data))))


if __name__ == "__main__":
    _serve(sys.argv[1])
