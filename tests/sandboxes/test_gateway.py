"""The LLM gateway, driven by the guest helper in a real subprocess (a cleared environment
holding only the socket variable) against a fake LLM, and once against the real local model."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evolve.code._gateway_bridge import client_forward
from sandboxes import (
    GatewayUsage,
    LLMGateway,
    SandboxError,
    UpstreamError,
    guest_client_files,
)
from sandboxes._gateway_request import (
    MESSAGE_OVERHEAD_TOKENS,
    REQUEST_OVERHEAD_TOKENS,
    prompt_token_bound,
)
from tests.local_model import local_server
from tests.sandboxes.gateway_helpers import (
    MODEL,
    FakeLLM,
    UsageLog,
    gateway_for,
    raw_exchange,
    run_guest,
)


def test_chat_complete_and_models_from_a_guest_process(tmp_path: Path) -> None:
    fake, log = FakeLLM(prompt_tokens=10), UsageLog()

    async def scenario() -> tuple[Any, GatewayUsage]:
        async with gateway_for(fake, log).session("cand-1") as session:
            out = await run_guest(tmp_path, session.socket_path, """
                print(json.dumps([
                    llm.chat("hello", max_tokens=5),
                    llm.complete("once upon", max_tokens=4),
                    llm.models(),
                    llm.chat_response([{"role": "user", "content": "hi"}], max_tokens=3)["usage"],
                ]))
            """)
            return out, session.usage

    out, usage = asyncio.run(scenario())
    assert out[:3] == ["echo: hello", "echo: once upon", [MODEL]]
    assert out[3] == {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
    assert [path for path, _ in fake.calls] == [
        "/v1/chat/completions", "/v1/completions", "/v1/chat/completions"]
    assert usage == GatewayUsage(requests=3, prompt_tokens=30, completion_tokens=12)
    assert log.calls == [("cand-1", usage)]


def test_model_is_overridden_and_only_whitelisted_fields_pass(tmp_path: Path) -> None:
    fake = FakeLLM()

    async def scenario() -> None:
        gateway = LLMGateway(fake, [MODEL, "other-model"])
        async with gateway.session("cand") as session:
            await run_guest(tmp_path, session.socket_path, """
                llm.chat_response(
                    [{"role": "system", "content": "be brief", "name": "x"},
                     {"role": "user", "content": [{"type": "text", "text": "a"},
                                                  {"type": "text", "text": "b"}]}],
                    model="gpt-4o", tools=[{"type": "function"}], logit_bias={"1": 100},
                    user="someone", response_format={"type": "json_object"}, temperature=0.5,
                    top_p=0.9, stop="END", seed=7, n=1, max_completion_tokens=9, stream=False)
                llm.complete("p", model="other-model", echo=True, best_of=5)
                print("[]")
            """)

    asyncio.run(scenario())
    assert fake.calls[0] == ("/v1/chat/completions", {
        "model": MODEL,
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "ab"}],
        "max_tokens": 9, "temperature": 0.5, "top_p": 0.9, "seed": 7, "stop": ["END"]})
    assert fake.calls[1] == ("/v1/completions", {"model": "other-model", "prompt": "p"})


BAD_REQUESTS = [
    ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}],
                                      "stream": True}, 400, "stream_not_supported"),
    ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "n": 2},
     400, "n_not_supported"),
    ("POST", "/v1/chat/completions", {"prompt": "no messages"}, 400, "invalid_field"),
    ("POST", "/v1/chat/completions", {"messages": [{"role": "tool", "content": "x"}]},
     400, "invalid_field"),
    ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}],
                                      "temperature": 9}, 400, "invalid_field"),
    ("POST", "/v1/completions", {"prompt": "x", "max_tokens": 0}, 400, "invalid_field"),
    ("POST", "/v1/completions", {"prompt": ["a", "b"]}, 400, "invalid_field"),
    ("GET", "/v1/chat/completions", None, 405, "method_not_allowed"),
    ("POST", "/v1/embeddings", {"input": "x"}, 404, "unknown_endpoint"),
]


def test_bad_requests_get_clear_errors_and_reach_no_llm(tmp_path: Path) -> None:
    fake = FakeLLM()

    async def scenario() -> Any:
        async with gateway_for(fake).session("cand") as session:
            return await run_guest(tmp_path, session.socket_path, f"""
                client = llm.Client()
                out = [attempt(client.request, m, p, b) for m, p, b, _, _ in {BAD_REQUESTS!r}]
                out.append(attempt(client.chat, "still fine"))
                print(json.dumps(out))
            """)

    out = asyncio.run(scenario())
    for (_, _, _, status, code), got in zip(BAD_REQUESTS, out, strict=False):
        assert (got["error"], got["status"], got["code"]) == ("LLMGatewayError", status, code), got
        assert got["message"].startswith(f"LLM gateway error (HTTP {status}): ")
    assert "stream" in out[0]["message"]
    assert out[-1] == {"ok": "echo: still fine"}
    assert len(fake.calls) == 1


def test_oversized_and_chunked_bodies_are_refused(tmp_path: Path) -> None:
    fake = FakeLLM()

    async def scenario() -> tuple[Any, Any]:
        async with gateway_for(fake, max_body_bytes=100_000).session("cand") as session:
            out = await run_guest(tmp_path, session.socket_path, """
                client = llm.Client()
                print(json.dumps([attempt(client.chat, "x" * 200_000),
                                  attempt(client.chat, "small")]))
            """)
            chunked = await raw_exchange(session.socket_path, (
                b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n0\r\n\r\n"))
            return out, chunked

    out, (status, headers, body) = asyncio.run(scenario())
    assert (out[0]["status"], out[0]["code"]) == (413, "body_too_large")
    assert "100000 bytes" in out[0]["message"]
    assert out[1] == {"ok": "echo: small"}
    assert status == 400 and headers["connection"] == "close"
    assert body["error"]["code"] == "transfer_encoding_not_supported"
    assert set(body["error"]) >= {"message", "type", "code"}
    assert len(fake.calls) == 1


def test_forward_failures_are_502_without_host_details(tmp_path: Path) -> None:
    fake, log = FakeLLM(), UsageLog()
    secret = "cannot reach http://10.9.8.7:8000/v1 with Authorization: Bearer sk-SECRET"

    async def scenario() -> Any:
        async with gateway_for(fake, log).session("cand") as session:
            fake.fail = RuntimeError(secret)
            first = await run_guest(tmp_path, session.socket_path,
                                    'print(json.dumps(attempt(llm.chat, "hi")))')
            fake.fail = UpstreamError("the prompt is longer than the model's context", 400)
            second = await run_guest(tmp_path, session.socket_path,
                                     'print(json.dumps(attempt(llm.chat, "hi")))')
            return first, second

    first, second = asyncio.run(scenario())
    assert (first["status"], first["type"], first["code"]) == (502, "upstream_error",
                                                               "upstream_failed")
    assert "RuntimeError" in first["message"]
    for leak in ("10.9.8.7", "sk-SECRET", "Bearer", "http"):
        assert leak not in first["message"]
    assert second["status"] == 400 and "longer than the model's context" in second["message"]
    assert log.calls == [("cand", GatewayUsage(failed=2))]


def test_keep_alive_serves_many_requests_on_one_connection(tmp_path: Path) -> None:
    fake = FakeLLM()

    async def scenario() -> tuple[Any, int, GatewayUsage]:
        async with gateway_for(fake).session("cand") as session:
            out = await run_guest(tmp_path, session.socket_path, """
                socks = []
                with llm.Client() as client:
                    for i in range(4):
                        client.chat("q%d" % i, max_tokens=2)
                        socks.append(id(client._conn.sock))
                    client.models()
                    socks.append(id(client._conn.sock))
                print(json.dumps(len(set(socks))))
            """)
            return out, session.connections, session.usage

    distinct, connections, usage = asyncio.run(scenario())
    assert distinct == 1 and connections == 1
    assert usage.requests == 4


def test_token_budget_is_enforced_and_reported(tmp_path: Path) -> None:
    fake, log = FakeLLM(prompt_tokens=10), UsageLog()
    bound = prompt_token_bound({"messages": [{"role": "user", "content": "q0"}]})
    assert bound == 2 + MESSAGE_OVERHEAD_TOKENS + REQUEST_OVERHEAD_TOKENS == 42

    async def scenario() -> tuple[Any, GatewayUsage]:
        async with gateway_for(fake, log).session("cand-b", token_budget=170) as session:
            out = await run_guest(tmp_path, session.socket_path, """
                results = []
                for i in range(10):
                    try:
                        results.append(llm.chat_response("q%d" % i, max_tokens=30)["usage"])
                    except llm.TokenBudgetExceeded as exc:
                        results.append({"refused": str(exc), "status": exc.status,
                                        "type": exc.type})
                        break
                results.append(attempt(llm.chat, "after"))
                print(json.dumps(results))
            """)
            return out, session.usage

    out, usage = asyncio.run(scenario())
    # 10+30 three times leaves 50; the bound 42 leaves 8 for max_tokens: 10+8 -> 138 used,
    # 32 left, less than the bound of any request
    assert [body["max_tokens"] for _, body in fake.calls] == [30, 30, 30, 8]
    assert [r["total_tokens"] for r in out[:4]] == [40, 40, 40, 18]
    refusal = out[4]
    assert refusal["status"] == 429 and refusal["type"] == "token_budget_exceeded"
    assert "170" in refusal["refused"] and "138" in refusal["refused"]
    assert "no further" in refusal["refused"]
    assert out[5]["error"] == "TokenBudgetExceeded"
    assert usage == GatewayUsage(requests=4, prompt_tokens=40, completion_tokens=98, refused=2)
    assert usage.total_tokens <= 170
    assert log.calls == [("cand-b", usage)]


def test_max_tokens_cap_applies_with_and_without_max_tokens(tmp_path: Path) -> None:
    fake = FakeLLM()

    async def scenario() -> None:
        async with gateway_for(fake).session("cand", max_tokens_cap=8) as session:
            await run_guest(tmp_path, session.socket_path, """
                llm.chat("a", max_tokens=100); llm.chat("b"); llm.chat("c", max_tokens=3)
                print("[]")
            """)

    asyncio.run(scenario())
    assert [body["max_tokens"] for _, body in fake.calls] == [8, 8, 3]


def test_concurrent_sessions_are_metered_separately(tmp_path: Path) -> None:
    fake, log = FakeLLM(prompt_tokens=5), UsageLog()

    async def scenario() -> None:
        gateway = gateway_for(fake, log)
        async with gateway.session("one") as one, gateway.session("two") as two:
            assert one.socket_path != two.socket_path
            await asyncio.gather(
                run_guest(tmp_path / "one", one.socket_path,
                          'llm.chat("x", max_tokens=1); print("[]")'),
                run_guest(tmp_path / "two", two.socket_path,
                          '[llm.chat("y", max_tokens=2) for _ in range(3)]; print("[]")'))

    asyncio.run(scenario())
    assert sorted(log.calls) == [
        ("one", GatewayUsage(requests=1, prompt_tokens=5, completion_tokens=1)),
        ("two", GatewayUsage(requests=3, prompt_tokens=15, completion_tokens=6))]


def test_socket_is_private_connectable_and_removed_on_close(tmp_path: Path) -> None:
    fake, log = FakeLLM(), UsageLog()

    short = tempfile.mkdtemp(prefix="cf-")  # tmp_path can be too long for a socket path
    long = tmp_path / ("d" * 100)
    long.mkdir()

    async def scenario() -> tuple[str, Any]:
        with pytest.raises(SandboxError, match="socket_dir"):
            await gateway_for(fake, socket_dir=str(long)).session("long").start()
        assert list(long.iterdir()) == []
        async with gateway_for(fake, log, socket_dir=short).session("cand") as session:
            path = session.socket_path
            mode = os.stat(path).st_mode
            assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o666
            assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o711
            assert os.path.dirname(os.path.dirname(path)) == short
        after = await run_guest(tmp_path / "guest", path,
                                'print(json.dumps(attempt(llm.chat, "late")))')
        return path, after

    try:
        path, after = asyncio.run(scenario())
    finally:
        shutil.rmtree(short)
    assert not os.path.exists(path) and not os.path.exists(os.path.dirname(path))
    assert after["error"] == "LLMGatewayError" and after["status"] is None
    assert "cannot reach the LLM gateway" in after["message"] and path in after["message"]
    assert log.calls == [("cand", GatewayUsage())] and not fake.calls


@pytest.fixture(scope="module")
def python38() -> str:
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [shutil.which("python3.8"), *map(str, pyenv.glob("versions/3.8*/bin/python3.8"))]
    for exe in filter(None, candidates):
        found = subprocess.run([exe, "-c", "import sys; print(sys.executable)"],
                               capture_output=True, text=True, timeout=120)
        if found.returncode == 0 and found.stdout.strip():
            return found.stdout.strip()
    pytest.skip("needs a python3.8 interpreter to check that the guest helper runs on 3.8")


def test_guest_helper_runs_on_python_3_8(tmp_path: Path, python38: str) -> None:
    fake = FakeLLM()

    async def scenario() -> Any:
        # room for the bound of chat("a") (41) and one token; then not even an empty prompt
        async with gateway_for(fake).session("cand", token_budget=42) as session:
            return await run_guest(tmp_path, session.socket_path, """
                print(json.dumps([sys.version_info[:2], llm.chat("a"), llm.models(),
                                  attempt(llm.complete, "b")]))
            """, python=python38)

    version, text, names, refused = asyncio.run(scenario())
    assert version == [3, 8] and text == "echo: a" and names == [MODEL]
    assert refused["error"] == "TokenBudgetExceeded"
    assert list(guest_client_files()) == ["cladeforge_llm.py"]


# -- the real local model ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def llama() -> Iterator[Any]:
    """The real llama.cpp server with the embedded SmolLM2 model."""
    yield from local_server()


@pytest.mark.model
@pytest.mark.slow
def test_guest_chat_through_the_real_local_model(tmp_path: Path, llama: Any) -> None:
    log = UsageLog()

    async def scenario() -> tuple[Any, Any, GatewayUsage]:
        async with llama.client() as client:
            forward = client_forward(client)  # the run's adapter (evolve)
            gateway = LLMGateway(forward, [client.model], on_usage=log)
            async with gateway.session("real", token_budget=150) as session:
                out = await run_guest(tmp_path, session.socket_path, """
                    first = llm.chat("What is the capital of France?", max_tokens=12,
                                     temperature=0.0)
                    usages = []
                    for i in range(20):
                        try:
                            r = llm.chat_response("Name a colour. (%d)" % i, max_tokens=12,
                                                  temperature=0.0)
                        except llm.TokenBudgetExceeded as exc:
                            usages.append(str(exc))
                            break
                        usages.append(r["usage"])
                    print(json.dumps([first, usages]))
                """)
            return out, client.stats(), session.usage

    (first, usages), stats, usage = asyncio.run(scenario())
    assert isinstance(first, str) and first.strip()
    assert isinstance(usages[-1], str) and "token budget exceeded" in usages[-1]
    answered = usages[:-1]
    assert usage.requests == 1 + len(answered) == stats.calls and usage.refused == 1
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        stats.prompt_tokens, stats.completion_tokens)
    assert usage.prompt_tokens > 5 * usage.requests and usage.completion_tokens > 0
    before_last = usage.total_tokens - answered[-1]["total_tokens"]
    assert before_last < 150  # the last request was admitted below the budget...
    assert answered[-1]["completion_tokens"] <= 150 - before_last  # ...its completion clamped
    # a real tokenizer and chat template stay within the gateway's prompt bound
    assert usage.total_tokens <= 150
    assert log.calls == [("real", usage)]


def test_a_seeded_session_seeds_requests_that_name_none(tmp_path: Path) -> None:
    fake = FakeLLM()

    async def scenario() -> None:
        async with gateway_for(fake) as gateway:
            async with gateway.session("s", seed=40) as session:
                await run_guest(tmp_path, session.socket_path, """
                    llm.chat("a"); llm.chat("b", seed=7); llm.chat("c")
                    print(json.dumps(None))
                """)

    asyncio.run(scenario())
    assert [body.get("seed") for _, body in fake.calls] == [40, 7, 41]
