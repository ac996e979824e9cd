"""One ``docker exec`` with stdin data, a deadline and capped stdout/stderr, over the raw socket.

The docker SDK's streaming helpers block without a deadline and buffer what
they read; here the hijacked exec connection is read with ``select`` so that
a command that runs too long or writes too much is noticed at once, and no
more than the caps are ever kept in memory.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ._job_files import CappedBuffer

_HEADER = struct.Struct(">BxxxL")
_STDOUT, _STDERR = 1, 2


@dataclass
class ExecOutcome:
    """How one exec ended: what it wrote (capped), its exit code, and why we stopped reading."""

    stdout: CappedBuffer
    stderr: CappedBuffer
    exit_code: int | None
    timed_out: bool
    overflowed: bool
    seconds: float


class StdinClosed(OSError):
    """The exec's process was gone before it read its stdin: nothing of the job ran."""


@dataclass
class ExecHandle:
    """A started exec: its id and the hijacked connection to its stdin, stdout and stderr."""

    exec_id: str
    raw: object
    sock: socket.socket
    early: bytes

    def close(self) -> None:
        for closable in (self.raw, self.sock):
            with contextlib.suppress(OSError):
                closable.close()


def start_exec(api: object, container_id: str, command: Sequence[str], *, user: str,
               workdir: str, stdin: bool) -> ExecHandle:
    """Start ``command`` in the container (no environment beyond the container's)."""
    exec_id = api.exec_create(container_id, list(command), stdout=True, stderr=True,
                              stdin=stdin, user=user, workdir=workdir)["Id"]
    raw = api.exec_start(exec_id, socket=True)
    sock: socket.socket = getattr(raw, "_sock", raw)
    sock.setblocking(False)
    return ExecHandle(exec_id, raw, sock, _buffered(raw))


def finish_exec(api: object, handle: ExecHandle, *, stdin: bytes | None, deadline: float,
                output_bytes: int) -> ExecOutcome:
    """Send ``stdin`` (then end it), read the output until the exec ends, the monotonic
    ``deadline`` passes, or stdout or stderr exceeds ``output_bytes``.

    On a timeout or an overflow the command is left running: the caller kills it
    (the settle step kills every process of the sandbox user). Docker SDK errors
    propagate to the caller, which translates them.
    """
    started = time.monotonic()
    sock = handle.sock
    out, err = CappedBuffer(output_bytes), CappedBuffer(output_bytes)
    timed_out = overflowed = False
    try:
        if stdin is not None:
            try:
                _send_all(sock, stdin, deadline)
                sock.shutdown(socket.SHUT_WR)
            except OSError as exc:
                raise StdinClosed(str(exc)) from exc
        reader = _FrameReader(sock, handle.early)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            frame = reader.next(remaining)
            if frame is None:
                continue  # no data yet; loop re-checks the deadline
            if frame is _EOF:
                break
            kind, data = frame
            (err if kind == _STDERR else out).write(data)
            if out.overflowed or err.overflowed:
                overflowed = True
                break
    finally:
        handle.close()
    seconds = time.monotonic() - started
    exit_code = None if timed_out or overflowed else _exit_code(api, handle.exec_id)
    return ExecOutcome(out, err, exit_code, timed_out, overflowed, seconds)


def run_exec(api: object, container_id: str, command: Sequence[str], *, user: str,
             workdir: str, stdin: bytes | None, deadline: float,
             output_bytes: int) -> ExecOutcome:
    """``start_exec`` then ``finish_exec``."""
    handle = start_exec(api, container_id, command, user=user, workdir=workdir,
                        stdin=stdin is not None)
    return finish_exec(api, handle, stdin=stdin, deadline=deadline, output_bytes=output_bytes)


def _exit_code(api: object, exec_id: str, wait: float = 2.0) -> int | None:
    """The exec's exit code; the daemon may report it a moment after the stream ends."""
    end = time.monotonic() + wait
    while True:
        info = api.exec_inspect(exec_id)
        if not info.get("Running") or time.monotonic() > end:
            return info.get("ExitCode")
        time.sleep(0.002)


def _buffered(raw: object) -> bytes:
    """Bytes the HTTP layer read past the upgrade response (they belong to the stream)."""
    try:
        reader = raw._response.raw._fp.fp  # type: ignore[attr-defined]
        return reader.peek() or b""  # the socket is non-blocking: never waits
    except (AttributeError, OSError, ValueError):
        return b""


def _send_all(sock: socket.socket, data: bytes, deadline: float) -> None:
    view = memoryview(data)
    while view:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        _, writable, _ = select.select([], [sock], [], remaining)
        if writable:
            try:
                view = view[sock.send(view[:1 << 16]):]
            except BlockingIOError:
                continue


_EOF = object()


class _FrameReader:
    """Demultiplexes docker's attach stream: 8-byte headers (stream, size), then the payload."""

    def __init__(self, sock: socket.socket, early: bytes = b"") -> None:
        self._sock = sock
        self._buffer = bytearray(early)
        self._eof = False

    def next(self, timeout: float) -> tuple[int, bytes] | object | None:
        """The next frame, ``_EOF`` at the end, or None if nothing complete arrived in time."""
        while True:
            frame = self._take()
            if frame is not None:
                return frame
            if self._eof:
                return _EOF
            readable, _, _ = select.select([self._sock], [], [], timeout)
            if not readable:
                return None
            try:
                chunk = self._sock.recv(1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                self._eof = True
            self._buffer += chunk

    def _take(self) -> tuple[int, bytes] | None:
        if len(self._buffer) < _HEADER.size:
            return None
        kind, size = _HEADER.unpack_from(self._buffer)
        if size > 1 << 20:
            # a frame this large is never sent by the daemon; read it in pieces anyway
            size_now = min(size, len(self._buffer) - _HEADER.size)
            if size_now == 0:
                return None
            data = bytes(self._buffer[_HEADER.size:_HEADER.size + size_now])
            remaining = size - size_now
            del self._buffer[:_HEADER.size + size_now]
            if remaining:
                self._buffer[:0] = _HEADER.pack(kind, remaining)
            return kind, data
        if len(self._buffer) < _HEADER.size + size:
            return None
        data = bytes(self._buffer[_HEADER.size:_HEADER.size + size])
        del self._buffer[:_HEADER.size + size]
        return kind, data
