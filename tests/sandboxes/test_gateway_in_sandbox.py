"""A sandboxed agent reaches the LLM only through the gateway socket mounted into its sandbox."""

from __future__ import annotations

import asyncio
import json

from sandboxes import Job, Limits, Sandbox, guest_client_files

from .gateway_helpers import MODEL, FakeLLM, UsageLog, gateway_for

AGENT = b"""
import json, os
import cladeforge_llm as llm
out = {"socket": os.environ.get("CLADEFORGE_LLM_SOCKET"), "models": llm.models(),
       "answer": llm.chat("hello from the sandbox", max_tokens=5)}
try:
    llm.chat("one more", max_tokens=5)
    out["second"] = "answered"
except llm.TokenBudgetExceeded as exc:
    out["second"] = "budget: " + str(exc)
out["keys"] = sorted(k for k in os.environ if "KEY" in k or "TOKEN" in k)
json.dump(out, open("out.json", "w"))
"""


def test_a_sandboxed_agent_calls_the_llm_through_the_gateway(
        isolating_sandbox: Sandbox, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-host-secret")  # on the host only
    fake, log = FakeLLM(prompt_tokens=40), UsageLog()

    async def main():
        async with gateway_for(fake, log) as gateway:
            # the first prompt's bound is 22 bytes + 40 = 62: it fits, with 5 tokens to answer;
            # 70 - 45 leaves less than any request's bound
            async with gateway.session("cand-7", token_budget=70) as session:
                job = Job(("python3", "main.py"),
                          files={"main.py": AGENT, **guest_client_files()},
                          collect=("out.json",), llm_socket=session.socket_path,
                          limits=Limits(wall_seconds=60))
                return await asyncio.to_thread(isolating_sandbox.run, job)

    result = asyncio.run(main())
    assert result.ok, (result.reason, result.detail, result.stderr[-500:])
    out = json.loads(result.files["out.json"])
    assert out["socket"] == "/run/cladeforge/llm.sock"
    assert out["models"] == [MODEL]
    assert out["answer"] == "echo: hello from the sandbox"
    assert out["second"].startswith("budget: ") and "no further" in out["second"]
    assert out["keys"] == []
    [(key, usage)] = log.calls
    assert key == "cand-7" and usage.requests == 1 and usage.total_tokens == 45
    assert len(fake.calls) == 1
