"""The LLM gateway under abuse: a separate process floods one session (idle connections,
unfinished 1 MiB bodies, slow heads, pipelined heads, malformed requests) while a guest on
another session keeps getting answers; the run process's descriptors, memory and log stay
bounded, and the flooded session still serves and closes cleanly afterwards."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.sandboxes.gateway_helpers import (
    MODEL,
    FakeLLM,
    gateway_for,
    post,
    raw_exchange,
    run_guest,
)

#: The attacker: ``python -c ATTACKER socket_path idle_attempts seconds`` prints a JSON summary.
ATTACKER = r'''
import json, resource, selectors, socket, sys, time
path, attempts, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
attempts = min(attempts, hard - 1000)

def head(extra, path="/v1/chat/completions", method="POST"):
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()

MALFORMED = [
    head("Content-Length: 1\u0663\r\n") + b"{}", head("Content-Length: -5\r\n"),
    head("Content-Length: " + "9" * 40 + "\r\n"), head("Content-Length: 10000000000\r\n"),
    head("Transfer-Encoding: chunked\r\n") + b"zz\r\n\xff\r\n",
    head("Content-Length: 200000\r\n") + b"[" * 200000,
    head("Content-Length: 14\r\n") + b'{"prompt":"\xff"}', b"GET /\xff HTTP/1.1\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)), b"HELLO\r\n\r\n",
]

def exchange(data):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(path)
    try:
        s.sendall(data)
    except OSError:
        pass
    answer = b""
    try:
        while not answer.endswith(b"}") and len(answer) < 100000:
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
    except OSError:
        pass
    s.close()
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else None

out = {"malformed": [exchange(data) for data in MALFORMED for _ in range(30)]}

sel = selectors.DefaultSelector()
conns, refused, answered, cut = {}, 0, {}, {}
def connect(kind, first=b""):
    s = socket.socket(socket.AF_UNIX)
    s.setblocking(False)
    try:
        s.connect(path)
        if first:
            s.send(first)
    except OSError:
        s.close()
        return False
    conns[s] = [kind, time.monotonic(), 0]
    if kind != "pipe":  # a pipelining client that never reads its answers
        sel.register(s, selectors.EVENT_READ)
    return True

body = b'{"messages": [{"role": "user", "content": "' + b"a" * (1 << 20)
length = (1 << 20)
big = "".join(f"X-H{i}: {'v' * 8000}\r\n" for i in range(30))
pipelined = head(big, "/v1/models", "GET") * 40

def wave():
    made = 0
    for _ in range(300):  # unfinished 1 MiB bodies
        made += connect("body", head(f"Content-Length: {length}\r\n"))
    for _ in range(attempts // 2):  # idle connections, held
        made += connect("idle")
    return made

for _ in range(10):  # slow heads
    connect("slow", b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ")
for _ in range(6):  # pipelined heads with large headers, answers never read
    connect("pipe")
out["connected"] = wave()
waves = 1

start = last_drip = time.monotonic()
while time.monotonic() - start < seconds:
    for key, _ in sel.select(timeout=0.05):
        s = key.fileobj
        kind, t0, _ = conns[s]
        try:
            data = s.recv(65536)
        except OSError:
            data = b""
        if data.startswith(b"HTTP/1.1 503"):
            refused += 1
        elif data:
            status = data.split(b" ", 2)[1].decode()
            answered[kind + " " + status] = answered.get(kind + " " + status, 0) + 1
        else:
            cut.setdefault(kind, []).append(round(time.monotonic() - t0, 2))
        sel.unregister(s)
        s.close()
        del conns[s]
    now = time.monotonic()
    if waves == 1 and now - start > seconds / 3:  # the first wave's slots are free again
        out["connected"] += wave()
        waves = 2
    if now - last_drip > 0.2:
        last_drip = now
        for s, state in list(conns.items()):
            try:
                if state[0] == "slow":
                    s.send(b"a")
                elif state[0] == "body" and state[2] < length - 1:
                    state[2] += s.send(body[state[2]:min(length - 1, state[2] + 262144)])
                elif state[0] == "pipe" and state[2] < len(pipelined):
                    state[2] += s.send(pipelined[state[2]:state[2] + 262144])
            except OSError:
                pass
pipes = [s for s, state in conns.items() if state[0] == "pipe"]
for s in pipes:  # read what was answered: the gateway closed them after its read timeout
    s.settimeout(5)
    try:
        while s.recv(1 << 20):
            pass
        cut.setdefault("pipe", []).append(round(time.monotonic() - conns.pop(s)[1], 2))
    except OSError:
        pass
now = time.monotonic()
out.update(refused=refused, answered=answered,
           still_open=sorted((state[0], round(now - state[1], 1)) for state in conns.values()),
           cut={k: [len(v), max(v)] for k, v in cut.items()})
print(json.dumps(out))
'''


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class Peaks(threading.Thread):
    """Samples this process's open descriptors and RSS until stopped; keeps the maxima."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.fds, self.rss = _fds(), _rss()
        self.base = (self.fds, self.rss)
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.01):
            self.fds, self.rss = max(self.fds, _fds()), max(self.rss, _rss())


@pytest.mark.slow
def test_a_flood_on_one_session_stays_bounded_and_others_are_served(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeLLM(prompt_tokens=None)
    gateway = gateway_for(fake, keepalive_timeout=1.0, read_timeout=1.0)
    limits = gateway.limits

    async def scenario() -> tuple[Any, list[Any], Any, Peaks, int]:
        async with gateway:
            abused = gateway.session("abused")
            good = gateway.session("good", token_budget=20_000)
            await abused.start()
            await good.start()
            peaks = Peaks()
            peaks.start()
            attacker = await asyncio.create_subprocess_exec(
                sys.executable, "-c", ATTACKER, abused.socket_path, "10000", "6",
                stdout=asyncio.subprocess.PIPE)
            served = []
            while attacker.returncode is None:
                served.append(await run_guest(tmp_path / str(len(served)), good.socket_path, """
                    print(json.dumps([llm.models(), llm.chat("still there?", max_tokens=3)]))
                """))
                try:
                    await asyncio.wait_for(attacker.wait(), 0.3)
                except TimeoutError:
                    pass
            report = json.loads((await attacker.stdout.read()).decode())
            await asyncio.sleep(1.5)  # the attacker's connections are gone; timeouts ran out
            after = await raw_exchange(abused.socket_path, post(
                "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}))
            await asyncio.sleep(0.2)
            open_after = abused._http.open_connections
            await abused.close()
            await good.close()
            peaks.done.set()
            peaks.join()
            return report, served, after, peaks, open_after

    started = time.monotonic()
    report, served, after, peaks, open_after = asyncio.run(scenario())
    fd_growth, rss_growth = peaks.fds - peaks.base[0], peaks.rss - peaks.base[1]
    print(f"abuse: {report}; fd growth {fd_growth}, RSS growth {rss_growth / 2**20:.1f} MiB, "
          f"{len(caplog.records)} log records, {time.monotonic() - started:.1f} s")

    assert all(s is not None and 400 <= s < 500 for s in report["malformed"]), report
    assert report["connected"] > 1000 and report["refused"] > 1000
    # what is still open are bodies queued for one of the 8 request slots (each slot is
    # freed by the read timeout); slow heads and non-reading pipelines were cut off
    assert len(report["still_open"]) <= limits["max_connections_per_session"]
    assert all(kind == "body" for kind, _ in report["still_open"])
    assert report["cut"]["slow"] == [10, pytest.approx(1.0, abs=0.5)]  # keepalive_timeout
    assert report["cut"]["pipe"][0] == 6 and report["answered"]["body 408"] >= 16
    assert served and all(out == [[MODEL], "echo: still there?"] for out in served)
    assert after[0] == 200 and after[2]["choices"][0]["message"]["content"] == "echo: hi"
    assert open_after == 0 and gateway._gate.open == 0
    # descriptors: at most the session's connection cap, plus the guests' and attacker's
    # pipes; nothing scales with the 10,000 connection attempts
    assert fd_growth < limits["max_connections_per_session"] + 60
    # memory: 8 bodies being read (<= 2 MiB each with the joined copy) and 32 connections'
    # buffers; the old gateway grew by ~240 MB under the same flood
    assert rss_growth < 64 * 2**20
    # logs: the first problems of each session, then one summary line each
    assert len(caplog.records) < 60, [r.getMessage()[:100] for r in caplog.records[:80]]
    assert len(fake.calls) == len(served) + 1
