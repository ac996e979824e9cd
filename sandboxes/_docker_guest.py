"""Small Python programs the docker backend runs inside its containers with ``python3 -c``.

``LAUNCH`` reads the job (command, environment, input files) from its stdin,
writes the files into /work and then becomes the job's command with exactly
that environment. In a warm container it is started ahead, right after the
previous job's reset, so that a job does not wait for ``docker exec`` to
start a process. Files cannot be copied in with ``put_archive``: the daemon
writes through the container's root filesystem, below the /work tmpfs, where
the command would never see them. So they travel on stdin (see ``pack_job``).

``SETTLE`` runs after every job, as the sandbox user: it kills every process
of that user (the job's whole tree), reads the container's cgroup counters
(OOM kills, failed forks at the pids limit), reads back the files the job
asked for (regular files only, never through a symlink), and, in a warm
container, resets what the job could leave for the next one (every writable
mount emptied, System V objects removed; sockets or processes left mark it dirty; see
``_docker_host``). It prints one JSON
line and then the collected files' bytes. Its output is trusted because no
process of the candidate is alive when it reads and reports.
"""

from __future__ import annotations

import inspect
import json
import struct
from collections.abc import Mapping, Sequence

from . import _namespace_state, _tree
from ._job_files import check_relpath

LAUNCH = r"""
import json, os, struct, sys
def read(n):
    buf = b""
    while len(buf) < n:
        chunk = os.read(0, n - len(buf))
        if not chunk:
            os._exit(0)  # no job came: the exec was abandoned
        buf += chunk
    return buf
(size,) = struct.unpack(">I", read(4))
job = json.loads(read(size))
(count,) = struct.unpack(">I", read(4))
for _ in range(count):
    plen, dlen = struct.unpack(">IQ", read(12))
    path = read(plen).decode()
    data = read(dlen)
    target = os.path.join("/work", path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
os.chdir("/work")
try:
    os.execvpe(job["argv"][0], job["argv"], job["env"])
except OSError as exc:
    sys.stderr.write(f"cannot run {job['argv'][0]!r}: {exc}\n")
    os._exit(127)
"""

_SETTLE_BODY = r"""
import json, os, stat, subprocess, sys, time
me, uid = os.getpid(), os.getuid()
max_bytes, wipe, paths = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3:]

def mine():
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in (1, me):
            continue
        try:
            with open(f"/proc/{name}/status") as handle:
                fields = dict(line.split(":", 1) for line in handle if ":" in line)
        except OSError:
            continue
        if int(fields["Uid"].split()[1]) == uid and fields["State"].split()[0] != "Z":
            found.append(int(name))
    return found

left = []
for attempt in range(200):
    try:
        os.kill(-1, 9)
    except OSError:
        pass
    left = mine()
    if not left:
        break
    time.sleep(0.005)

def counter(paths, key):
    for path in paths:
        try:
            with open(path) as handle:
                for line in handle:
                    parts = line.split()
                    if len(parts) == 2 and parts[0] == key:
                        return int(parts[1])
        except OSError:
            continue
    return None

cg = "/sys/fs/cgroup"
report = {
    "left": len(left),
    "oom_kill": counter([f"{cg}/memory/memory.oom_control", f"{cg}/memory.events"], "oom_kill"),
    "pids_max": counter([f"{cg}/pids/pids.events", f"{cg}/pids.events"], "max"),
}
work = os.statvfs("/work")
report["work_full"] = work.f_bavail == 0 or work.f_favail == 0

def read_below(rel):
    # one directory open at a time: a path thousands of levels deep needs no more fds
    dir_fd = os.open("/work", os.O_RDONLY | os.O_DIRECTORY)
    try:
        parts = rel.split("/")
        for part in parts[:-1]:
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
            os.close(dir_fd)
            dir_fd = child
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return None
    finally:
        os.close(dir_fd)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            return None
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
        return data if len(data) <= max_bytes else None
    except OSError:
        return None
    finally:
        os.close(fd)

files = {}
for rel in paths:
    data = read_below(rel)
    if data is not None:
        files[rel] = data
report["files"] = [[rel, len(data)] for rel, data in files.items()]

dirty = []
if wipe:
    places, others = [], []
    for point in rw_mounts("/proc/self/mountinfo"):
        if os.access(point, os.W_OK):
            if os.path.isdir(point):
                places.append(point)
            elif os.path.isfile(point):  # devices (/dev/null over /proc/keys) hold nothing
                others.append(point)
    dirty += [f"writable mount {point}" for point in others]
    dirty += [point for point in places if not remove_contents(point)]
    try:  # the job's System V objects are this user's: remove them, then check
        subprocess.run(["ipcrm", "--all"], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        pass
    for ipc in ("shm", "sem", "msg"):
        try:
            with open(f"/proc/sysvipc/{ipc}") as handle:
                if len(handle.read().splitlines()) > 1:
                    dirty.append(f"sysv {ipc}")
        except OSError:
            pass
    if sockets_left("/proc/self/net"):
        dirty.append("sockets")
    if mine():
        dirty.append("processes")
report["dirty"] = dirty
out = sys.stdout.buffer
out.write(json.dumps(report).encode() + b"\n")
for data in files.values():
    out.write(data)
out.flush()
"""


#: The settle program: the tree walks of ``_tree`` and the namespace checks of
#: ``_namespace_state`` (both standard library only), then its own body.
SETTLE = inspect.getsource(_tree) + inspect.getsource(_namespace_state) + _SETTLE_BODY


def pack_job(argv: Sequence[str], env: Mapping[str, str], files: Mapping[str, bytes]) -> bytes:
    """A job as ``LAUNCH`` reads it: a JSON header (argv, env), then the file count and the files
    as (path length, size, path, bytes)."""
    header = json.dumps({"argv": list(argv), "env": dict(env)}).encode()
    parts = [struct.pack(">I", len(header)), header, struct.pack(">I", len(files))]
    for rel, data in files.items():
        path = check_relpath(rel).encode()
        parts += [struct.pack(">IQ", len(path), len(data)), path, bytes(data)]
    return b"".join(parts)
