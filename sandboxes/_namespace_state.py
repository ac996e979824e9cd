"""What a container's namespaces hold that a job could leave for the next job (stdlib only).

Shared by the host-side settle (``_docker_host``) and the in-container one
(``_docker_guest.SETTLE``, which runs this module's source): the writable
mounts, read from a mount table, and the sockets of a network namespace.
"""

import os
import re

#: File systems whose content is not what a job leaves behind (kernel views, terminals).
KERNEL_VIEWS = frozenset({"proc", "sysfs", "cgroup", "cgroup2", "devpts", "securityfs",
                          "debugfs", "tracefs", "bpf", "fusectl", "configfs"})
#: The socket tables of a network namespace, as ``/proc/<pid>/net`` shows them.
SOCKET_TABLES = ("unix", "tcp", "tcp6", "udp", "udp6", "raw", "raw6", "packet")
_OCTAL = re.compile(r"\\([0-7]{3})")


def rw_mounts(mountinfo: str) -> list:
    """Mount points mounted read-write in the mount table file ``mountinfo`` (a
    ``/proc/<pid>/mountinfo``), kernel views left out."""
    points = []
    with open(mountinfo, encoding="utf-8") as handle:
        for line in handle:
            fields, _, fs = line.partition(" - ")
            parts = fields.split()
            if "rw" in parts[5].split(",") and fs.split()[0] not in KERNEL_VIEWS:
                points.append(_OCTAL.sub(lambda m: chr(int(m.group(1), 8)), parts[4]))
    return points


def sockets_left(net: str) -> bool:
    """Whether the network namespace shown at ``net`` (a ``/proc/<pid>/net``) holds any
    socket; one that cannot be read counts as holding one."""
    for table in SOCKET_TABLES:
        try:
            with open(os.path.join(net, table), "rb") as handle:
                handle.readline()  # the header
                if handle.readline():
                    return True
        except FileNotFoundError:
            continue  # a table this kernel does not have
        except OSError:
            return True
    return False
