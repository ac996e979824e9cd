"""A slow or stuck LLM request never ends a run: an LLM failure after the client's retries
fails the one candidate it was for (invalid while its child was made, failed while it was
scored), and only a failure that will recur for every candidate (the server cannot be
reached at all, the key or the URL is wrong) stops the run, with one clear message. The
default request timeout grows with max_tokens."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import yaml

from archive import AddScores, Failure, Finish, Status
from evolve._clients import open_clients, request_timeout
from evolve._config import config_from_data
from evolve._engine import Engine
from evolve._errors import LLMError
from evolve._llm_failures import stops_the_run
from evolve._streams import Streams
from evolve.cli import main
from evolve.llm import LLMClient
from evolve.selection import Selection
from fitness import Example
from tests.evolve.species_stub import SpeciesStub
from tests.stub_openai import Reply, StubOpenAI

from .conftest import read_rows, status_json


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def failure_from(reply: Reply | None) -> LLMError:
    """The error a real client raises after its retries for ``reply`` (None: no server)."""
    async def ask(url: str) -> LLMError:
        client = LLMClient(url, "stub", timeout=0.5, max_retries=0)
        try:
            await client.chat([{"role": "user", "content": "hi"}])
        except LLMError as exc:
            return exc
        finally:
            await client.aclose()
        raise AssertionError("the request succeeded")

    if reply is None:
        return asyncio.run(ask(f"http://127.0.0.1:{closed_port()}/v1"))
    with StubOpenAI(reply) as stub:
        return asyncio.run(ask(stub.base_url))


@pytest.mark.parametrize(("reply", "stops"), [
    (Reply.slow(2.0), False),           # no answer in time: a slow or stuck generation
    (Reply.error(500), False),          # the server failed on this request
    (Reply.error(429), False),
    (Reply.error(400, "the request exceeds the available context size"), False),
    (Reply.drop(), False),              # connected, then closed without an answer
    (Reply.garbage(), False),           # answered with no completion
    (Reply.error(401), True),           # the API key: every request gets it
    (Reply.error(403), True),
    (Reply.error(404), True),           # the URL or the model name
    (None, True),                       # connection refused: the server is not there
])
def test_only_failures_that_recur_for_every_request_stop_the_run(reply: Reply | None,
                                                                 stops: bool) -> None:
    assert stops_the_run(failure_from(reply)) is stops


def test_a_client_with_no_http_url_stops_the_run() -> None:
    async def ask() -> LLMError:
        with pytest.raises(LLMError) as info:
            await LLMClient("ftp://host/v1", "stub").chat([{"role": "user", "content": "x"}])
        return info.value

    assert stops_the_run(asyncio.run(ask()))


# -- the engine's boundary, with errors as the client raises them -------------------------------
def timed_out() -> LLMError:
    error = LLMError("mutator LLM server at http://h/v1 did not answer (1 attempt, no answer "
                     "within 2 s each)")
    error.__cause__ = TimeoutError()
    return error


def refused() -> LLMError:
    error = LLMError("cannot reach the mutator LLM server at http://h/v1 (5 attempts): "
                     "connection refused")
    error.__cause__ = ConnectionRefusedError(111, "Connection refused")
    return error


class _Operator:
    name = "slow"

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def mutate(self, ctx: Any) -> Any:
        raise self.error


class _Species(SpeciesStub):
    kind = "code"

    def __init__(self, error: Exception) -> None:
        self.error = error

    def split(self, name: str) -> list[Example]:
        return [Example("e0", "q", "a"), Example("e1", "q", "a")]

    async def score(self, candidate: Any, split: str, examples: Any) -> Any:
        raise self.error


class _Writer:
    async def apply(self, change: Any, meta: Any = None) -> Any:
        return change


def engine(error: Exception) -> Engine:
    client = SimpleNamespace(stats=lambda: SimpleNamespace(
        calls=0, cache_hits=0, prompt_tokens=0, completion_tokens=0))
    parent = SimpleNamespace(id=1, genome={"commit": "abc"})
    storage = SimpleNamespace(get=lambda cid: parent)
    return Engine(storage=storage, writer=_Writer(), species=_Species(error),  # type: ignore[arg-type]
                  mutator=client, task=client, selector=None,  # type: ignore[arg-type]
                  operators={"slow": _Operator(error)}, weights=np.ones(1), streams=Streams(0),
                  batch_size=2, validation_size=None, usage_before={})


SELECTION = Selection(parent=1, retire=(1,))
CANDIDATE = SimpleNamespace(id=7, slot=3, mutation={})


def test_a_mutation_that_times_out_makes_an_invalid_child_with_the_reason() -> None:
    child = asyncio.run(engine(timed_out()).make_child(5, SELECTION, 1))  # type: ignore[arg-type]
    invalid = child.new.mutation["invalid"]
    assert invalid.startswith("mutator LLM failed: ") and "did not answer" in invalid
    assert child.new.mutation["failure"] == "timeout"
    assert child.new.genome == {"commit": "abc"} and child.retire == ()


def test_a_scoring_or_validation_that_times_out_fails_only_that_candidate() -> None:
    finish = asyncio.run(engine(timed_out()).evaluate(CANDIDATE))  # type: ignore[arg-type]
    assert isinstance(finish, Finish) and finish.status is Status.FAILED
    assert finish.reason.startswith("task LLM failed: ")
    assert finish.failure is Failure.TIMEOUT
    change = asyncio.run(engine(timed_out()).validate(CANDIDATE))  # type: ignore[arg-type]
    assert isinstance(change, AddScores) and change.score.mean == 0.0
    assert all(e.output.startswith("task LLM failed: ") for e in change.score.examples)


def test_an_unreachable_server_stops_the_run_at_every_step() -> None:
    with pytest.raises(LLMError, match="cannot reach"):
        asyncio.run(engine(refused()).make_child(5, SELECTION, 1))  # type: ignore[arg-type]
    with pytest.raises(LLMError, match="cannot reach"):
        asyncio.run(engine(refused()).evaluate(CANDIDATE))  # type: ignore[arg-type]
    with pytest.raises(LLMError, match="cannot reach"):
        asyncio.run(engine(refused()).validate(CANDIDATE))  # type: ignore[arg-type]


# -- the default timeout ------------------------------------------------------------------------
def test_the_default_timeout_grows_with_max_tokens_and_a_set_one_wins() -> None:
    llm = config_from_data({"llm": {"mutator": {"max_tokens": 1536},
                                    "task": {"timeout": 30}}}).llm
    assert request_timeout(llm.mutator, "mutator") == 60 + 1536 / 2
    assert request_timeout(llm.task, "task") == 30
    default = config_from_data({}).llm
    assert request_timeout(default.mutator, "mutator") == 60 + 160 / 2  # the role's default


def test_the_clients_get_the_derived_timeout() -> None:
    with StubOpenAI() as stub:
        llm = {"backend": "external", "base_url": stub.base_url, "max_tokens": 1536}
        config = config_from_data({"llm": {"mutator": llm, "task": llm}}).llm

        async def timeouts() -> list[float]:
            async with open_clients(config, None) as clients:  # type: ignore[arg-type]
                return [clients.mutator.timeout, clients.task.timeout]

        assert asyncio.run(timeouts()) == [828.0, 828.0]


# -- end to end: a code run with a slow mutator, and with none ----------------------------------
def code_run_config(tmp_path: Path, url: str, **mutator: Any) -> Path:
    llm = {"backend": "external", "base_url": url, "model": "stub", "max_retries": 0,
           "timeout": 1.0, **mutator}
    data = {"runs_dir": str(tmp_path / "runs"), "seed": 1, "llm": {"mutator": llm},
            "fitness": {"benchmark": "circle_packing", "batch_size": 1, "validate_top": 0},
            "evolution": {"genome": "code", "population_size": 2, "generation_size": 1,
                          "operators": {"diff_edit": 1.0}},
            "sandbox": {"backend": "process"}, "budget": {"candidates": 3}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_code_run_goes_on_after_a_mutation_times_out(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    with StubOpenAI() as stub:
        stub.script(Reply.slow(3.0))  # the first mutation: no answer within the 1 s timeout
        config = code_run_config(tmp_path, stub.base_url)
        assert main(["run", str(config), "--name", "slow", "--quiet"]) == 0, \
            capsys.readouterr().err
    run_dir = tmp_path / "runs" / "slow"
    assert status_json(run_dir)["state"] == "finished"
    rows = read_rows(run_dir, "SELECT id, status, reason, failure FROM candidates ORDER BY id")
    assert [r[0] for r in rows] == [1, 2, 3]
    assert rows[1][1] == "invalid" and rows[1][2].startswith("mutator LLM failed: ")
    assert rows[1][3] == "timeout"
    assert "did not answer" in rows[1][2]
    assert "mutator LLM failed" not in (rows[2][2] or "")  # the next child was made as usual


def test_a_code_run_whose_mutator_cannot_be_reached_stops_with_one_message(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    config = code_run_config(tmp_path, url)
    assert main(["run", str(config), "--name", "dead", "--quiet"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "cannot reach" in lines[0] and url in lines[0]
    assert "Traceback" not in err
    data = status_json(tmp_path / "runs" / "dead")
    assert data["state"] == "stopped" and "cannot reach" in data["stop_reason"]
    assert data["candidates"] == 1  # the seed: no child was recorded for the dead server
