"""Hostile candidates against every backend that claims isolation (bwrap and docker).

For every attack: it fails or is contained, the Result says why, the host is
unaffected (files unchanged, no process of the attack left, no secret in
what came back), and the next evaluations in the same sandbox (for docker:
the same warm pool) see an empty work dir, an empty /tmp and no leftover
process. Sizes are modest (128 MB memory, 1 MB output, 16 MB work dir).
Network checks only ever target loopback addresses the test itself serves.
"""
from __future__ import annotations

import pytest

from sandboxes import EndReason, Sandbox

from .hostile_helpers import LIMITS, assert_contained, attack

FORK_BOMB = """
import os, time
while True:
    if os.fork() == 0:
        time.sleep(300)
        os._exit(0)
"""

MEMORY_BOMB = """
hoard = []
while True:
    hoard.append(b"\\x01" * (8 << 20))
"""

INFINITE_LOOP = "while True:\n    pass\n"

BUSY_THREADS = """
import threading
def spin():
    while True:
        pass
for _ in range(8):
    threading.Thread(target=spin, daemon=True).start()
spin()
"""


@pytest.mark.parametrize(("code", "reason"), [
    pytest.param(FORK_BOMB, EndReason.PIDS, id="fork-bomb"),
    pytest.param(MEMORY_BOMB, EndReason.OOM, id="memory-bomb"),
    pytest.param(INFINITE_LOOP, EndReason.TIMEOUT, id="infinite-loop"),
    pytest.param(BUSY_THREADS, EndReason.TIMEOUT, id="busy-threads"),
])
def test_resource_attacks_end_with_their_reason(isolating_sandbox: Sandbox, token: str,
                                                code: str, reason: EndReason) -> None:
    result = attack(isolating_sandbox, token, code)
    assert result.reason is reason, result
    assert_contained(isolating_sandbox, token, result=result)


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_gigabytes_of_output_stop_at_the_cap(isolating_sandbox: Sandbox, token: str,
                                             stream: str) -> None:
    code = f"""
import sys
chunk = b"x" * (1 << 16)
for _ in range((4 << 30) // len(chunk)):
    sys.{stream}.buffer.write(chunk)
"""
    result = attack(isolating_sandbox, token, code)
    assert result.reason is EndReason.OUTPUT_LIMIT, result
    assert 0 < len(getattr(result, stream)) <= LIMITS.output_bytes
    assert_contained(isolating_sandbox, token, result=result)


FILL_ONE_FILE = """
try:
    with open("fill.bin", "wb") as handle:
        while True:
            handle.write(b"x" * (1 << 20))
            handle.flush()
except OSError as exc:
    print("stopped by", exc.errno)
"""

FILL_MANY_FILES = """
import os
os.mkdir("many")
try:
    for i in range(1 << 20):
        with open(f"many/{i}", "wb") as handle:
            handle.write(b"x" * 4096)
except OSError as exc:
    print("stopped by", exc.errno)
"""


@pytest.mark.parametrize("code", [pytest.param(FILL_ONE_FILE, id="one-file"),
                                  pytest.param(FILL_MANY_FILES, id="many-files")])
def test_filling_the_work_dir_is_an_output_limit(isolating_sandbox: Sandbox, token: str,
                                                 code: str) -> None:
    result = attack(isolating_sandbox, token, code, collect=("fill.bin",))
    assert result.reason is EndReason.OUTPUT_LIMIT, result  # even though it exited 0
    # a tmpfs work dir refuses the write (ENOSPC); a plain one (no root) is polled and killed
    assert b"stopped by" in result.stdout or "work dir reached its limit" in result.detail
    assert "fill.bin" not in result.files or len(result.files["fill.bin"]) <= 16 << 20
    assert_contained(isolating_sandbox, token, result=result)


# --- host secrets, host files, the trusted side -----------------------------------------
