"""Fixtures for the LLM layer: the stub server and the real local llama.cpp server."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from evolve._errors import ModelFileError
from evolve.llm import LlamaCppServer, find_embedded_model
from tests.stub_openai import StubOpenAI


def local_model_missing() -> str | None:
    """Why the embedded local model cannot run here, or None when it can."""
    if importlib.util.find_spec("xllamacpp") is None:
        return "needs xllamacpp (pip install 'cladeforge[local]')"
    try:
        find_embedded_model()
    except ModelFileError as exc:
        return f"needs the embedded model: {exc}"
    return None


class DictCache:
    """An in-memory ResponseCache that records what was put (keeps the first put)."""

    def __init__(self) -> None:
        self.items: dict[str, tuple[Mapping[str, Any], Mapping[str, Any]]] = {}
        self.gets = 0

    def cache_get(self, key: str) -> Mapping[str, Any] | None:
        self.gets += 1
        item = self.items.get(key)
        return item[1] if item else None

    def cache_store(self, key: str, request: Mapping[str, Any] | str,
                    response: Mapping[str, Any] | str) -> None:
        decoded = [json.loads(x) if isinstance(x, str) else x for x in (request, response)]
        self.items.setdefault(key, (decoded[0], decoded[1]))


@pytest.fixture
def stub() -> Iterator[StubOpenAI]:
    with StubOpenAI() as server:
        yield server


@pytest.fixture
def cache() -> DictCache:
    return DictCache()


@pytest.fixture(scope="session")
def embedded_model() -> Path:
    try:
        return find_embedded_model()
    except ModelFileError as exc:
        pytest.skip(f"needs the embedded model: {exc}")


@pytest.fixture(scope="session")
def local_model() -> Path:
    """The embedded model's path, when xllamacpp and the model are both installed."""
    reason = local_model_missing()
    if reason:
        pytest.skip(reason)
    return find_embedded_model()


@pytest.fixture(scope="session")
def llamacpp_server() -> Iterator[LlamaCppServer]:
    """The real llama.cpp server with the real SmolLM2 model, started once.

    One thread: on a busy (or small) machine llama.cpp's threads wait on each
    other when a core is taken by someone else, and a 135M model is fast enough.
    """
    reason = local_model_missing()
    if reason:
        pytest.skip(reason)
    server = LlamaCppServer(n_parallel=4, n_ctx=4096, threads=1)
    asyncio.run(server.start())
    yield server
    asyncio.run(server.stop())
