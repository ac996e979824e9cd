"""The system-call filter of the bwrap backend, compiled by libseccomp.

The policy is an allowlist modelled on Docker's default seccomp profile for a
container without capabilities, and stricter where a candidate must not reach
other processes or leave kernel state behind:

* allowed: the ordinary calls of programs (files, memory, threads, signals,
  sockets, pipes, timers, SysV/POSIX IPC inside the sandbox's own IPC namespace);
* refused with ``EPERM``: everything else, among them the kernel keyrings
  (``add_key``, ``keyctl``, ``request_key``: keys outlive the process and are
  shared by the user's other sandboxes), ``ptrace``, ``process_vm_readv/writev``,
  ``pidfd_getfd``, ``kcmp`` (reaching into other processes, also the harness or
  bwrap's init), ``io_uring_*``, ``userfaultfd``, ``bpf``, ``perf_event_open``,
  kernel modules, ``mount`` and the new mount API, ``unshare``, ``setns``,
  ``pivot_root``, ``chroot``, ``swapon``, ``reboot``, clocks, ``acct``,
  ``quotactl``;
* with argument checks: ``personality`` only for the values Docker allows
  (so no ``ADDR_NO_RANDOMIZE``), ``clone`` only without namespace flags,
  ``socket`` not for ``AF_VSOCK``; ``clone3`` answers ``ENOSYS`` (its flags
  sit in memory a filter cannot read), so the C library falls back to ``clone``.

Only the native architecture's calls pass: a call through another ABI (the
32-bit ``int 0x80`` entry on x86-64, x32) kills the process (libseccomp's
default for a foreign architecture). The filter is built once per process with
libseccomp (``libseccomp.so.2``, through ctypes) and handed to bwrap as a
compiled BPF program (``bwrap --seccomp FD``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import json
import os
import tempfile
from dataclasses import dataclass

from ._base import SandboxError

__all__ = ["ALLOWED", "RULES", "Rule", "docker_seccomp_profile", "seccomp_program"]

#: System calls allowed without conditions (names unknown on this architecture are skipped).
ALLOWED = frozenset("""
accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown clock_getres
clock_gettime clock_nanosleep close close_range connect copy_file_range creat dup dup2 dup3
epoll_create epoll_create1 epoll_ctl epoll_pwait epoll_pwait2 epoll_wait eventfd eventfd2
execve execveat exit exit_group faccessat faccessat2 fadvise64 fallocate fanotify_mark fchdir
fchmod fchmodat fchown fchownat fcntl fdatasync fgetxattr flistxattr flock fork fremovexattr
fsetxattr fstat fstatfs fsync ftruncate futex futex_waitv futimesat getcpu getcwd getdents
getdents64 getegid geteuid getgid getgroups getitimer getpeername getpgid getpgrp getpid
getppid getpriority getrandom getresgid getresuid getrlimit get_robust_list getrusage getsid
getsockname getsockopt get_thread_area gettid gettimeofday getuid getxattr inotify_add_watch
inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents
io_pgetevents ioprio_get ioprio_set io_setup io_submit kill landlock_add_rule
landlock_create_ruleset landlock_restrict_self lchown lgetxattr link linkat listen listxattr
llistxattr lremovexattr lseek lsetxattr lstat madvise membarrier memfd_create mincore mkdir
mkdirat mknod mknodat mlock mlock2 mlockall mmap mprotect mq_getsetattr mq_notify mq_open
mq_timedreceive mq_timedsend mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock
munlockall munmap nanosleep newfstatat open openat openat2 pause pidfd_open pidfd_send_signal
pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll prctl pread64 preadv preadv2
prlimit64 pselect6 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv
recvfrom recvmmsg recvmsg remap_file_pages removexattr rename renameat renameat2
restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo
rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_tgsigqueueinfo sched_getaffinity sched_getattr
sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler
sched_rr_get_interval sched_setaffinity sched_setattr sched_setparam sched_setscheduler
sched_yield seccomp select semctl semget semop semtimedop sendfile sendmmsg sendmsg sendto
setfsgid setfsuid setgid setgroups setitimer setpgid setpriority setregid setresgid setresuid
setreuid setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid
setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 socketpair splice
stat statfs statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time
timer_create timer_delete timer_getoverrun timer_gettime timer_settime timerfd_create
timerfd_gettime timerfd_settime times tkill truncate umask uname unlink unlinkat utime
utimensat utimes vfork vmsplice wait4 waitid write writev arch_prctl modify_ldt
""".split())

#: ``personality`` values allowed: PER_LINUX, UNAME26, PER_LINUX32, PER_LINUX32|UNAME26, query.
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
#: clone flags that make namespaces (CLONE_NEWNS ... CLONE_NEWNET, CLONE_NEWCGROUP).
CLONE_NAMESPACE_FLAGS = 0x7E020000
AF_VSOCK = 40
_CMP_NE, _CMP_EQ, _CMP_MASKED_EQ = 1, 4, 7
_CMP_NAMES = {_CMP_NE: "SCMP_CMP_NE", _CMP_EQ: "SCMP_CMP_EQ", _CMP_MASKED_EQ: "SCMP_CMP_MASKED_EQ"}


@dataclass(frozen=True)
class Rule:
    """One rule: ``name`` is allowed (``errno`` None) or answers ``errno``, when every
    condition ``(argument index, comparison, value, second value)`` holds."""

    name: str
    errno: int | None = None
    conditions: tuple[tuple[int, int, int, int], ...] = ()


#: The policy: these rules, and ``EPERM`` for every other call.
RULES: tuple[Rule, ...] = (
    *(Rule(name) for name in sorted(ALLOWED)),
    *(Rule("personality", conditions=((0, _CMP_EQ, value, 0),)) for value in PERSONALITIES),
    Rule("clone", conditions=((0, _CMP_MASKED_EQ, CLONE_NAMESPACE_FLAGS, 0),)),
    Rule("socket", conditions=((0, _CMP_NE, AF_VSOCK, 0),)),
    Rule("clone3", errno=errno.ENOSYS),
)

_ACT_ALLOW = 0x7FFF0000


def _act_errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


@functools.cache
def _libseccomp() -> ctypes.CDLL:
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise SandboxError("the bwrap sandbox needs libseccomp for its system-call filter: "
                           "install the 'libseccomp2' package") from exc
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


@functools.cache
def seccomp_program() -> bytes:
    """The compiled BPF program of the policy above (built once per process)."""
    lib = _libseccomp()
    ctx = lib.seccomp_init(_act_errno(errno.EPERM))
    if not ctx:
        raise SandboxError("libseccomp could not create a filter (seccomp_init failed)")
    try:
        for rule in RULES:
            action = _ACT_ALLOW if rule.errno is None else _act_errno(rule.errno)
            _add(lib, ctx, action, rule)
        with tempfile.TemporaryFile() as out:
            if lib.seccomp_export_bpf(ctypes.c_void_p(ctx), out.fileno()) != 0:
                raise SandboxError("libseccomp could not export the sandbox's filter")
            out.seek(0)
            return out.read()
    finally:
        lib.seccomp_release(ctypes.c_void_p(ctx))


def _add(lib: ctypes.CDLL, ctx: int, action: int, rule: Rule) -> None:
    number = lib.seccomp_syscall_resolve_name(rule.name.encode())
    if number < 0:  # no such call on this architecture
        return
    conditions = rule.conditions
    args = (_ArgCmp * max(1, len(conditions)))(*[_ArgCmp(*c) for c in conditions])
    rc = lib.seccomp_rule_add_array(ctypes.c_void_p(ctx), action, number, len(conditions), args)
    if rc != 0:
        raise SandboxError(f"libseccomp refused the rule for {rule.name}: {os.strerror(-rc)}")


@functools.cache
def docker_seccomp_profile() -> str:
    """The same policy as a Docker seccomp profile (``security_opt=["seccomp=<json>"]``)."""
    syscalls = []
    for rule in RULES:
        entry: dict[str, object] = {"names": [rule.name], "action": "SCMP_ACT_ALLOW"}
        if rule.errno is not None:
            entry.update(action="SCMP_ACT_ERRNO", errnoRet=rule.errno)
        if rule.conditions:
            entry["args"] = [{"index": index, "op": _CMP_NAMES[op], "value": value,
                              "valueTwo": second} for index, op, value, second in rule.conditions]
        syscalls.append(entry)
    return json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.EPERM,
                       "syscalls": syscalls}, separators=(",", ":"))
