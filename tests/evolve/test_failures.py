"""Bad input and broken LLM servers: one clear message or a recorded failure, never a
traceback or a corrupt archive."""

from __future__ import annotations

import socket

import pytest

from ..stub_openai import Reply, StubOpenAI
from .conftest import read_rows, run_evolve, status_json


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def external(base_url: str, **extra) -> dict:
    return {"backend": "external", "base_url": base_url, "model": "stub", "max_retries": 1,
            "timeout": 2.0, **extra}


def assert_user_error(result, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_dead_server_stops_cleanly_with_a_clear_message(make_config, tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    config = make_config({"llm": {"mutator": external(url), "task": external(url)}})
    result = run_evolve("run", str(config), "--name", "dead", "--quiet", check=False)
    assert_user_error(result, url)
    run_dir = tmp_path / "runs" / "dead"
    data = status_json(run_dir)
    assert data["state"] == "stopped" and data["stop_reason"]
    assert read_rows(run_dir, "PRAGMA integrity_check")[0][0] == "ok"


def test_garbage_from_the_task_model_is_a_recorded_failure(make_config, tmp_path):
    with StubOpenAI(Reply.ok("Think carefully, then give the result.")) as mutator, \
            StubOpenAI(Reply.garbage()) as task:
        config = make_config({"llm": {"mutator": external(mutator.base_url),
                                      "task": external(task.base_url)}})
        run_evolve("run", str(config), "--name", "garbage", "--quiet", check=False)
        assert len(task.requests) >= 2  # retried
    run_dir = tmp_path / "runs" / "garbage"
    rows = read_rows(run_dir, "SELECT status, reason FROM candidates")
    assert rows and all(status in ("failed", "invalid") for status, _ in rows)
    assert any(status == "failed" and "task LLM" in reason for status, reason in rows)
    shown = run_evolve("show", str(run_dir), "1").stdout
    assert "failed (llm_error) - task LLM gave no usable answer" in shown


def test_server_errors_are_retried_and_the_run_goes_on(make_config, tmp_path):
    with StubOpenAI(Reply.ok("Answer: 7")) as stub:
        stub.script(Reply.error(500), Reply.error(503), Reply.slow(3.0))
        llm = external(stub.base_url, max_retries=3)
        config = make_config({"llm": {"mutator": llm, "task": llm},
                              "budget": {"candidates": 6}})
        run_evolve("run", str(config), "--name", "flaky", "--quiet")
    data = status_json(tmp_path / "runs" / "flaky")
    assert data["state"] == "finished" and data["candidates"] == 6
    assert data["counts"]["pending"] == 0


@pytest.mark.parametrize(("extra", "needles"), [
    ({"budjet": {"candidates": 3}}, ["budjet", "did you mean 'budget'"]),
    ({"evolution": {"mode": "fast"}}, ["evolution.mode", "generational, steady_state"]),
    ({"fitness": {"batch_size": "eight"}}, ["fitness.batch_size", "expected int"]),
    ({"fitness": {"options": {"sise": 3}}}, ["fitness.options.sise", "unknown option"]),
    ({"evolution": {"operators": {"telepathy": 1.0}}}, ["telepathy", "first_order_direct"]),
    ({"llm": {"task": {"model_path": "/nonexistent/model.gguf"}}}, ["/nonexistent/model.gguf"]),
])
def test_config_errors_name_the_key(make_config, extra, needles):
    result = run_evolve("run", str(make_config(extra)), "--quiet", check=False)
    assert_user_error(result, *needles)


def test_set_override_errors_name_the_key(make_config):
    result = run_evolve("run", str(make_config()), "--set", "evolution.selector=roulette",
                        check=False)
    assert_user_error(result, "evolution.selector", "tournament, dgm")


def test_unknown_run_and_candidate(make_config, tmp_path):
    assert_user_error(run_evolve("status", str(tmp_path / "nope"), check=False), "nope")
    with StubOpenAI(Reply.ok("Answer: 1")) as stub:
        config = make_config({"llm": {"mutator": external(stub.base_url),
                                      "task": external(stub.base_url)},
                              "budget": {"candidates": 4}})
        run_evolve("run", str(config), "--name", "small", "--quiet")
    run_dir = str(tmp_path / "runs" / "small")
    assert_user_error(run_evolve("show", run_dir, "99", check=False), "99")
    assert_user_error(run_evolve("fork", run_dir, "--at", "99", "--name", "f", check=False), "99")
    again = run_evolve("run", str(config), "--name", "small", check=False)
    assert_user_error(again, "already exists", "evolve resume")
