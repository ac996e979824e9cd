"""Only the model roles a run uses are opened: a code run whose benchmark calls no LLM starts
no server for the task model and does not check its settings; a prompt run needs both."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from evolve._clients import ROLES, RoleNotOpened, open_clients, preflight
from evolve._config import config_from_data
from evolve._errors import ModelFileError
from evolve._genome_kinds import GENOME_KINDS
from evolve.cli import main
from fitness.code import make_code_benchmark
from tests.stub_openai import StubOpenAI

from .conftest import read_rows, status_json

MISSING_MODEL = "/nonexistent/models/qwen-0.5b.gguf"


def llm_config(mutator_url: str) -> dict[str, Any]:
    """An external mutator, and a task role whose model file does not exist."""
    return {"mutator": {"backend": "external", "base_url": mutator_url, "model": "stub",
                        "max_retries": 0, "timeout": 10.0},
            "task": {"backend": "llamacpp", "model_path": MISSING_MODEL}}


class _Cache:
    def cache_get(self, key: str) -> None:
        return None

    def cache_store(self, key: str, request: str, response: str) -> None:
        pass


def test_each_kind_names_the_roles_its_runs_call() -> None:
    prompt, code = GENOME_KINDS["prompt"], GENOME_KINDS["code"]
    assert prompt.roles(None) == frozenset(ROLES)
    assert code.roles(make_code_benchmark("circle_packing")) == {"mutator"}
    agent = type("Agent", (), {"needs_llm": True})()  # an agent benchmark calls the task model
    assert code.roles(agent) == {"mutator", "task"}


def test_an_unused_role_is_neither_checked_nor_opened_and_asking_for_it_fails_loudly() -> None:
    with StubOpenAI() as stub:
        config = config_from_data({"llm": llm_config(stub.base_url)}).llm
        with pytest.raises(ModelFileError, match=MISSING_MODEL):
            preflight(config)  # both roles: the task model's file is missing
        preflight(config, {"mutator"})

        async def use() -> None:
            async with open_clients(config, _Cache(), {"mutator"}) as clients:
                assert clients.roles == {"mutator"}
                assert clients.opened("task") is None
                with pytest.raises(RoleNotOpened, match="the task model .* does not use it"):
                    clients.task  # noqa: B018 - asking is the test
                answer = await clients.mutator.chat([{"role": "user", "content": "hi"}])
                assert answer.text == "echo: hi"

        asyncio.run(use())
        with pytest.raises(ValueError, match="unknown model role"):
            preflight(config, {"critic"})


def write_config(tmp_path: Path, mutator_url: str, **extra: Any) -> Path:
    data = {"runs_dir": str(tmp_path / "runs"), "seed": 1, "llm": llm_config(mutator_url),
            "fitness": {"benchmark": "circle_packing", "batch_size": 1, "validate_top": 0},
            "evolution": {"genome": "code", "population_size": 2, "generation_size": 1,
                          "operators": {"diff_edit": 1.0}},
            "sandbox": {"backend": "process"},
            "budget": {"candidates": 3}, **extra}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_code_run_on_a_program_benchmark_never_touches_the_task_role(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with StubOpenAI() as stub:
        config = write_config(tmp_path, stub.base_url)
        assert main(["run", str(config), "--name", "packing", "--quiet"]) == 0, \
            capsys.readouterr().err
        # the stub's echo makes no child: each of the 2 children is a request and one repair
        assert len(stub.requests) == 4
    run_dir = tmp_path / "runs" / "packing"
    data = status_json(run_dir)
    assert data["state"] == "finished" and data["candidates"] == 3
    per_role = data["llm"]["per_role"]
    assert per_role["mutator"]["calls"] == 4 and per_role["task"]["calls"] == 0
    assert read_rows(run_dir, "SELECT count(*) FROM candidates")[0][0] == 3


def test_a_prompt_run_still_needs_the_task_model(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with StubOpenAI() as stub:
        config = write_config(tmp_path, stub.base_url, fitness={"benchmark": "arithmetic"},
                              evolution={"genome": "prompt"}, sandbox={})
        assert main(["run", str(config), "--name", "prompts", "--quiet"]) == 2
        assert not stub.requests
    err = capsys.readouterr().err
    assert err.startswith("error: ") and MISSING_MODEL in err
    assert not (tmp_path / "runs" / "prompts").exists()


@pytest.mark.parametrize("grammar_field", ["grammar", None])
def test_a_runs_requests_carry_the_operators_grammar_when_the_server_takes_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], grammar_field: str | None) -> None:
    """The run's clients, not only a server's own client, send each answer's grammar in the
    server's field (a run once built its clients without it, so no grammar reached the
    server); a server that takes none gets no grammar field."""
    with StubOpenAI() as stub:
        llm = llm_config(stub.base_url)
        llm["mutator"]["grammar_field"] = grammar_field
        config = write_config(tmp_path, stub.base_url, llm=llm)
        assert main(["run", str(config), "--name", "packing", "--quiet"]) == 0, \
            capsys.readouterr().err
        bodies = stub.bodies
    assert len(bodies) == 4
    if grammar_field is None:
        assert not any("grammar" in body for body in bodies)
    else:  # the per-parent SEARCH/REPLACE grammar of diff_edit
        assert all("<<<<<<< SEARCH" in body["grammar"] and body["grammar"].startswith("root ::=")
                   for body in bodies)


@pytest.mark.parametrize("constrained", [True, False])
def test_the_initial_populations_grammar_follows_the_config(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], constrained: bool) -> None:
    """``evolution.initial_population_constrained`` decides whether the task-prompts written
    for the initial population are sent with the instruction grammar."""
    with StubOpenAI() as stub:
        llm = llm_config(stub.base_url)
        llm["mutator"]["grammar_field"] = "grammar"
        llm["task"] = dict(llm["mutator"])  # the task model answers too, never constrained
        config = write_config(
            tmp_path, stub.base_url, llm=llm, sandbox={},
            fitness={"benchmark": "arithmetic", "batch_size": 1, "validate_top": 0},
            evolution={"genome": "prompt", "population_size": 3,
                       "initial_population_constrained": constrained},
            budget={"candidates": 3})
        assert main(["run", str(config), "--name", "init", "--quiet"]) == 0, \
            capsys.readouterr().err
        bodies = stub.bodies
    # the seed, and 2 founders written by the mutator (the rest are the task model's answers)
    written = [b for b in bodies
               if b["messages"][0]["content"].startswith("You write and improve instructions")]
    assert len(written) >= 2
    assert all(("grammar" in b) is constrained for b in written)
    assert all(b["grammar"].startswith("root ::=") for b in bodies if "grammar" in b)
    assert len([b for b in bodies if "grammar" in b]) == (len(written) if constrained else 0)
