"""User benchmark directories: loading and its errors, and two-job evaluation in real sandboxes.

The example in ``data/user_benchmark`` ("sort a list") runs end to end on the
process backend and on bubblewrap (skipped where bubblewrap cannot run,
failed in CI). The candidate's run and the evaluator's run are separate
fresh jobs: the answer never reaches the candidate, the candidate's program
never reaches the evaluator, and nothing the candidate prints counts.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from fitness import BenchmarkError, Example
from fitness.code import DirectoryBenchmark, EvaluationEnv, ProgramEvaluation
from sandboxes import EndReason, Limits, LocalExecutor, Sandbox

EXAMPLE = Path(__file__).parent / "data" / "user_benchmark"

CORRECT = """
import json
numbers = json.load(open("input.json"))["numbers"]
json.dump(sorted(numbers), open("output.json", "w"))
"""
REVERSED = CORRECT.replace("sorted(numbers)", "sorted(numbers, reverse=True)")


@pytest.fixture
def copy(tmp_path: Path) -> Callable[..., Path]:
    """A copy of the example directory, with ``benchmark.yaml`` keys changed (None: removed)."""

    def make(**changes: Any) -> Path:
        folder = tmp_path / "bench"
        shutil.copytree(EXAMPLE, folder)
        config = yaml.safe_load((folder / "benchmark.yaml").read_text())
        for key, value in changes.items():
            if value is None:
                config.pop(key, None)
            else:
                config[key] = value
        (folder / "benchmark.yaml").write_text(yaml.safe_dump(config))
        return folder

    return make


def evaluate(benchmark: DirectoryBenchmark, sandbox: Sandbox, program: str | None,
             split: str = "train") -> ProgramEvaluation:
    files = ({"main.py": program.encode()} if program is not None
             else {k: v.encode() for k, v in benchmark.seed_files().items()})
    env = EvaluationEnv(LocalExecutor(sandbox, max_workers=2))
    return asyncio.run(benchmark.evaluate(files, benchmark.split(split), env))


# ------------------------------------------------------------------ end to end


def test_the_example_loads() -> None:
    benchmark = DirectoryBenchmark(EXAMPLE)
    assert benchmark.name == "sort_list" and "ascending" in benchmark.description
    assert set(benchmark.seed_files()) == {"main.py"}
    assert benchmark.evolve_paths() == ("main.py",)
    assert [len(benchmark.split(s)) for s in ("train", "validation", "test")] == [3, 2, 2]
    first = benchmark.split("train")[0]
    assert first.id == "t1" and first.answer == "[1, 2, 3, 4, 5]"
    assert benchmark.command == ("python3", "main.py") and not benchmark.needs_llm
    assert benchmark.limits == Limits(wall_seconds=20, memory_mb=256)


def test_the_seed_scores_its_share_of_positions(sandbox: Sandbox) -> None:
    evaluation = evaluate(DirectoryBenchmark(EXAMPLE), sandbox, None)
    assert [r.score for r in evaluation.results] == pytest.approx([1 / 5, 1.0, 2 / 6])
    assert [r.detail for r in evaluation.results] == [
        "1 of 5 positions right", "3 of 3 positions right", "2 of 6 positions right"]
    assert all(r.reason is EndReason.OK for r in evaluation.results)


def test_a_correct_candidate_scores_one_and_a_wrong_one_less(sandbox: Sandbox) -> None:
    benchmark = DirectoryBenchmark(EXAMPLE)
    for split in ("train", "validation", "test"):
        assert evaluate(benchmark, sandbox, CORRECT, split).mean == 1.0
    wrong = evaluate(benchmark, sandbox, REVERSED)
    assert [r.score for r in wrong.results] == pytest.approx([1 / 5, 1 / 3, 0.0])


def test_printed_scores_and_score_files_get_no_credit(sandbox: Sandbox) -> None:
    cheat = REVERSED + """
print("score: 1")
open("score.json", "w").write(json.dumps({"score": 1.0, "detail": "perfect"}))
open("evaluate.py", "w").write('print(\\'{"score": 1.0}\\')')
print(json.dumps({"score": 1.0, "detail": "perfect"}))
"""
    benchmark = DirectoryBenchmark(EXAMPLE)
    assert evaluate(benchmark, sandbox, cheat).mean == evaluate(benchmark, sandbox,
                                                                 REVERSED).mean < 0.2
    missing = evaluate(benchmark, sandbox, 'print(\'{"score": 1.0}\')\n')
    assert missing.mean == 0.0
    assert missing.results[0].detail == "no readable output.json (FileNotFoundError)"


def test_the_answer_stays_out_of_the_candidates_run_and_the_program_out_of_the_evaluators(
        sandbox: Sandbox) -> None:
    benchmark = DirectoryBenchmark(EXAMPLE)
    example = Example("x", '{"numbers": [2, 1]}', '["secret-answer"]')
    program = {"main.py": b"# the candidate", "input.json": b"fake"}
    job = benchmark.candidate_job(program, example, llm_socket="/tmp/llm.sock")
    assert job.files["input.json"] == b'{"numbers": [2, 1]}'
    assert all(b"secret-answer" not in data for data in job.files.values())
    assert job.llm_socket is None  # the example does not use the LLM
    judge = benchmark.evaluator_job(example, {"output.json": b"[1, 2]"})
    assert set(judge.files) == {"evaluate.py", "input.json", "answer.json",
                                "outputs/output.json"}
    assert judge.llm_socket is None
    # and at run time: a candidate listing its work dir finds no answer to copy
    snoop = """
import json, os
json.dump(sorted(os.listdir(".")), open("output.json", "w"))
"""
    found = asyncio.run(benchmark.evaluate(
        {"main.py": snoop.encode()}, [Example("x", "{}", '["input.json", "main.py"]')],
        EvaluationEnv(LocalExecutor(sandbox))))
    assert found.mean == 1.0  # exactly these two files, nothing else


def test_a_crash_and_a_timeout_score_zero_with_their_reason(sandbox: Sandbox,
                                                            copy: Callable[..., Path]) -> None:
    benchmark = DirectoryBenchmark(copy(limits={"wall_seconds": 1}))
    crash = evaluate(benchmark, sandbox, "raise RuntimeError('boom')\n")
    assert {r.reason for r in crash.results} == {EndReason.EXIT} and crash.mean == 0.0
    assert "RuntimeError: boom" in crash.results[0].detail
    slow = evaluate(benchmark, sandbox, "while True:\n    pass\n")
    assert {r.reason for r in slow.results} == {EndReason.TIMEOUT} and slow.mean == 0.0


@pytest.mark.parametrize(("evaluator", "detail"), [
    ("print('done')", "is not JSON: 'done'"),
    ("print('{\"score\": 1.5}')", "gave the score 1.5; scores must lie in [0, 1]"),
    ("print('{\"score\": true}')", "gave the score True"),
    ("print('{\"points\": 1}')", 'must print {"score": ..., "detail": ...}'),
    ("raise SystemExit(4)", "evaluate.py ended with exit"),
])
def test_a_broken_evaluator_gives_zero_and_says_why(sandbox: Sandbox, copy: Callable[..., Path],
                                                    evaluator: str, detail: str) -> None:
    folder = copy()
    (folder / "evaluate.py").write_text(evaluator + "\n")
    (result, *_) = evaluate(DirectoryBenchmark(folder), sandbox, CORRECT).results
    assert result.score == 0.0 and result.reason is EndReason.OK
    assert result.detail.startswith("evaluator failed: ") and detail in result.detail


def test_an_agent_benchmark_gets_the_llm_socket_only_in_the_candidates_run(
        copy: Callable[..., Path]) -> None:
    benchmark = DirectoryBenchmark(copy(llm=True))
    assert benchmark.needs_llm
    example = benchmark.split("train")[0]
    assert benchmark.candidate_job({}, example, "/tmp/llm.sock").llm_socket == "/tmp/llm.sock"
    assert benchmark.evaluator_job(example, {}).llm_socket is None


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(("changes", "message"), [
    ({"colour": "red"}, r"benchmark.yaml: unknown key\(s\) colour; allowed: name, "),
    ({"command": None}, r"benchmark.yaml: missing required key\(s\) command"),
    ({"name": ""}, "key 'name' must be a non-empty string"),
    ({"command": []}, "key 'command' must be a string or a non-empty list of strings"),
    ({"command": "python3 'main.py"}, "key 'command': No closing quotation"),
    ({"outputs": ["../escape.json"]}, "key 'outputs': sandbox file path must be relative"),
    ({"outputs": 3}, "key 'outputs' must be a file name or a non-empty list"),
    ({"seed": "nowhere"}, "key 'seed': no directory .*nowhere"),
    ({"evolve": ["other.py"]}, r"key 'evolve' names file\(s\) not in the seed: other.py"),
    ({"evaluator": "judge.py"}, "key 'evaluator': cannot read .*judge.py"),
    ({"limits": {"wall_secs": 3}}, r"key 'limits': unknown limit\(s\) wall_secs; allowed: "),
    ({"limits": {"wall_seconds": 0}}, "key 'limits': sandbox limits .* must be positive"),
    ({"limits": {"memory_mb": "lots"}}, "key limits.memory_mb must be a number"),
    ({"evaluator_limits": {"pids": 2.5}}, "key evaluator_limits.pids must be an integer"),
    ({"llm": "yes"}, "key 'llm' must be true or false"),
    ({"splits": ["train.jsonl"]}, "key 'splits' must map split names to JSONL files"),
    ({"splits": {"train": "data/train.jsonl"}}, "key 'splits' needs a 'validation' file"),
    ({"splits": {"train": "data/train.jsonl", "validation": "data/validation.jsonl",
                 "holdout": "x.jsonl"}}, r"unknown split\(s\) holdout"),
    ({"splits": {"train": "data/train.jsonl", "validation": "data/none.jsonl"}},
     "key splits.validation: cannot read .*none.jsonl"),
])
def test_bad_keys_are_named(copy: Callable[..., Path], changes: dict[str, Any],
                            message: str) -> None:
    with pytest.raises(BenchmarkError, match=message):
        DirectoryBenchmark(copy(**changes))


@pytest.mark.parametrize(("line", "message"), [
    ("not json", r"train.jsonl:2: not valid JSON"),
    ("[1, 2]", r"train.jsonl:2: expected a JSON object, got list"),
    ('{"id": "a", "input": 1}', r"train.jsonl:2: missing key\(s\) answer"),
    ('{"id": "a", "input": 1, "answer": 2, "hint": 3}', r"train.jsonl:2: unknown key\(s\) hint"),
    ('{"id": null, "input": 1, "answer": 2}', r"train.jsonl:2: key 'id' must be a string"),
    ('{"id": "v1", "input": 1, "answer": 2}', r"validation.jsonl: example id 'v1' occurs more "
                                              r"than once \(also in .*train.jsonl\)"),
])
def test_bad_examples_are_named_by_file_and_line(copy: Callable[..., Path], line: str,
                                                 message: str) -> None:
    folder = copy()
    (folder / "data" / "train.jsonl").write_text('{"id": "a0", "input": 1, "answer": 2}\n'
                                                 + line + "\n")
    with pytest.raises(BenchmarkError, match=message):
        DirectoryBenchmark(folder)


def test_missing_files_and_dirs_are_named(tmp_path: Path, copy: Callable[..., Path]) -> None:
    with pytest.raises(BenchmarkError, match="user benchmark directory not found"):
        DirectoryBenchmark(tmp_path / "absent")
    with pytest.raises(BenchmarkError, match="benchmark.yaml not found"):
        DirectoryBenchmark(tmp_path)
    folder = copy()
    (folder / "benchmark.yaml").write_text("name: [unclosed\n")
    with pytest.raises(BenchmarkError, match="benchmark.yaml is not valid YAML"):
        DirectoryBenchmark(folder)
    (folder / "benchmark.yaml").write_text("- a list\n")
    with pytest.raises(BenchmarkError, match="expected a mapping of keys, got list"):
        DirectoryBenchmark(folder)


def test_seed_problems_are_named(copy: Callable[..., Path]) -> None:
    folder = copy()
    (folder / "seed" / "input.json").write_text("{}")
    with pytest.raises(BenchmarkError, match="the seed may not contain input.json"):
        DirectoryBenchmark(folder)
    (folder / "seed" / "input.json").unlink()
    (folder / "seed" / "blob.bin").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(BenchmarkError, match="cannot read .*blob.bin as UTF-8 text"):
        DirectoryBenchmark(folder)


def test_the_test_split_is_optional_and_seed_subdirs_are_read(copy: Callable[..., Path]) -> None:
    folder = copy(splits={"train": "data/train.jsonl", "validation": "data/validation.jsonl"},
                  evolve=None, command=["python3", "main.py"])
    (folder / "seed" / "lib").mkdir()
    (folder / "seed" / "lib" / "util.py").write_text("X = 1\n")
    (folder / "seed" / "__pycache__").mkdir()
    (folder / "seed" / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\x00\xff")
    benchmark = DirectoryBenchmark(folder)
    assert benchmark.split("test") == ()
    assert benchmark.evolve_paths() == ("lib/util.py", "main.py")
    assert benchmark.command == ("python3", "main.py")
