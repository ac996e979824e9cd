"""End to end for code: ``evolve run`` evolves a program in real bubblewrap sandboxes.

The mutator is a scripted OpenAI stub (the local model rarely writes a usable
patch, so it could not show every outcome on purpose), the benchmark is the
example user benchmark in tests/fitness/data/user_benchmark (sort a list),
and one child is made per generation so that each scripted answer meets a
known child. The runs on the real local model are in test_code_e2e_model.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import git
import pytest
import yaml

from evolve.cli import main
from tests.sandboxes.conftest import bwrap_problem, unavailable
from tests.stub_openai import Reply, StubOpenAI

from .conftest import read_rows, status_json

BENCHMARK = Path(__file__).resolve().parents[1] / "fitness" / "data" / "user_benchmark"
DOCSTRING = '    """One pass of bubble sort: a start, not yet a full sort."""'


def edit(new_line: str, search: str = DOCSTRING) -> str:
    """A SEARCH/REPLACE answer inserting ``new_line`` right after the docstring."""
    return (f"main.py\n<<<<<<< SEARCH\n{search}\n=======\n{DOCSTRING}\n    {new_line}\n"
            ">>>>>>> REPLACE\n")


ANSWERS = [
    edit("return sorted(numbers)", search="    no such line"),  # 2: does not apply
    edit("return sorted(numbers"),                             # 3: syntax error
    edit("raise RuntimeError('boom')"),                        # 4: crashes
    edit("while True: pass"),                                  # 5: times out
    edit("return sorted(numbers)"),                            # 6: right
]


@pytest.fixture
def benchmark_dir(tmp_path: Path) -> Path:
    problem = bwrap_problem(__import__("sandboxes").BwrapSandbox())
    if problem:
        unavailable(problem)
    target = tmp_path / "sort_list"
    shutil.copytree(BENCHMARK, target)
    spec = yaml.safe_load((target / "benchmark.yaml").read_text())
    spec["limits"]["wall_seconds"] = 3  # the looping child times out quickly
    (target / "benchmark.yaml").write_text(yaml.safe_dump(spec))
    return target


def test_a_code_run_records_valid_invalid_failed_children_in_archive_and_git(
        tmp_path: Path, benchmark_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with StubOpenAI() as stub:
        stub.script(*(Reply.ok(a) for a in ANSWERS))
        llm = {"backend": "external", "base_url": stub.base_url, "model": "stub"}
        config = tmp_path / "sort.yaml"
        config.write_text(yaml.safe_dump({
            "runs_dir": str(tmp_path / "runs"), "seed": 1,
            "llm": {"mutator": llm, "task": llm},
            "fitness": {"benchmark": "directory", "options": {"path": str(benchmark_dir)},
                        "batch_size": 3, "validate_top": 1,
                        "stages": [{"examples": 1, "threshold": 0.99}]},
            "evolution": {"genome": "code", "population_size": 2, "generation_size": 1,
                          "operators": {"diff_edit": 1.0},
                          "operator_options": {"diff_edit": {"repairs": 0}}},
            "sandbox": {"backend": "bwrap", "workers": 2},
            "budget": {"candidates": 6},
        }))
        assert main(["run", str(config), "--name", "sort", "--quiet"]) == 0
    run_dir = tmp_path / "runs" / "sort"
    out = capsys.readouterr().out
    assert "seed program: #1" in out and "best program: #6" in out

    rows = {r[0]: r[1:] for r in read_rows(
        run_dir, "SELECT id, status, reason, genome FROM candidates ORDER BY id")}
    status = {cid: row[0] for cid, row in rows.items()}
    assert status == {1: "evaluated", 2: "invalid", 3: "invalid", 4: "failed", 5: "failed",
                      6: "evaluated"}
    reason = {cid: row[1] or "" for cid, row in rows.items()}
    assert "SEARCH text" in reason[2] and "is not in the file" in reason[2]
    assert reason[3].startswith("syntax error in main.py line")
    assert reason[4].startswith("exit on all") and "RuntimeError" in reason[4]
    assert reason[5].startswith("timeout on all")
    failure = dict(read_rows(run_dir, "SELECT id, failure FROM candidates ORDER BY id"))
    assert failure == {1: None, 2: "no_match", 3: "syntax_error", 4: "runtime_error",
                       5: "timeout", 6: None}
    children = status_json(run_dir)["children"]  # what evolve status says of them
    assert (children["made"], children["valid"], children["valid_rate"]) == (5, 1, 0.2)
    assert children["by_reason"] == {"no_match": 1, "runtime_error": 1, "syntax_error": 1,
                                     "timeout": 1}

    # the archive and git agree: every candidate has its ref, a valid child's commit has
    # its parent's commit as git parent, an invalid child keeps its parent's commit
    commit = {cid: json.loads(row[2])["commit"] for cid, row in rows.items()}
    parents = dict(read_rows(run_dir, "SELECT child_id, parent_id FROM edges"))
    repo = git.Repo(run_dir / "repo")
    refs = {int(r.path.rsplit("/", 1)[1]): r.commit.hexsha for r in repo.refs
            if r.path.startswith("refs/candidates/")}
    assert refs == commit
    for cid in (4, 5, 6):
        assert [p.hexsha for p in repo.commit(commit[cid]).parents] == [commit[parents[cid]]]
    for cid in (2, 3):
        assert commit[cid] == commit[parents[cid]]

    # staged evaluation: the seed stops after stage 1, the right child goes on
    scores = {(cid, split): n for cid, split, n in read_rows(
        run_dir, "SELECT candidate_id, split, json_array_length(examples) FROM scores")}
    assert (1, "stage1") in scores and (1, "stage2") not in scores and scores[1, "train"] == 1
    assert scores[6, "stage1"] == 1 and scores[6, "stage2"] == 2 and scores[6, "train"] == 3

    # evolve show, checkout and lineage tell the same story
    assert main(["show", str(run_dir), "4"]) == 0
    shown = capsys.readouterr().out
    assert "failed (runtime_error) - exit on all" in shown
    assert "+    raise RuntimeError('boom')" in shown
    assert main(["show", str(run_dir), "3"]) == 0
    assert "invalid (syntax_error) - syntax error in main.py" in capsys.readouterr().out
    assert main(["checkout", str(run_dir), "6", str(tmp_path / "six")]) == 0
    assert "return sorted(numbers)" in (tmp_path / "six" / "main.py").read_text()
    capsys.readouterr()
    assert main(["lineage", str(run_dir), "--format", "json"]) == 0
    graph = json.loads(capsys.readouterr().out)
    edges = {(e["source"], e["target"]) for e in graph["edges"]}
    assert edges == {(p, c) for c, p in parents.items()}


def test_resume_repairs_git_refs_that_disagree_with_the_archive(
        tmp_path: Path, benchmark_dir: Path) -> None:
    with StubOpenAI() as stub:
        stub.script(Reply.ok(edit("return sorted(numbers)")))
        llm = {"backend": "external", "base_url": stub.base_url, "model": "stub"}
        config = tmp_path / "sort.yaml"
        config.write_text(yaml.safe_dump({
            "runs_dir": str(tmp_path / "runs"),
            "llm": {"mutator": llm, "task": llm},
            "fitness": {"benchmark": "directory", "options": {"path": str(benchmark_dir)},
                        "batch_size": 1, "validate_top": 0},
            "evolution": {"genome": "code", "population_size": 2, "generation_size": 1,
                          "operators": {"diff_edit": 1.0}},
            "sandbox": {"backend": "process"},
            "budget": {"candidates": 2},
        }))
        assert main(["run", str(config), "--name", "r", "--quiet"]) == 0
        run_dir = tmp_path / "runs" / "r"
        repo = git.Repo(run_dir / "repo")
        # a crash between git and the archive: a ref without a candidate, a lost ref
        repo.git.update_ref("refs/candidates/99", repo.commit("refs/candidates/1").hexsha)
        repo.git.update_ref("-d", "refs/candidates/2")
        assert main(["resume", str(run_dir), "--quiet"]) == 0
    names = {r.path for r in git.Repo(run_dir / "repo").refs}
    assert "refs/candidates/2" in names and "refs/candidates/99" not in names


def test_a_repaired_child_is_scored_and_counted_as_repaired(tmp_path: Path,
                                                           benchmark_dir: Path) -> None:
    with StubOpenAI() as stub:
        stub.script(Reply.ok(edit("return sorted(numbers)", search="    no such line")),
                    Reply.ok(edit("return sorted(numbers)")))  # the answer to the error
        llm = {"backend": "external", "base_url": stub.base_url, "model": "stub"}
        config = tmp_path / "sort.yaml"
        config.write_text(yaml.safe_dump({
            "runs_dir": str(tmp_path / "runs"),
            "llm": {"mutator": llm, "task": llm},
            "fitness": {"benchmark": "directory", "options": {"path": str(benchmark_dir)},
                        "batch_size": 1, "validate_top": 0},
            "evolution": {"genome": "code", "population_size": 2, "generation_size": 1,
                          "operators": {"diff_edit": 1.0}},
            "sandbox": {"backend": "process"},
            "budget": {"candidates": 2},
        }))
        assert main(["run", str(config), "--name", "r", "--quiet"]) == 0
        asked = [body["messages"] for body in stub.bodies]
    run_dir = tmp_path / "runs" / "r"
    [(status, mutation)] = read_rows(run_dir, "SELECT status, mutation FROM candidates "
                                              "WHERE id = 2")
    mutation = json.loads(mutation)
    assert status == "evaluated" and mutation["repairs"] == 1
    assert [ex.get("repair") for ex in mutation["exchanges"]] == [None, 1]
    assert "is not in the file" in asked[1][-1]["content"]  # the exact error went back
    children = status_json(run_dir)["children"]
    assert (children["made"], children["valid"], children["repaired"]) == (1, 1, 1)


def test_a_parents_next_request_carries_why_its_children_failed(tmp_path: Path,
                                                                benchmark_dir: Path) -> None:
    with StubOpenAI() as stub:
        stub.script(*(Reply.ok("I would sort the list properly.") for _ in range(3)))
        llm = {"backend": "external", "base_url": stub.base_url, "model": "stub"}
        config = tmp_path / "sort.yaml"
        config.write_text(yaml.safe_dump({
            "runs_dir": str(tmp_path / "runs"),
            "llm": {"mutator": llm, "task": llm},
            "fitness": {"benchmark": "directory", "options": {"path": str(benchmark_dir)},
                        "batch_size": 1, "validate_top": 0},
            "evolution": {"genome": "code", "population_size": 2, "generation_size": 1,
                          "operators": {"diff_edit": 1.0},
                          "operator_options": {"diff_edit": {"repairs": 0}}},
            "sandbox": {"backend": "process"},
            "budget": {"candidates": 4},
        }))
        assert main(["run", str(config), "--name", "r", "--quiet"]) == 0
        asked = [body["messages"][-1]["content"] for body in stub.bodies]
    assert len(asked) == 3  # three children of the seed, each invalid
    assert "Earlier changes to this version that failed" not in asked[0]
    failed = "- diff_edit (no_block): the answer holds no SEARCH/REPLACE block"
    assert asked[1].count(failed) == 1 and asked[2].count(failed) == 2
    assert len(set(asked)) == 3
