"""The code-operator registry, its options, the shipped code lexicons, the system prompt."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest

from evolve._errors import ConfigError
from evolve._schema import build
from evolve.code.operators import (
    CODE_OPERATORS,
    CODE_SYSTEM_PROMPT,
    CodeOperator,
    code_operator_options,
    default_code_hyper_mutation_prompts,
    default_code_mutation_prompts,
)
from evolve.operators import OPERATORS, SYSTEM_PROMPT, Transcript
from evolve.operators._text import similarity

from .op_support import ScriptedLLM, assert_recorded


def test_the_registry_holds_the_code_operators_by_name() -> None:
    assert list(CODE_OPERATORS) == ["diff_edit", "full_rewrite", "merge", "hyper_diff",
                                    "self_modify"]
    assert not set(CODE_OPERATORS) & set(OPERATORS)
    for name, cls in CODE_OPERATORS.items():
        assert cls.name == name and issubclass(cls, CodeOperator)
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen
        assert cls.__doc__ and cls.__module__.startswith("evolve.code.operators._")
        cls()  # every option has a default


@pytest.mark.parametrize("name", list(CODE_OPERATORS))
def test_every_option_is_documented_and_buildable_from_config(name: str) -> None:
    options = code_operator_options(name)
    for option, (default, text) in options.items():
        assert text and text[0].isupper() and text.endswith("."), option
        assert default is not dataclasses.MISSING
    built = build(CODE_OPERATORS[name], {k: v for k, (v, _) in options.items()})
    assert built == CODE_OPERATORS[name]()
    with pytest.raises(ConfigError, match="unknown option"):
        build(CODE_OPERATORS[name], {"max_blocksz": 3})


def test_options_of_the_code_operators() -> None:
    assert set(code_operator_options("diff_edit")) == {
        "feedback_chars", "context_chars", "constrained", "attempts_shown", "repairs",
        "tolerant", "max_blocks"}
    assert set(code_operator_options("hyper_diff")) == set(code_operator_options("diff_edit")) | {
        "max_mutation_chars", "zero_order_probability"}
    assert set(code_operator_options("full_rewrite")) == {"feedback_chars", "context_chars",
                                                          "constrained", "attempts_shown",
                                                          "repairs"}
    assert set(code_operator_options("merge")) == {
        "resolve_conflicts", "max_conflicted_files", "diff3", "constrained"}
    with pytest.raises(ConfigError, match="unknown code operator 'patch'; choose one of: diff"):
        code_operator_options("patch")


@pytest.mark.parametrize("load,count", [(default_code_mutation_prompts, 15),
                                        (default_code_hyper_mutation_prompts, 8)])
def test_the_shipped_code_lexicons(load, count: int) -> None:
    lines = load()
    assert len(lines) == count
    assert all(ln and not ln.startswith("#") and ln.endswith(".") for ln in lines)
    assert max(similarity(a, b) for i, a in enumerate(lines) for b in lines[i + 1:]) < 0.8


def test_a_transcript_uses_its_system_prompt_default_or_given() -> None:
    llm = ScriptedLLM(["a", "b", "c"])
    default = Transcript(llm, np.random.default_rng(0), max_tokens=8, temperature=None)
    code = Transcript(llm, np.random.default_rng(0), max_tokens=8, temperature=None,
                      system=CODE_SYSTEM_PROMPT)

    async def ask() -> None:
        await default.ask("x")
        await code.ask("y")
        await code.ask("z", system="Other.")

    asyncio.run(ask())
    assert [c["messages"][0]["content"] for c in llm.calls] == [
        SYSTEM_PROMPT, CODE_SYSTEM_PROMPT, "Other."]
    assert_recorded(default.exchanges + code.exchanges, llm)
    assert code.system == CODE_SYSTEM_PROMPT
