"""The initial population, the shipped seed lists and the operator registry."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest

from evolve._errors import ConfigError, LLMError
from evolve._schema import build
from evolve.operators import (
    OPERATORS,
    Operator,
    default_hyper_mutation_prompts,
    default_mutation_prompts,
    default_thinking_styles,
    initial_population,
    operator_options,
)
from evolve.operators._text import similarity

from .op_support import ScriptedLLM, assert_recorded

STYLES = ("Work step by step.", "Picture the situation.", "Work backwards.")
MPS = ("Make it shorter.", "Make it bolder.")
PROBLEM = "Add two whole numbers and give the sum."


def make(llm, *, size=3, n_task_prompts=1, seed=0, **kw):
    return asyncio.run(initial_population(
        size=size, problem=PROBLEM, thinking_styles=STYLES, mutation_prompts=MPS, llm=llm,
        rng=np.random.default_rng(seed), n_task_prompts=n_task_prompts, **kw))


def test_each_unit_gets_a_mutation_prompt_and_llm_task_prompts() -> None:
    answers = [f"Instruction {i}: add carefully, variant {i}." for i in range(6)]
    llm = ScriptedLLM([f"Here you go:\n{a}" for a in answers])
    units = make(llm, size=3, n_task_prompts=2)
    assert len(units) == 3 and len(llm.calls) == 6
    for u in units:
        assert u.genome.mutation_prompt in MPS
        assert len(u.genome.task_prompts) == 2 and len(u.exchanges) == 2
        assert u.genome.context == () and u.extra_parents == ()
        for ex in u.exchanges:
            request = ex["messages"][-1]["content"]
            assert PROBLEM in request
            assert any(s in request for s in STYLES) and any(m in request for m in MPS)
    assert sorted(p for u in units for p in u.genome.task_prompts) == sorted(
        a.split(": ", 1)[1] for a in answers)
    assert_recorded([ex for u in units for ex in u.exchanges], llm)


def test_unusable_answers_are_retried_then_fall_back() -> None:
    llm = ScriptedLLM(["", "Sure!", "Work step by step."])
    [unit] = make(llm, size=1, attempts=3)
    assert len(unit.exchanges) == 3
    assert all("rejected" in ex for ex in unit.exchanges)
    [prompt] = unit.genome.task_prompts
    assert PROBLEM in prompt and any(prompt.startswith(s) for s in STYLES)
    assert unit.exchanges[-1]["fallback"] == prompt


def test_a_retry_that_works_is_used() -> None:
    llm = ScriptedLLM(["", "Line up the digits, then add."])
    [unit] = make(llm, size=1)
    assert unit.genome.task_prompts == ("Line up the digits, then add.",)
    assert "rejected" in unit.exchanges[0] and "rejected" not in unit.exchanges[1]
    assert "fallback" not in unit.exchanges[1]


def test_a_units_second_task_prompt_must_differ_from_the_first() -> None:
    llm = ScriptedLLM(["Add carefully.", "add carefully", "Check the sum."])
    [unit] = make(llm, size=1, n_task_prompts=2)
    assert unit.genome.task_prompts == ("Add carefully.", "Check the sum.")
    assert "other task prompt" in unit.exchanges[1]["rejected"]


def test_population_is_deterministic_whatever_the_answer_order() -> None:
    class SlowLLM(ScriptedLLM):
        async def chat(self, messages, **kw):
            await asyncio.sleep(float(np.random.default_rng().random()) * 0.01)
            return await super().chat(messages, **kw)

    def once():
        llm = SlowLLM([lambda msgs, seed: f"Prompt from seed {seed}."] * 8)
        return [(u.genome, [ex["messages"] for ex in u.exchanges])
                for u in make(llm, size=4, n_task_prompts=2, seed=3)]

    assert once() == once()


def test_empty_seed_lists_are_a_config_error() -> None:
    with pytest.raises(ConfigError):
        asyncio.run(initial_population(size=1, problem="p", thinking_styles=(),
                                       mutation_prompts=MPS, llm=ScriptedLLM([]),
                                       rng=np.random.default_rng(0)))


# -- shipped lists ------------------------------------------------------------------------------
@pytest.mark.parametrize(("load", "least"), [(default_mutation_prompts, 25),
                                             (default_thinking_styles, 25),
                                             (default_hyper_mutation_prompts, 6)])
def test_shipped_lists_are_present_distinct_and_one_per_line(load, least) -> None:
    items = load()
    assert len(items) >= least
    assert len(set(items)) == len(items)
    assert all(i == i.strip() and "\n" not in i and not i.startswith("#") for i in items)
    for a in items:
        for b in items:
            assert a == b or similarity(a, b) < 0.9


# -- registry -----------------------------------------------------------------------------------
def test_every_promptbreeder_operator_is_registered_under_its_name() -> None:
    assert set(OPERATORS) == {
        "zero_order_direct", "first_order_direct", "eda", "eda_rank_index", "lineage",
        "zero_order_hyper", "first_order_hyper", "lamarckian", "crossover", "context_shuffle"}
    for name, cls in OPERATORS.items():
        assert cls.name == name and issubclass(cls, Operator)
        op = cls()
        assert dataclasses.is_dataclass(op)
        with pytest.raises(dataclasses.FrozenInstanceError):
            op.max_chars = 3  # type: ignore[misc]


def test_operator_options_have_defaults_and_docs() -> None:
    for name, cls in OPERATORS.items():
        options = operator_options(name)
        for option, (default, doc) in options.items():
            assert doc and "\n" not in doc
            assert getattr(cls(), option) == default
    assert operator_options("eda")["similarity_threshold"][0] == 0.85
    assert operator_options("context_shuffle")["capacity"][0] == 3
    assert operator_options("crossover") == {}
    with pytest.raises(ConfigError, match="unknown operator"):
        operator_options("nope")


def test_options_are_validated_through_the_config_builder() -> None:
    assert build(OPERATORS["eda"], {"similarity_threshold": 0.7}).similarity_threshold == 0.7
    with pytest.raises(ConfigError, match="similarity_threshold"):
        build(OPERATORS["eda"], {"similarity_threshold": 1.5})
    with pytest.raises(ConfigError, match="capacity"):
        build(OPERATORS["context_shuffle"], {"capacity": 0})
    with pytest.raises(ConfigError, match="unknown option"):
        build(OPERATORS["lineage"], {"max_item": 3})


def test_a_request_that_times_out_makes_the_unit_without_the_model() -> None:
    """A slow server (no answer within the timeout, after the client's retries) must not
    stop the run at its start: the unit gets the fallback prompt, with the error recorded."""
    timed_out = LLMError("the mutator server did not answer (5 attempts)")
    timed_out.__cause__ = TimeoutError()
    llm = ScriptedLLM([timed_out, "Add the numbers, then check the sum."])
    first, second = make(llm, size=2)
    failed = [u for u in (first, second) if u.exchanges[-1].get("error")]
    assert len(failed) == 1
    [exchange] = failed[0].exchanges
    assert exchange["response"] is None and "did not answer" in exchange["error"]
    assert failed[0].genome.task_prompts == (exchange["fallback"],)
    assert exchange["calls"] == 0


def test_a_server_that_cannot_be_reached_still_stops_the_run() -> None:
    unreachable = LLMError("cannot reach the mutator server")
    unreachable.__cause__ = ConnectionRefusedError()
    with pytest.raises(LLMError, match="cannot reach"):
        make(ScriptedLLM([unreachable]), size=1)
