"""One repair turn (issue 14, point 2): an answer that makes no valid child goes back to the
mutator with the exact error, in the same conversation; both exchanges are recorded."""

from __future__ import annotations

import pytest

from archive import Failure
from evolve._errors import LLMError
from evolve.code.operators import DiffEdit, FullRewrite
from evolve.code.operators._patch import format_block
from evolve.llm._types import Completion
from evolve.operators import InvalidChild

from .code_support import code_context, fenced, run_code
from .op_support import ScriptedLLM, assert_recorded

SOLVE = ("def solve(n):\n    total = 0\n    for i in range(n):\n        total += i\n"
         "    return total\n")
TREE = {"solve.py": SOLVE}
MISSING = format_block(None, "    return tot\n", "    return 0\n")  # not in the file
GOOD = format_block(None, "    return total\n", "    return -total\n")


def test_a_failed_edit_is_sent_back_once_and_the_second_answer_makes_the_child() -> None:
    llm = ScriptedLLM([MISSING, GOOD])
    mutation = run_code(DiffEdit(), code_context({1: TREE}, llm))
    assert "return -total" in mutation.files["solve.py"]
    assert_recorded(mutation.exchanges, llm)
    first, second = mutation.exchanges
    assert first["rejected"].startswith("block 1 does not apply to solve.py: its SEARCH text")
    assert "repair" not in first and second["repair"] == 1 and "rejected" not in second
    # the same conversation: the first request, the first answer, then the error
    sent = llm.calls[1]["messages"]
    assert sent[:2] == llm.calls[0]["messages"]
    assert sent[2] == {"role": "assistant", "content": MISSING}
    assert sent[3]["role"] == "user" and first["rejected"] in sent[3]["content"]
    assert llm.calls[1]["grammar"] == llm.calls[0]["grammar"]  # the same answer shape


@pytest.mark.parametrize("repairs", [0, 1, 3])
def test_a_child_still_invalid_after_its_repairs_gives_the_last_reason(repairs: int) -> None:
    answers = [MISSING] * repairs + ["I cannot do that."]
    llm = ScriptedLLM(answers)
    with pytest.raises(InvalidChild) as info:
        run_code(DiffEdit(repairs=repairs), code_context({1: TREE}, llm))
    exc = info.value
    assert len(exc.exchanges) == repairs + 1 == len(llm.calls)
    assert exc.failure is Failure.NO_BLOCK
    assert exc.reason == "the answer holds no SEARCH/REPLACE block"
    assert [ex.get("repair") for ex in exc.exchanges] == [None, *range(1, repairs + 1)]
    assert all(ex["rejected"] for ex in exc.exchanges)


def test_a_rewrite_that_does_not_compile_is_repaired() -> None:
    llm = ScriptedLLM([fenced("def solve(n):\n    return (n\n"),
                       fenced("def solve(n):\n    return n * (n - 1) // 2\n")])
    mutation = run_code(FullRewrite(), code_context({1: TREE}, llm))
    assert mutation.files["solve.py"] == "def solve(n):\n    return n * (n - 1) // 2\n"
    assert "syntax error in solve.py line 2" in llm.calls[1]["messages"][-1]["content"]


def test_an_answer_cut_at_max_tokens_is_repaired_and_a_timeout_is_not() -> None:
    cut = Completion("solve.py\n<<<<<<< SEARCH\n    return to", finish_reason="length")
    llm = ScriptedLLM([cut, GOOD])
    mutation = run_code(DiffEdit(), code_context({1: TREE}, llm))
    assert mutation.exchanges[0]["rejected"].startswith("the reply was cut at max_tokens")
    llm = ScriptedLLM([MISSING, LLMError("no answer within 5 s")])
    with pytest.raises(LLMError):  # the engine records it as the child's failure
        run_code(DiffEdit(), code_context({1: TREE}, llm))
