"""``evolve show``, ``evolve checkout`` and ``evolve lineage`` on a run with code candidates.

The run is built by hand: a real SQLite archive with code candidates whose commits are
in the run's real git repository (founder, two children, a merge), plus one prompt
candidate to check that prompt output is unchanged.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from archive import NewCandidate, SQLiteStorage
from evolve._config import RunConfig, config_to_data
from evolve._report import format_show, show
from evolve.cli import main
from evolve.code._repo import REPO_DIR, RunRepo
from evolve.code._show import SHOWN_CHARS, show_code

SEED_FILES = {"solve.py": "def solve(x):\n    return x\n", "lib/util.py": "K = 1\n",
              "data/blob.bin": b"\x00\xff" * 5}
PROMPT_GENOME = {"task_prompts": ["Think step by step."], "mutation_prompt": "Rephrase.",
                 "context": []}


@dataclass(frozen=True)
class CodeRun:
    directory: Path
    seed: str  # candidate 1
    left: str  # candidate 2, child of 1
    right: str  # candidate 3, child of 1
    merged: str  # candidate 4, merge of 2 and 3; candidate 5 is a prompt candidate


@pytest.fixture
def code_run(tmp_path: Path) -> CodeRun:
    directory = tmp_path / "runs" / "code"
    directory.mkdir(parents=True)
    storage = SQLiteStorage(directory / "archive.sqlite")
    config = RunConfig(name="code", runs_dir=str(tmp_path / "runs"))
    storage.set_meta({"config": config_to_data(config), "state": "finished"})
    with RunRepo.for_run(directory, create=True) as repo:
        seed = repo.commit(SEED_FILES, [], "seed", 100)
        left_files = {**SEED_FILES, "solve.py": "def solve(x):\n    return x * 2\n"}
        left = repo.commit(left_files, [seed], "left", 101)
        right_files = {**SEED_FILES, "lib/util.py": "K = 2\n"}
        right = repo.commit(right_files, [seed], "right", 102)
        merged_files = {**left_files, "lib/util.py": "K = 2\n"}
        merged = repo.commit(merged_files, [left, right], "merge", 103)
        rows = [(seed, (), "seed", "Improve the code."),
                (left, (1,), "search_replace", "Make it faster."),
                (right, (1,), "full_rewrite", "Make it simpler."),
                (merged, (2, 3), "merge", "Combine both.")]
        for slot, (sha, parents, operator, prompt) in enumerate(rows):
            c = storage.add_candidate(NewCandidate(
                slot=slot, kind="code", genome={"commit": sha, "mutation_prompt": prompt},
                parent_ids=parents, operator=operator, generation=1 if parents else 0))
            repo.set_ref(c.id, sha)
    storage.add_candidate(NewCandidate(slot=4, kind="prompt", genome=PROMPT_GENOME))
    storage.close()
    return CodeRun(directory, seed, left, right, merged)


def run_cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_show_child_prints_commit_prompt_and_diff(code_run: CodeRun, capsys) -> None:
    code, out, _ = run_cli(capsys, "show", code_run.directory, 2)
    assert code == 0
    assert f"commit: {code_run.left}" in out
    assert "mutation prompt: Make it faster." in out
    assert "diff against parent #1:" in out
    assert "--- a/solve.py\n+++ b/solve.py\n" in out
    assert "-    return x\n+    return x * 2\n" in out
    assert "lib/util.py" not in out  # unchanged files are not in the diff


def test_show_merge_prints_a_diff_against_each_parent(code_run: CodeRun, capsys) -> None:
    code, out, _ = run_cli(capsys, "show", code_run.directory, 4)
    assert code == 0
    against_2, against_3 = out.split("diff against parent #2:")[1].split(
        "diff against parent #3:")
    # from the left parent only util.py changed, from the right parent only solve.py
    assert "+K = 2" in against_2 and "solve.py" not in against_2
    assert "+    return x * 2" in against_3 and "util.py" not in against_3


def test_show_founder_lists_files_with_sizes(code_run: CodeRun, capsys) -> None:
    code, out, _ = run_cli(capsys, "show", code_run.directory, 1)
    assert code == 0
    assert "files (3):" in out
    assert "  data/blob.bin  (10 bytes)" in out
    assert f"  solve.py  ({len(SEED_FILES['solve.py'])} bytes)" in out
    assert "diff against" not in out


def test_show_json_has_diffs_by_parent_id(code_run: CodeRun, capsys) -> None:
    code, out, _ = run_cli(capsys, "show", code_run.directory, 4, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["commit"] == data["genome"]["commit"] == code_run.merged
    assert data["parents"] == [2, 3]
    assert set(data["diffs"]) == {"2", "3"}
    with RunRepo.for_run(code_run.directory) as repo:
        assert data["diffs"]["2"] == repo.diff(code_run.merged, code_run.left)
        assert data["diffs"]["3"] == repo.diff(code_run.merged, code_run.right)
    assert data["files"] is None and data["repo_errors"] == {}
    # the program: the text files of the merge's own commit (the binary one left out)
    assert data["program"] == {"lib/util.py": "K = 2\n",
                               "solve.py": "def solve(x):\n    return x * 2\n"}
    _, out, _ = run_cli(capsys, "show", code_run.directory, 1, "--json")
    founder = json.loads(out)
    assert founder["diffs"] == {}
    assert founder["program"] == {k: v for k, v in SEED_FILES.items() if isinstance(v, str)}
    assert founder["files"] == [{"path": "data/blob.bin", "size": 10},
                                {"path": "lib/util.py", "size": 6},
                                {"path": "solve.py", "size": len(SEED_FILES["solve.py"])}]


def test_show_prompt_candidate_is_unchanged(code_run: CodeRun, capsys) -> None:
    storage = SQLiteStorage(code_run.directory / "archive.sqlite")
    try:
        expected = show(storage.get(5))
    finally:
        storage.close()
    code, out, _ = run_cli(capsys, "show", code_run.directory, 5)
    assert code == 0
    assert out == format_show(expected) + "\n"
    assert "commit" not in out and "diff against" not in out
    _, out, _ = run_cli(capsys, "show", code_run.directory, 5, "--json")
    assert json.loads(out) == json.loads(json.dumps(expected))


def test_show_still_works_when_git_lost_a_commit(code_run: CodeRun, capsys) -> None:
    shutil.rmtree(code_run.directory / REPO_DIR)
    code, out, _ = run_cli(capsys, "show", code_run.directory, 2)
    assert code == 0
    assert "mutation prompt: Make it faster." in out
    assert "git (commit):" in out and "does not exist" in out
    with RunRepo.for_run(code_run.directory, create=True):
        pass  # an empty repository: the commits are gone
    _, out, _ = run_cli(capsys, "show", code_run.directory, 2, "--json")
    data = json.loads(out)
    assert data["diffs"] == {}
    assert "unknown commit" in data["repo_errors"]["parent #1"]


def test_lineage_works_for_code(code_run: CodeRun, capsys) -> None:
    code, out, _ = run_cli(capsys, "lineage", code_run.directory, "--format", "json")
    assert code == 0
    graph = json.loads(out)
    edges = {(e["source"], e["target"]) for e in graph["edges"]}
    assert edges == {(1, 2), (1, 3), (2, 4), (3, 4)}
    kinds = {n["id"]: n["kind"] for n in graph["nodes"]}
    assert kinds == {1: "code", 2: "code", 3: "code", 4: "code", 5: "prompt"}
    code, out, _ = run_cli(capsys, "lineage", code_run.directory, "--id", 4)
    assert code == 0
    assert "#4 merge" in out and "#2 search_replace" in out and "#3 full_rewrite" in out
    assert "#5" not in out
    code, out, _ = run_cli(capsys, "lineage", code_run.directory, "--format", "dot")
    assert "2 -> 4;" in out and "3 -> 4;" in out and "1 -> 2;" in out


def test_checkout_writes_the_candidates_tree(code_run: CodeRun, capsys, tmp_path: Path) -> None:
    target = tmp_path / "new" / "dir"
    code, out, err = run_cli(capsys, "checkout", code_run.directory, 4, target)
    assert (code, err) == (0, "")
    assert out.startswith(f"candidate #4 ({code_run.merged}): 3 files written to")
    assert (target / "solve.py").read_text() == "def solve(x):\n    return x * 2\n"
    assert (target / "lib" / "util.py").read_text() == "K = 2\n"
    assert (target / "data" / "blob.bin").read_bytes() == b"\x00\xff" * 5


def test_checkout_refuses_a_non_empty_directory(code_run: CodeRun, capsys,
                                                 tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("keep")
    code, out, err = run_cli(capsys, "checkout", code_run.directory, 1, tmp_path / "busy")
    assert code == 2 and out == ""
    assert err.startswith("error: ") and "not empty" in err and err.count("\n") == 1
    assert [p.name for p in (tmp_path / "busy").iterdir()] == ["mine.txt"]


def test_checkout_of_a_prompt_candidate_is_a_one_line_error(code_run: CodeRun, capsys,
                                                            tmp_path: Path) -> None:
    code, out, err = run_cli(capsys, "checkout", code_run.directory, 5, tmp_path / "out")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "is a prompt candidate" in err
    assert "only candidates made of files can be checked out" in err
    assert not (tmp_path / "out").exists()
    code, _, err = run_cli(capsys, "checkout", code_run.directory, 99, tmp_path / "out")
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1


def test_show_cuts_a_long_file_of_the_program(tmp_path: Path) -> None:
    long = "x" * (SHOWN_CHARS + 7)
    with RunRepo.for_run(tmp_path, create=True) as repo:
        sha = repo.commit({"big.txt": long, "small.py": "pass\n"}, [], "big", 1)
        storage = SQLiteStorage(tmp_path / "archive.sqlite")
        founder = storage.add_candidate(NewCandidate(0, "code", {"commit": sha}))
        storage.close()
        program = show_code(founder, {}, repo)["program"]
    assert program["small.py"] == "pass\n"
    assert program["big.txt"].startswith("x" * SHOWN_CHARS + "\n... (7 more characters;")
