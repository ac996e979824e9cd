"""Direct mutation, hypermutation and Lamarckian mutation: requests, children, records."""

from __future__ import annotations

import pytest

from evolve._errors import LLMResponseError
from evolve._genome import PromptGenome
from evolve.operators import (
    SYSTEM_PROMPT,
    FirstOrderDirect,
    FirstOrderHyper,
    InvalidChild,
    Lamarckian,
    ZeroOrderDirect,
    ZeroOrderHyper,
)

from .op_support import ScriptedLLM, assert_recorded, candidate, context, index_of, run

PARENT = "Solve the sum carefully."
MP = "Rewrite the instruction to be more precise."


def one_parent(prompts: tuple[str, ...] = (PARENT,), mp: str = MP):
    return index_of(candidate(1, prompts, mutation_prompt=mp, fitness=0.4))


def genome(mutation) -> PromptGenome:
    return mutation.genome


# -- zero-order direct ---------------------------------------------------------------------------
def test_zero_order_direct_asks_from_the_problem_alone() -> None:
    llm = ScriptedLLM(["Here is a hint:\n\n1. Line up the digits before adding."])
    view = one_parent()
    m = run(ZeroOrderDirect(), context(view, 1, llm, problem="Add two whole numbers."))
    [request] = llm.requests()
    assert "Add two whole numbers." in request
    assert PARENT not in request and MP not in request
    assert llm.calls[0]["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert genome(m).task_prompts == ("Line up the digits before adding.",)
    assert genome(m).mutation_prompt == MP
    assert m.extra_parents == ()
    assert_recorded(m, llm)
    assert m.exchanges[0]["response"] == "Here is a hint:\n\n1. Line up the digits before adding."


def test_exchange_records_the_exact_request_and_answer() -> None:
    answer = "Line up the digits."
    llm = ScriptedLLM([answer], cached=True)
    m = run(ZeroOrderDirect(), context(one_parent(), 1, llm, max_tokens=33, temperature=0.25))
    [ex] = m.exchanges
    assert ex["response"] == answer
    assert ex["params"]["max_tokens"] == 33 and ex["params"]["temperature"] == 0.25
    assert ex["cached"] is True and ex["finish_reason"] == "stop"
    assert_recorded(m, llm)


# -- first-order direct ----------------------------------------------------------------------------
def test_first_order_direct_applies_the_mutation_prompt_to_the_parent_prompt() -> None:
    llm = ScriptedLLM(["INSTRUCTION MUTANT: \"Add the units first, then the tens.\""])
    m = run(FirstOrderDirect(), context(one_parent(), 1, llm))
    [request] = llm.requests()
    assert MP in request and PARENT in request
    assert genome(m) == PromptGenome(("Add the units first, then the tens.",), MP)
    assert_recorded(m, llm)


@pytest.mark.parametrize("answer", ["", "   ", "Sure!", "\"\""])
def test_empty_answer_is_an_invalid_child_with_its_exchange(answer: str) -> None:
    llm = ScriptedLLM([answer])
    with pytest.raises(InvalidChild, match="no usable task prompt") as info:
        run(FirstOrderDirect(), context(one_parent(), 1, llm))
    assert_recorded(info.value.exchanges, llm)
    assert info.value.exchanges[-1]["rejected"] == info.value.reason


@pytest.mark.parametrize("answer", [PARENT, "solve the sum carefully", f"\"{PARENT}\""])
def test_unchanged_copy_is_an_invalid_child(answer: str) -> None:
    llm = ScriptedLLM([answer])
    with pytest.raises(InvalidChild, match="unchanged copy") as info:
        run(FirstOrderDirect(), context(one_parent(), 1, llm))
    assert_recorded(info.value.exchanges, llm)


def test_server_without_usable_completion_becomes_invalid_child() -> None:
    llm = ScriptedLLM([LLMResponseError("empty choices")])
    with pytest.raises(InvalidChild, match="no usable answer: empty choices") as info:
        run(FirstOrderDirect(), context(one_parent(), 1, llm))
    [ex] = info.value.exchanges
    assert ex["response"] is None and ex["error"] == "empty choices"
    assert ex["messages"] == llm.calls[0]["messages"]


def test_two_task_prompts_one_is_mutated_at_random() -> None:
    prompts = ("First part.", "Second part.")
    changed = set()
    for seed in range(20):
        llm = ScriptedLLM(["A brand new instruction."])
        m = run(FirstOrderDirect(), context(one_parent(prompts), 1, llm, seed=seed))
        diff = [i for i in range(2) if genome(m).task_prompts[i] != prompts[i]]
        assert len(diff) == 1
        assert prompts[diff[0]] in llm.requests()[0]
        changed.add(diff[0])
    assert changed == {0, 1}


def test_every_prompt_rewrites_all_task_prompts() -> None:
    prompts = ("First part.", "Second part.")
    llm = ScriptedLLM(["New first.", "New second."])
    m = run(FirstOrderDirect(every_prompt=True), context(one_parent(prompts), 1, llm))
    assert genome(m).task_prompts == ("New first.", "New second.")
    assert "First part." in llm.requests()[0] and "Second part." in llm.requests()[1]
    assert_recorded(m, llm)


def test_same_seed_same_requests_and_child() -> None:
    def once(seed: int):
        llm = ScriptedLLM([lambda msgs, s: f"Instruction number {s}."])
        m = run(FirstOrderDirect(), context(one_parent(("A.", "B.")), 1, llm, seed=seed))
        return m.genome, m.exchanges

    assert once(5) == once(5)
    assert once(5) != once(6)


def test_max_chars_caps_the_child_prompt() -> None:
    llm = ScriptedLLM(["word " * 200])
    m = run(FirstOrderDirect(max_chars=50), context(one_parent(), 1, llm))
    assert len(genome(m).task_prompts[0]) <= 50


# -- hypermutation ---------------------------------------------------------------------------------
def test_zero_order_hyper_makes_a_mutation_prompt_from_problem_and_style() -> None:
    styles = ("Picture the situation.", "Work backwards.")
    llm = ScriptedLLM(["New mutation prompt: Make the instruction mention carrying.",
                       "Add the digits, carrying when needed."])
    m = run(ZeroOrderHyper(), context(one_parent(), 1, llm, thinking_styles=styles,
                                      problem="Add two whole numbers."))
    first, second = llm.requests()
    assert "Add two whole numbers." in first
    assert sum(s in first for s in styles) == 1
    assert MP not in first and PARENT not in first
    assert "Make the instruction mention carrying." in second and PARENT in second
    assert genome(m) == PromptGenome(("Add the digits, carrying when needed.",),
                                     "Make the instruction mention carrying.")
    assert_recorded(m, llm)


def test_first_order_hyper_rewrites_the_parent_mutation_prompt() -> None:
    hypers = ("Improve this instruction.", "Make this instruction sharper.")
    llm = ScriptedLLM(["Rewrite the instruction so that it names each step.",
                       "Name each step: add units, carry, add tens."])
    m = run(FirstOrderHyper(), context(one_parent(), 1, llm, hyper_mutation_prompts=hypers))
    first, second = llm.requests()
    assert MP in first and sum(h in first for h in hypers) == 1
    assert PARENT not in first
    assert "Rewrite the instruction so that it names each step." in second and PARENT in second
    assert genome(m).mutation_prompt == "Rewrite the instruction so that it names each step."
    assert genome(m).task_prompts == ("Name each step: add units, carry, add tens.",)
    assert_recorded(m, llm)


def test_hyper_child_may_keep_the_task_prompt_but_carries_the_new_mutation_prompt() -> None:
    llm = ScriptedLLM(["A different mutation prompt.", PARENT])
    m = run(FirstOrderHyper(), context(one_parent(), 1, llm))
    assert genome(m) == PromptGenome((PARENT,), "A different mutation prompt.")


def test_first_order_hyper_rejects_an_identical_mutation_prompt() -> None:
    llm = ScriptedLLM([MP.upper()])
    with pytest.raises(InvalidChild, match="mutation prompt is identical") as info:
        run(FirstOrderHyper(), context(one_parent(), 1, llm))
    assert len(info.value.exchanges) == 1


def test_hyper_rejects_an_empty_mutation_prompt() -> None:
    llm = ScriptedLLM(["Here is a better instruction:"])
    with pytest.raises(InvalidChild, match="no usable mutation prompt"):
        run(ZeroOrderHyper(), context(one_parent(), 1, llm))


def test_hyper_without_seed_lists_is_invalid_without_asking() -> None:
    llm = ScriptedLLM([])
    with pytest.raises(InvalidChild, match="hyper-mutation prompt"):
        run(FirstOrderHyper(), context(one_parent(), 1, llm, hyper_mutation_prompts=()))
    with pytest.raises(InvalidChild, match="thinking style"):
        run(ZeroOrderHyper(), context(one_parent(), 1, llm, thinking_styles=()))
    assert llm.calls == []


def test_direct_mutation_keeps_the_mutation_prompt_and_context() -> None:
    view = index_of(candidate(1, (PARENT,), mutation_prompt=MP, context=("Q: 1+1\nA: 2",)))
    m = run(FirstOrderDirect(), context(view, 1, ScriptedLLM(["Count on your fingers."])))
    assert genome(m).mutation_prompt == MP and genome(m).context == ("Q: 1+1\nA: 2",)


# -- Lamarckian ----------------------------------------------------------------------------
def test_lamarckian_shows_a_correct_working_and_takes_the_instruction() -> None:
    workings = [("What is 12 + 30?", "12 + 30: 2 + 0 = 2 units, 1 + 3 = 4 tens, so 42.")]
    llm = ScriptedLLM(["The instruction was: \"Add units and tens separately.\""])
    m = run(Lamarckian(), context(one_parent(), 1, llm, correct_workings=workings))
    [request] = llm.requests()
    assert "What is 12 + 30?" in request and "so 42." in request
    assert PARENT not in request
    assert genome(m) == PromptGenome(("Add units and tens separately.",), MP)
    assert_recorded(m, llm)


def test_lamarckian_without_correct_working_is_invalid_without_asking() -> None:
    llm = ScriptedLLM([])
    with pytest.raises(InvalidChild, match="no correct working-out") as info:
        run(Lamarckian(), context(one_parent(), 1, llm, correct_workings=()))
    assert llm.calls == [] and info.value.exchanges == ()


def test_lamarckian_caps_long_workings() -> None:
    workings = [("Q " * 2000, "step " * 2000)]
    llm = ScriptedLLM(["Be systematic."])
    run(Lamarckian(max_working_chars=100), context(one_parent(), 1, llm,
                                                   correct_workings=workings))
    assert len(llm.requests()[0]) < 600
