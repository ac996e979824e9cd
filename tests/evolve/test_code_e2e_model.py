"""End to end for code on the real local model (SmolLM2-135M via llama.cpp), in bubblewrap.

The model rarely writes a patch that applies, so these tests check what must
hold whatever it writes: every child ends evaluated, failed or invalid with a
reason; the archive's lineage and the git history agree; agents reach the LLM
only through the gateway, and what they spend is recorded.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import git
import pytest
import yaml

from evolve.cli import main
from tests.sandboxes.conftest import bwrap_problem, unavailable

from .conftest import needs_model, read_rows

pytestmark = [needs_model, pytest.mark.model, pytest.mark.slow]

BENCHMARK = Path(__file__).resolve().parents[1] / "fitness" / "data" / "user_benchmark"


@pytest.fixture(autouse=True)
def _bwrap() -> None:
    from sandboxes import BwrapSandbox

    problem = bwrap_problem(BwrapSandbox())
    if problem:
        unavailable(problem)


def _run(tmp_path: Path, base_url: str, extra: dict[str, Any], name: str) -> Path:
    llm = {"backend": "external", "base_url": base_url, "model": "smollm2"}
    data = {"runs_dir": str(tmp_path / "runs"), "seed": 2,
            "llm": {"mutator": {**llm, "max_tokens": 320, "temperature": 0.8},
                    "task": {**llm, "max_tokens": 200, "temperature": 0.0}},
            "sandbox": {"backend": "bwrap", "workers": 2}, **extra}
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump(data))
    assert main(["run", str(config), "--name", name, "--quiet"]) == 0
    return tmp_path / "runs" / name


def _check_archive_and_git_agree(run_dir: Path) -> list[tuple[Any, ...]]:
    rows = read_rows(run_dir, "SELECT id, status, reason, genome, mutation FROM candidates")
    assert rows and all(r[1] in ("evaluated", "failed", "invalid") for r in rows)
    assert all(r[2] for r in rows if r[1] != "evaluated")  # a reason for every failure
    commit = {r[0]: json.loads(r[3])["commit"] for r in rows}
    parents: dict[int, list[int]] = {}
    for child, parent in read_rows(run_dir, "SELECT child_id, parent_id FROM edges "
                                            "ORDER BY child_id, position"):
        parents.setdefault(child, []).append(parent)
    repo = git.Repo(run_dir / "repo")
    refs = {int(r.path.rsplit("/", 1)[1]): r.commit.hexsha for r in repo.refs
            if r.path.startswith("refs/candidates/")}
    assert refs == commit
    for cid, status, *_ in rows:
        git_parents = [p.hexsha for p in repo.commit(commit[cid]).parents]
        if cid not in parents:
            assert git_parents == []  # the seed
        elif status == "invalid":
            assert commit[cid] == commit[parents[cid][0]]
        else:
            assert git_parents == [commit[p] for p in parents[cid]]
    return rows


def test_a_program_evolves_on_the_local_model(tmp_path: Path, llama_base_url: str) -> None:
    benchmark = tmp_path / "sort_list"
    shutil.copytree(BENCHMARK, benchmark)
    run_dir = _run(tmp_path, llama_base_url, {
        "fitness": {"benchmark": "directory", "options": {"path": str(benchmark)},
                    "batch_size": 2, "validate_top": 1},
        "evolution": {"genome": "code", "population_size": 3, "generation_size": 2,
                      "operators": {"full_rewrite": 2.0, "diff_edit": 1.0}},
        "budget": {"candidates": 5}}, "program")
    rows = _check_archive_and_git_agree(run_dir)
    assert len(rows) == 5
    assert {r[0] for r in rows if r[1] == "evaluated"} >= {1}
    for cid, _, _, _, mutation in rows[1:]:
        exchanges = json.loads(mutation)["exchanges"]
        assert exchanges and all(ex["response"] is not None for ex in exchanges), cid


def test_a_self_modifying_agent_evolves_on_the_local_model(tmp_path: Path,
                                                           llama_base_url: str) -> None:
    run_dir = _run(tmp_path, llama_base_url, {
        "fitness": {"benchmark": "humaneval_agent",
                    "options": {"train": 2, "validation": 2, "test": 2, "batch_size": 2},
                    "batch_size": 2, "validate_top": 0},
        "evolution": {"genome": "code", "population_size": 2, "generation_size": 2,
                      "operators": {"self_modify": 1.0}},
        "sandbox": {"backend": "bwrap", "workers": 2, "token_budget": 4000},
        "budget": {"candidates": 3}}, "agent")
    rows = _check_archive_and_git_agree(run_dir)
    seed = rows[0]
    assert seed[1] == "evaluated"
    tree = git.Repo(run_dir / "repo").commit(json.loads(seed[3])["commit"]).tree
    assert {"agent.py", "self_improve.py"} <= {b.path for b in tree.traverse()}
    # the seed agent's own LLM use went through the gateway and is recorded
    [(usage,)] = read_rows(run_dir, "SELECT usage FROM candidates WHERE id = 1")
    assert json.loads(usage)["calls"] >= 2
    for cid, _, reason, _, mutation in rows[1:]:
        [run] = json.loads(mutation)["exchanges"]
        assert run["kind"] == "self_modify" and run["calls"] >= 1, (cid, reason)
        assert run["prompt_tokens"] > 0 and run["log"], (cid, reason)
