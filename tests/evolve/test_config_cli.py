"""Issue 13.6, as a new user meets it: every bad value of the issue stops ``evolve run``
before anything starts, with exit code 2 and the option's dotted path, and leaves no
run directory, no model server and no LLM call behind."""

from __future__ import annotations

import math
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import TINY_CONFIG, merge, run_evolve

#: (dotted key, value as YAML text for --set, value in a YAML file, what the error says)
BAD = [
    ("budget.wall_time", "-7", -7, "must be > 0, got -7"),
    ("budget.wall_time", ".nan", math.nan, "must be a finite number, got nan"),
    ("budget.candidates", "0", 0, "must be >= 1, got 0"),
    ("budget.candidates", "-1", -1, "must be >= 1, got -1"),
    ("budget.tokens", "-5", -5, "must be >= 1, got -5"),
    ("fitness.validation_size", "0", 0, "must be >= 1, got 0"),
    ("llm.mutator.max_tokens", "0", 0, "must be >= 1, got 0"),
    ("llm.task.max_tokens", "-5", -5, "must be >= 1, got -5"),
    ("evolution.seed_prompt", '""', "", "must not be empty"),
]
#: names chosen from a registry (genome kinds, selectors, sandbox backends and executors):
#: refused with the registry's choices; the genome kind when the run is built, before
#: anything starts, the others when the config is read
CHOICES = [
    ("evolution.genome", "promt", "promt",
     "unknown genome kind 'promt'; did you mean 'prompt'? (choose from: prompt, code)"),
    ("evolution.selector", "dgn", "dgn",
     "str 'dgn' is not allowed; choose one of: tournament, dgm"),
    ("sandbox.backend", "bwarp", "bwarp",
     "str 'bwarp' is not allowed; choose one of: docker, bwrap, process"),
    ("sandbox.executor", "rey", "rey", "str 'rey' is not allowed; choose one of: local, ray"),
]
IDS = [f"{key}={text}" for key, text, _, _ in BAD + CHOICES]


def nested(key: str, value: Any) -> dict[str, Any]:
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


@pytest.fixture
def canary() -> Iterator[socket.socket]:
    """A listening socket standing in for the LLM server: no run may connect to it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield sock
    finally:
        sock.close()


def assert_nothing_started(result: Any, runs: Path, canary: socket.socket | None) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert "\nrun " not in f"\n{result.stderr}"  # the line a started run prints first
    assert not runs.exists(), sorted(runs.rglob("*"))
    if canary is not None:
        canary.setblocking(False)
        with pytest.raises(BlockingIOError):
            canary.accept()  # nobody connected: no server, no LLM request


@pytest.mark.parametrize(("key", "text", "value", "says"), BAD + CHOICES, ids=IDS)
def test_a_bad_value_in_the_yaml_file_starts_nothing(tmp_path, key, text, value, says):
    """The embedded-model config a new user starts from, with one bad value in the file."""
    runs = tmp_path / "runs"
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(merge(TINY_CONFIG, merge({"runs_dir": str(runs)},
                                                          nested(key, value)))))
    result = run_evolve("run", str(path), "--quiet", check=False, timeout=120)
    assert_nothing_started(result, runs, None)
    assert f"error: {key}: {says}" in result.stderr


@pytest.mark.parametrize(("key", "text", "value", "says"), BAD + CHOICES, ids=IDS)
def test_a_bad_value_given_with_set_starts_nothing(tmp_path, canary, key, text, value, says):
    """A valid config of external servers (the canary), broken by one --set."""
    runs = tmp_path / "runs"
    url = f"http://127.0.0.1:{canary.getsockname()[1]}/v1"
    llm = {"backend": "external", "base_url": url, "model": "stub", "max_retries": 0}
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(merge(TINY_CONFIG, {
        "runs_dir": str(runs), "llm": {"mutator": llm, "task": llm}})))
    result = run_evolve("run", str(path), "--quiet", "--set", f"{key}={text}", check=False,
                        timeout=120)
    assert_nothing_started(result, runs, canary)
    assert f"error: {key}: {says}" in result.stderr


def test_every_bad_value_is_listed_at_once(tmp_path, canary):
    runs = tmp_path / "runs"
    path = tmp_path / "all.yaml"
    data: dict[str, Any] = merge(TINY_CONFIG, {"runs_dir": str(runs)})
    for key, _, value, _ in BAD[1:]:  # one value per key: wall_time .nan, not -7 too
        data = merge(data, nested(key, value))
    path.write_text(yaml.safe_dump(data))
    result = run_evolve("run", str(path), "--quiet", check=False, timeout=120)
    assert_nothing_started(result, runs, None)
    for key, _, _, says in BAD[1:]:
        if key != "budget.candidates" or says.endswith("-1"):
            assert f"{key}: {says}" in result.stderr, result.stderr


@pytest.mark.parametrize("name", ["off", "yes", "12", "null"])
def test_a_run_name_yaml_would_read_as_another_type_stays_a_name(
        name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evolve.cli import main

    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"runs_dir": str(tmp_path / "runs"), "llm": {
        "mutator": {"model_path": str(tmp_path / "missing.gguf")}}}))
    assert main(["run", str(config), "--name", name, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "missing.gguf" in err and "name:" not in err  # got past the name to the model
