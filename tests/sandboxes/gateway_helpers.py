"""Helpers for the LLM gateway tests: a fake LLM, a guest process runner, raw HTTP."""

from __future__ import annotations

import asyncio
import copy
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from sandboxes import (
    LLM_SOCKET_ENV,
    GatewayUsage,
    LLMGateway,
    guest_client_files,
    openai_completion,
)
from sandboxes._job_files import write_files

#: The model name the test gateways serve.
MODEL = "served-model"

#: Run before every guest script: ``attempt(fn, ...)`` turns a gateway error into a dict.
PRELUDE = '''
import json, sys
import cladeforge_llm as llm

def attempt(fn, *args, **kw):
    try:
        return {"ok": fn(*args, **kw)}
    except llm.LLMGatewayError as exc:
        return {"error": type(exc).__name__, "status": exc.status, "type": exc.type,
                "code": exc.code, "message": str(exc)}
'''


class FakeLLM:
    """A ``forward`` callable that answers like an OpenAI server and records every call.

    Each answer costs ``prompt_tokens`` (None: the UTF-8 bytes of the prompt's
    texts, as a byte-level tokenizer's worst case would) and uses its whole
    ``max_tokens`` (the worst case for a budget), or ``default_max`` without
    one. ``fail`` is raised instead of answering; ``gate`` (an Event) is
    awaited before answering.
    """

    def __init__(self, prompt_tokens: int | None = 10, default_max: int = 50) -> None:
        self.prompt_tokens = prompt_tokens
        self.default_max = default_max
        self.fail: BaseException | None = None
        self.gate: asyncio.Event | None = None
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((path, copy.deepcopy(body)))
        if self.gate is not None:
            await self.gate.wait()
        for _ in range(3):  # let other requests in, as a real server's answer would
            await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail
        texts = [m["content"] for m in body["messages"]] if "messages" in body else [
            body["prompt"]]
        prompt_tokens = self.prompt_tokens
        if prompt_tokens is None:
            prompt_tokens = sum(len(t.encode("utf-8")) for t in texts)
        return openai_completion(path, body["model"], f"echo: {texts[-1][:1000]}",
                                 prompt_tokens=prompt_tokens,
                                 completion_tokens=body.get("max_tokens", self.default_max),
                                 finish_reason="length")


def gateway_for(fake: FakeLLM, log: UsageLog | None = None, **kw: Any) -> LLMGateway:
    """A gateway serving ``MODEL`` through ``fake``, reporting usage to ``log``."""
    return LLMGateway(fake, [MODEL], on_usage=log, **kw)


class UsageLog:
    """An ``on_usage`` callback that keeps what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, GatewayUsage]] = []

    def __call__(self, key: str, usage: GatewayUsage) -> None:
        self.calls.append((key, usage))


async def run_guest(work: Path, socket_path: str, code: str,
                    python: str = sys.executable) -> Any:
    """Run ``code`` (after ``PRELUDE``) as ``python main.py`` in ``work`` with the guest helper
    beside it and an environment holding only the socket variable; return its JSON stdout."""
    script = PRELUDE + textwrap.dedent(code)
    work.mkdir(parents=True, exist_ok=True)
    write_files(work, {**guest_client_files(), "main.py": script.encode()})
    proc = await asyncio.create_subprocess_exec(
        python, "main.py", cwd=work, env={LLM_SOCKET_ENV: socket_path},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, f"guest exited {proc.returncode}:\n{err.decode()}"
    return json.loads(out)


async def raw_exchange(socket_path: str, data: bytes) -> tuple[int, dict[str, str], Any]:
    """Send raw bytes on a fresh connection; return the status, headers and JSON body."""
    reader, writer = await asyncio.open_unix_connection(socket_path)
    try:
        writer.write(data)
        await writer.drain()
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        while head[0].startswith("HTTP/1.1 1"):  # an interim answer (100 Continue)
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = {}
        for line in head[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers["content-length"]))
        return int(head[0].split()[1]), headers, json.loads(body)
    finally:
        writer.close()


def post(path: str, payload: Any, extra: str = "") -> bytes:
    """A raw HTTP/1.1 POST of ``payload`` as JSON."""
    body = json.dumps(payload).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body
