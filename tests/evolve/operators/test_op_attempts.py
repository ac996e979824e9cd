"""Prompt operators learn from what was tried from the parent, and fit the context window."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from archive import Failure, Status
from evolve._species import _worse_prompt as worse
from evolve._species import failed_attempts
from evolve.operators import EDA, FirstOrderDirect, Lineage

from .op_support import ScriptedLLM, candidate, context, index_of


def child(cid: int, prompt: str, fitness: float | None, *, parent: int = 1,
          status: Status = Status.EVALUATED, reason: str | None = None):
    c = candidate(cid, (prompt,), fitness=fitness, status=status, parents=(parent,))
    return replace(c, operator="first_order_direct", reason=reason,
                   failure=Failure.DUPLICATE if reason else None)


def test_attempts_are_invalid_children_and_children_that_scored_below_the_parent() -> None:
    view = index_of(candidate(1, ("Add.",), fitness=0.5),
                    child(2, "Add carefully.", 0.25),
                    child(3, "Add it all.", 0.75),  # better: not an attempt to avoid
                    child(4, "Add.", None, status=Status.INVALID,
                          reason="the child equals an earlier candidate"),
                    child(5, "Sum up.", 0.0),  # a score of 0 is below too
                    child(6, "Other.", 0.1, parent=3))  # another parent's
    assert failed_attempts(view, view.get(1), worse=worse) == [
        '"Sum up." scored 0.00, below the 0.50 of the current instruction',
        "first_order_direct (duplicate): the child equals an earlier candidate",
        '"Add carefully." scored 0.25, below the 0.50 of the current instruction']
    # without ``worse`` (code runs) only the children that were not valid
    assert failed_attempts(view, view.get(1)) == [
        "first_order_direct (duplicate): the child equals an earlier candidate"]


def test_a_task_prompt_request_lists_the_attempts_and_a_later_one_differs() -> None:
    view = index_of(candidate(1, ("Add.",)))
    attempts = ('"Add carefully." scored 0.25, below the 0.50 of the current instruction',)
    for shown, listed in ((3, True), (0, False)):
        llm = ScriptedLLM(["Add the units first."])
        ctx = replace(context(view, 1, llm), attempts=attempts)
        asyncio.run(FirstOrderDirect(attempts_shown=shown).mutate(ctx))
        request = llm.requests()[0]
        assert ("Earlier attempts from this instruction that did not pay off" in request) is listed
        assert (attempts[0] in request) is listed


def test_the_attempts_give_way_when_the_context_window_is_small() -> None:
    view = index_of(candidate(1, ("Add.",)))
    llm = ScriptedLLM(["Add the units first."])
    ctx = replace(context(view, 1, llm, max_tokens=64), attempts=("x" * 200,),
                  context_tokens=260)  # room for the request, not for the attempts
    asyncio.run(FirstOrderDirect().mutate(ctx))
    assert "Earlier attempts" not in llm.requests()[0]


def test_listing_operators_list_fewer_prompts_to_fit_the_context_window() -> None:
    members = [candidate(i, (f"Instruction number {i}: " + "be careful. " * 8,),
                         fitness=i / 20, parents=(1,) if i > 1 else ())
               for i in range(1, 11)]
    view = index_of(*members)
    for context_tokens, most in ((None, 10), (700, 10), (400, 4)):
        llm = ScriptedLLM(["A new instruction."])
        ctx = replace(context(view, 1, llm, max_tokens=64), context_tokens=context_tokens)
        asyncio.run(EDA(max_items=10).mutate(ctx))
        listed = llm.requests()[0].count("Instruction number")
        assert 1 <= listed <= most and (context_tokens != 400 or listed < 10)
        system = llm.calls[0]["messages"][0]["content"]
        room = float("inf") if context_tokens is None else (
            (context_tokens - 64) * 3 - len(system) - 300)
        assert len(llm.requests()[0]) <= room
    # a lineage keeps its newest elites
    chain = [candidate(1, ("p1 " * 40,), fitness=0.1)] + [
        candidate(i, (f"p{i} " * 40,), fitness=i / 10, parents=(i - 1,)) for i in range(2, 9)]
    view = index_of(*chain)
    llm = ScriptedLLM(["A new instruction."])
    ctx = replace(context(view, 8, llm, max_tokens=64), context_tokens=500)
    asyncio.run(Lineage().mutate(ctx))
    request = llm.requests()[0]
    assert "p8 " in request and "p1 " not in request
