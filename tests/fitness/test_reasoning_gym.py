"""The reasoning-gym adapter: seeded disjoint splits and reasoning-gym's own scorer."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from fitness import (
    SPLITS,
    BenchmarkError,
    ReasoningGymBenchmark,
    extract_reasoning_gym_answer,
    make_benchmark,
)

needs_reasoning_gym = pytest.mark.skipif(
    importlib.util.find_spec("reasoning_gym") is None,
    reason="needs reasoning-gym (pip install 'cladeforge[reasoning-gym]')",
)
SMALL = {"train_size": 30, "validation_size": 10, "test_size": 10}


def test_extract_answer_prefers_tags_then_answer_line_then_last_line() -> None:
    assert extract_reasoning_gym_answer("x <answer>1</answer> y <answer> 2 </answer>") == "2"
    assert extract_reasoning_gym_answer("<answer>1</answer>\nAnswer: 3") == "1"
    assert extract_reasoning_gym_answer("so\nAnswer: 42.\nbye") == "42"
    assert extract_reasoning_gym_answer("work\n 7 \n\n") == "7"
    assert extract_reasoning_gym_answer("<answer>unclosed") == "<answer>unclosed"
    assert extract_reasoning_gym_answer("") is None


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "reasoning_gym", None)  # makes the import fail
    bench = ReasoningGymBenchmark("leg_counting")
    with pytest.raises(BenchmarkError, match=r"pip install 'cladeforge\[reasoning-gym\]'"):
        bench.split("train")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"task": ""}, "option 'task'"),
        ({"task": "leg_counting", "config": {"seed": 3}}, "must not set seed"),
        ({"task": "leg_counting", "config": {"size": 3}}, "must not set size"),
        ({"task": "leg_counting", "test_size": -1}, "test_size"),
    ],
)
def test_bad_options(options: dict[str, object], message: str) -> None:
    with pytest.raises(BenchmarkError, match=message):
        make_benchmark("reasoning_gym", **options)


@needs_reasoning_gym
def test_splits_are_disjoint_deterministic_and_stable() -> None:
    bench = ReasoningGymBenchmark("leg_counting", seed=11, **SMALL)
    questions = [e.question for name in SPLITS for e in bench.split(name)]
    assert [len(bench.split(name)) for name in SPLITS] == [30, 10, 10]
    assert len(set(questions)) == len(questions)
    again = ReasoningGymBenchmark("leg_counting", seed=11, **SMALL)
    assert [e.question for name in SPLITS for e in again.split(name)] == questions
    other = ReasoningGymBenchmark("leg_counting", seed=12, **SMALL)
    assert other.split("test") != bench.split("test")
    # held-out splits do not depend on the train size, and grow by extension
    bigger = ReasoningGymBenchmark(
        "leg_counting", seed=11, train_size=80, validation_size=10, test_size=15
    )
    assert [e.question for e in bigger.split("test")[:10]] == [
        e.question for e in bench.split("test")
    ]
    assert [e.question for e in bigger.split("validation")] == [
        e.question for e in bench.split("validation")
    ]


@needs_reasoning_gym
def test_scores_with_reasoning_gyms_scorer() -> None:
    bench = ReasoningGymBenchmark("leg_counting", seed=1, **SMALL)
    example = bench.split("test")[0]
    right, wrong = example.answer, str(int(example.answer) + 1)
    assert bench.score(example, f"Counting legs...\nAnswer: {right}") == 1.0
    assert bench.score(example, f"<answer>{right}</answer>") == 1.0
    assert bench.score(example, f"Answer: {right}.") == 1.0
    assert bench.score(example, f"Answer: {wrong}") == 0.0
    assert bench.score(example, "") == 0.0
    # the answer is extracted first: an output full of numbers is not searched
    many = " ".join(str(n) for n in range(int(right) + 5))
    assert bench.score(example, f"{many}\nAnswer: {wrong}") == 0.0


@needs_reasoning_gym
def test_scores_stay_in_the_unit_interval() -> None:
    bench = ReasoningGymBenchmark("spell_backward", seed=0, **SMALL)
    for example in bench.split("test"):
        for output in (example.answer, example.answer + ".", "x", f"Answer: {example.answer}"):
            assert 0.0 <= bench.score(example, output) <= 1.0


@needs_reasoning_gym
def test_config_reaches_reasoning_gym() -> None:
    bench = ReasoningGymBenchmark(
        "basic_arithmetic", seed=2, config={"min_terms": 2, "max_terms": 2}, **SMALL
    )
    assert bench.split("train")[0].meta["entry"]["metadata"]["num_terms"] == 2


@needs_reasoning_gym
def test_unknown_task_and_bad_config_are_clear_errors() -> None:
    with pytest.raises(BenchmarkError, match="task 'leg_countin'; known tasks: .*leg_counting"):
        ReasoningGymBenchmark("leg_countin").split("test")
    with pytest.raises(BenchmarkError, match="rejected its config"):
        ReasoningGymBenchmark("leg_counting", config={"no_such_field": 1}).split("test")
    with pytest.raises(BenchmarkError, match="rejected its config"):
        ReasoningGymBenchmark("leg_counting", config={"min_animals": 0}).split("test")
