"""The evaluator against the real local model (llama.cpp + SmolLM2-135M-Instruct).

Shows that the task prompt changes the score, and measures the model's
accuracy on each built-in benchmark with a plain and a step-by-step prompt
(figures reported in the terminal summary, not asserted).
"""

from __future__ import annotations

import asyncio

import pytest

from fitness import (
    ArithmeticBenchmark,
    Benchmark,
    BooleanExpressionsBenchmark,
    Evaluation,
    PromptEvaluator,
    WordSortingBenchmark,
)

from .conftest import ACCURACY_KEY, UrllibTaskModel

pytestmark = [pytest.mark.model, pytest.mark.slow]

N_EXAMPLES = 30
PROMPTS: dict[str, list[str]] = {
    "plain": [],
    "step-by-step": [
        "Let's think step by step.",
        'Work it out step by step, then end with the line "Answer: <x>".',
    ],
}
BENCHMARKS = {
    "arithmetic": ArithmeticBenchmark,
    "word_sorting": WordSortingBenchmark,
    "boolean_expressions": BooleanExpressionsBenchmark,
}


def evaluate(bench: Benchmark, model: UrllibTaskModel, prompts: list[str]) -> Evaluation:
    evaluator = PromptEvaluator(bench, model, max_tokens=256, temperature=0.0)
    examples = bench.split("validation")[:N_EXAMPLES]
    return asyncio.run(evaluator.evaluate(prompts, [], examples, seed=0))


@pytest.fixture(scope="module")
def accuracy(local_server_url: str) -> dict[tuple[str, str], Evaluation]:
    """Each built-in benchmark (default options, seed 0) under each prompt, once."""
    model = UrllibTaskModel(local_server_url)
    return {
        (kind, label): evaluate(factory(), model, prompts)
        for kind, factory in BENCHMARKS.items()
        for label, prompts in PROMPTS.items()
    }


def test_the_prompt_changes_the_score(
    accuracy: dict[tuple[str, str], Evaluation], request: pytest.FixtureRequest
) -> None:
    lines = request.config.stash.setdefault(ACCURACY_KEY, [])
    lines.append(f"{N_EXAMPLES} validation examples each, seed 0, temperature 0, max 256 tokens")
    for kind in BENCHMARKS:
        figures = ", ".join(
            f"{label} {accuracy[kind, label].mean:.2f}"
            f" ({accuracy[kind, label].completion_tokens} completion tokens)"
            for label in PROMPTS
        )
        lines.append(f"  {kind:20s} {figures}")
    differing = [
        kind
        for kind in BENCHMARKS
        if accuracy[kind, "plain"].mean != accuracy[kind, "step-by-step"].mean
    ]
    assert differing, "the prompt made no difference on any task"
    # and per example, not only in the mean
    kind = differing[0]
    plain = accuracy[kind, "plain"].scores()
    stepwise = accuracy[kind, "step-by-step"].scores()
    assert plain.keys() == stepwise.keys()
    assert any(plain[example] != stepwise[example] for example in plain)


def test_real_outputs_are_scored_by_the_benchmark(
    accuracy: dict[tuple[str, str], Evaluation],
) -> None:
    for (kind, _), evaluation in accuracy.items():
        bench = BENCHMARKS[kind]()
        by_id = {example.id: example for example in bench.split("validation")}
        assert evaluation.calls == len(evaluation.results) == N_EXAMPLES
        assert evaluation.prompt_tokens > 0 and evaluation.completion_tokens > 0
        assert evaluation.cache_hits == 0
        for result in evaluation.results:
            assert result.score == bench.score(by_id[result.example_id], result.output)
            assert result.score in (0.0, 1.0)


def test_the_model_is_neither_hopeless_nor_perfect(
    accuracy: dict[tuple[str, str], Evaluation],
) -> None:
    """The built-in defaults are meant to leave room for evolution with the tiny model."""
    means = [evaluation.mean for evaluation in accuracy.values()]
    assert max(means) < 1.0
    assert min(means) < max(means)
    for kind in BENCHMARKS:
        assert max(accuracy[kind, label].mean for label in PROMPTS) > 0.0, kind
