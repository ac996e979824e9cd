"""Hostile agents against the LLM gateway from inside every isolating sandbox (class 4 of
the hardening issue): a connection flood, unfinished bodies, prompts far over the budget
and malformed requests, all from one candidate's session, while another session is served.
The run process's descriptors stay bounded and the abused session still answers after."""

from __future__ import annotations

import asyncio
import json
import os

from sandboxes import Job, Limits, Sandbox

from .gateway_helpers import MODEL, FakeLLM, gateway_for, post, raw_exchange

ATTACK = r"""
import json, os, socket, sys, time
PATH = os.environ["CLADEFORGE_LLM_SOCKET"]
report = {}

def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(PATH)
    return s

def status_of(s):
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        return None
    line = data.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) > 1 else None

def request(raw):
    s = connect()
    try:
        s.sendall(raw)
        return status_of(s)
    except OSError:
        return None
    finally:
        s.close()

def post(payload):
    body = json.dumps(payload).encode()
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
            % len(body)) + body

# 1. far over the budget: 900 KB prompts, then a prompt that only just does not fit
huge = post({"messages": [{"role": "user", "content": "x" * 900_000}]})
report["huge"] = [request(huge) for _ in range(5)]
report["over"] = [request(post({"messages": [{"role": "user", "content": "y" * 6_000}]}))]

# 2. malformed requests
MALFORMED = [b"HELLO\r\n\r\n", b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
             b"Content-Length: 1\xd9\xa3\r\n\r\n{}", b"GET /v1/models HTTP/1.1\r\n\r\n",
             b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n\r\n"
             + b"[" * 10000 + b"]" * 10000]
report["malformed"] = [request(raw) for raw in MALFORMED * 5]

# 3. unfinished bodies and idle connections held open: a flood of connections
held, refused = [], 0
for i in range(400):
    try:
        s = connect()
        if i % 2:
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: 1000000\r\n\r\n" + b"{" * 1000)
        held.append(s)
    except OSError:
        refused += 1
time.sleep(0.5)
open_now = 0
for s in held:  # a refused connection was answered 503 and closed
    s.setblocking(False)
    try:
        data = s.recv(65536)
        open_now += 0 if (data == b"" or data.startswith(b"HTTP/1.1 503")) else 1
    except BlockingIOError:
        open_now += 1
    except OSError:
        pass
report["flood"] = {"attempts": 400, "refused_at_connect": refused, "still_open": open_now}
print(json.dumps(report), flush=True)
time.sleep(3)  # hold what is still open while the host serves another session
"""


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_an_agent_flooding_its_gateway_from_a_sandbox_is_contained(
        isolating_sandbox: Sandbox) -> None:
    fake = FakeLLM(prompt_tokens=None)
    good_request = post("/v1/chat/completions",
                        {"messages": [{"role": "user", "content": "still there?"}],
                         "max_tokens": 3})

    async def main() -> tuple[object, list, tuple, int, int]:
        gateway = gateway_for(fake, keepalive_timeout=2.0, read_timeout=2.0)
        async with gateway:
            good = gateway.session("good")
            await good.start()
            before = _fds()
            async with gateway.session("attacker", token_budget=4000) as attacker:
                job = Job(("python3", "attack.py"), files={"attack.py": ATTACK.encode()},
                          llm_socket=attacker.socket_path,
                          limits=Limits(wall_seconds=60, pids=16, memory_mb=256))
                running = asyncio.ensure_future(asyncio.to_thread(isolating_sandbox.run, job))
                served, peak = [], before
                while not running.done():
                    served.append(await raw_exchange(good.socket_path, good_request))
                    peak = max(peak, _fds())
                    await asyncio.sleep(0.2)
                result = await running
                after = await raw_exchange(attacker.socket_path, post(
                    "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}],
                                             "max_tokens": 2}))
            await good.close()
            left = gateway._gate.open  # connections the gateway still holds: none
            return result, served, after, peak - before, left

    result, served, after, growth, left = asyncio.run(main())
    print(f"{isolating_sandbox!r}: {result.stdout.decode().strip()}; other session served "
          f"{len(served)} times; fd growth {growth}")
    assert result.ok, (result.reason, result.detail, result.stderr[-800:])
    report = json.loads(result.stdout)
    assert report["huge"] == [400] * 5  # refused before forwarding (or 413 for the body)
    assert report["over"] == [400]
    assert all(s is not None and 400 <= s < 500 for s in report["malformed"]), report
    flood = report["flood"]
    assert flood["still_open"] <= 32, flood  # the per-session connection cap
    # the other session was answered throughout the flood, and the attacker's afterwards
    assert served and all(s == 200 and b["choices"][0]["message"]["content"]
                          == "echo: still there?" for s, _, b in served)
    assert after[0] == 200 and after[2]["model"] == MODEL
    assert len(fake.calls) == len(served) + 1  # no attack request reached the LLM
    # the connection cap, plus the sandbox's pipes and the docker client's connections
    assert growth < 32 + 40, growth
    assert left == 0
