"""The collapse monitor in a run made by the real command: probe scores, one reading per
generation in the archive, and the reading in ``evolve status``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from evolve.cli import main

from ..stub_openai import Reply, StubOpenAI
from .conftest import read_rows
from .test_roles import llm_config, write_config


def prompt_run(tmp_path: Path, stub: StubOpenAI, name: str,
               fitness: dict[str, Any] | None = None, **diversity: Any) -> Path:
    """A small prompt run by the real command, the stub answering as both models."""
    llm = llm_config(stub.base_url)
    llm["task"] = dict(llm["mutator"])
    config = write_config(
        tmp_path, stub.base_url, llm=llm, sandbox={},
        fitness={"benchmark": "arithmetic", "batch_size": 2, "validate_top": 0,
                 **(fitness or {})},
        evolution={"genome": "prompt", "population_size": 4},
        diversity=diversity, budget={"candidates": 10})
    assert main(["run", str(config), "--name", name, "--quiet"]) == 0
    return tmp_path / "runs" / name


def meta(run_dir: Path, key: str) -> Any:
    rows = read_rows(run_dir, f"SELECT value FROM meta WHERE key = '{key}'")
    return json.loads(rows[0][0]) if rows else None


def test_a_monitored_run_records_a_reading_per_generation_and_probes_once_each(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with StubOpenAI() as stub:
        run_dir = prompt_run(tmp_path, stub, "watched", probe_size=3, probe_members=2,
                             ks=[1, 2])
    readings = meta(run_dir, "collapse")
    generations = read_rows(run_dir, "SELECT DISTINCT generation FROM candidates")
    assert [r["generation"] for r in readings] == sorted(g for (g,) in generations)
    assert all(set(r["pass_at_k"]) == {"1", "2"} for r in readings)
    assert readings[-1]["candidates"] == 10 and readings[-1]["live_clades"] >= 1
    probes = [json.loads(e) for (e,) in read_rows(
        run_dir, "SELECT examples FROM scores WHERE split = 'probe'")]
    assert probes, "no candidate was scored on the probe set"
    # the probe set is fixed: the same three training examples for everyone
    assert len({tuple(e[0] for e in examples) for examples in probes}) == 1
    assert all(len(examples) == 3 for examples in probes)
    once = read_rows(run_dir, "SELECT count(*), count(DISTINCT candidate_id) FROM scores "
                              "WHERE split = 'probe'")[0]
    assert once[0] == once[1]
    capsys.readouterr()
    assert main(["status", str(run_dir)]) == 0
    assert f"diversity (generation {readings[-1]['generation']}" in capsys.readouterr().out


def test_without_a_probe_set_nothing_is_probed_or_recorded(tmp_path: Path) -> None:
    with StubOpenAI() as stub:
        run_dir = prompt_run(tmp_path, stub, "unwatched")
    assert meta(run_dir, "collapse") is None
    assert read_rows(run_dir, "SELECT count(*) FROM scores WHERE split = 'probe'")[0][0] == 0


def test_a_code_run_measures_the_distance_between_its_programs(tmp_path: Path) -> None:
    """A code genome's record holds a commit: the monitor reads the programs' files (once
    per commit) and measures their distance; two different programs are apart."""
    edit = ("<<<<<<< SEARCH\n    circles = []\n=======\n    circles = []\n"
            "    r *= {}\n>>>>>>> REPLACE\n")
    with StubOpenAI() as stub:
        stub.script(*(Reply.ok(edit.format(1 + i / 100)) for i in range(1, 6)))
        config = tmp_path / "code.yaml"
        config.write_text(yaml.safe_dump({
            "runs_dir": str(tmp_path / "runs"), "seed": 1,
            "llm": {"mutator": {"backend": "external", "base_url": stub.base_url,
                                "model": "stub"}},
            "fitness": {"benchmark": "circle_packing", "batch_size": 1, "validate_top": 0},
            "evolution": {"genome": "code", "population_size": 4, "selector": "dgm",
                          "operators": {"diff_edit": 1.0}},
            "diversity": {"probe_size": 1, "probe_members": 4, "ks": [1, 2]},
            "sandbox": {"backend": "process"},
            "budget": {"candidates": 5},
        }))
        assert main(["run", str(config), "--name", "code", "--quiet"]) == 0
    readings = meta(tmp_path / "runs" / "code", "collapse")
    assert readings and readings[0]["mean_distance"] is None  # the seed alone
    last = readings[-1]
    assert last["distance_pairs"] >= 1 and 0 < last["mean_distance"] < 0.2  # one line apart
