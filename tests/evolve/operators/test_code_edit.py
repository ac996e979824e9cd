"""``diff_edit`` and ``hyper_diff`` with a scripted mutator: requests, children, invalid ones."""

from __future__ import annotations

import pytest

from archive import Failure
from evolve._errors import LLMRejectedError, LLMResponseError
from evolve.code.operators import CODE_SYSTEM_PROMPT, CodeMutation, DiffEdit, HyperDiff
from evolve.code.operators._patch import format_block
from evolve.llm._types import Completion
from evolve.operators import SYSTEM_PROMPT, InvalidChild

from .code_support import HYPER, MP, PROBLEM, code_candidate, code_context, run_code
from .op_support import ScriptedLLM, assert_recorded, index_of

SOLVE = ("def solve(n):\n    total = 0\n    for i in range(n):\n        total += i\n"
         "    return total\n")
HELPER = "def helper():\n    return 1\n"
README = "Read me.\n"
TREE = {"solve.py": SOLVE, "helper.py": HELPER, "README.md": README}
MARKED = ("import math\n\n# EVOLVE-BLOCK-START\ndef solve(n):\n    return n\n# EVOLVE-BLOCK-END\n"
          "\n\ndef run():\n    return solve(3)\n")


def edit(answer: str | Exception, *, tree=TREE, evolve_paths=("solve.py",), operator=None,
         **kw) -> tuple[CodeMutation, ScriptedLLM]:
    llm = ScriptedLLM([answer])
    ctx = code_context({1: tree}, llm, evolve_paths=evolve_paths, **kw)
    return run_code(operator or DiffEdit(), ctx), llm


def invalid(answers, *, tree=TREE, evolve_paths=("solve.py",), operator=None,
            **kw) -> tuple[InvalidChild, ScriptedLLM]:
    llm = ScriptedLLM(answers if isinstance(answers, list) else [answers])
    ctx = code_context({1: tree}, llm, evolve_paths=evolve_paths, **kw)
    with pytest.raises(InvalidChild) as info:
        run_code(operator or DiffEdit(repairs=0), ctx)
    assert info.value.reason
    assert_recorded(info.value.exchanges, llm)
    if info.value.exchanges:
        assert info.value.exchanges[-1]["rejected"] == info.value.reason
    return info.value, llm


# -- valid children -----------------------------------------------------------------------------
def test_the_request_shows_instruction_task_feedback_and_files() -> None:
    m, llm = edit(format_block(None, "        total += i\n", "        total += i * i\n"),
                  evolve_paths=("solve.py",))
    [call] = llm.calls
    assert call["messages"][0] == {"role": "system", "content": CODE_SYSTEM_PROMPT}
    request = call["messages"][1]["content"]
    assert request.startswith(MP)
    assert PROBLEM in request and "example 3 failed: IndexError" in request
    assert f"### solve.py\n```python\n{SOLVE}```" in request
    assert f"### helper.py\n```python\n{HELPER}```" in request  # read-only, for reference
    order = [request.index(s) for s in ("## Files you may change", "### solve.py",
                                        "## Other files", "### helper.py", "## Answer format")]
    assert order == sorted(order)
    assert "<<<<<<< SEARCH" in request and ">>>>>>> REPLACE" in request
    assert "EVOLVE-BLOCK" not in request
    assert call["max_tokens"] == 256 and call["temperature"] == 0.7
    assert_recorded(m, llm)


def test_a_block_without_path_edits_the_only_evolvable_file() -> None:
    m, _ = edit("```\n" + format_block(None, "        total += i\n", "        total += i * i\n")
                + "```")
    assert m.files == {**TREE, "solve.py": SOLVE.replace("total += i\n", "total += i * i\n")}
    assert m.mutation_prompt == MP and m.extra_parents == ()
    assert m.message == "diff_edit: 1 block in solve.py"


def test_blocks_may_edit_several_evolvable_files() -> None:
    answer = (format_block("solve.py", "    return total\n", "    return total + 1\n")
              + "\nand\n\n" + format_block("helper.py", "    return 1\n", "    return 2\n")
              + format_block(None, "def helper():\n", "def helper() -> int:\n"))
    m, _ = edit(answer, evolve_paths=("solve.py", "helper.py"))
    assert m.files["solve.py"].endswith("    return total + 1\n")
    assert m.files["helper.py"] == "def helper() -> int:\n    return 2\n"
    assert m.files["README.md"] == README
    assert m.message == "diff_edit: 3 blocks in helper.py, solve.py"


def test_edits_inside_evolve_block_regions_are_applied() -> None:
    m, llm = edit(format_block("solve.py", "    return n\n", "    return n * n\n"),
                  tree={"solve.py": MARKED})
    assert m.files["solve.py"] == MARKED.replace("return n\n", "return n * n\n")
    assert "Change only the lines between EVOLVE-BLOCK-START and EVOLVE-BLOCK-END" in (
        llm.requests()[0])


def test_a_parent_without_mutation_prompt_uses_one_of_the_lexicon() -> None:
    view = index_of(code_candidate(1, mutation_prompt=""))
    lexicon = ("Speed it up.", "Fix the failures.")
    m, llm = edit(format_block(None, "    return total\n", "    return total or 0\n"),
                  view=view, mutation_prompts=lexicon)
    assert m.mutation_prompt in lexicon
    assert llm.requests()[0].startswith(m.mutation_prompt)


def test_feedback_is_clipped_and_read_only_files_are_shown_within_their_budget() -> None:
    answer = format_block(None, "    return total\n", "    return total or 0\n")
    _, llm = edit(answer, feedback="x" * 50, operator=DiffEdit(feedback_chars=10, context_chars=12))
    request = llm.requests()[0]
    assert "x" * 10 + "\n[... 40 more characters]" in request and "x" * 11 not in request
    assert "### README.md" in request and "### helper.py" not in request  # 9 chars fit, 28 not
    _, llm = edit(answer, feedback="", operator=DiffEdit(context_chars=0))
    assert "## How the current version did" not in llm.requests()[0]
    assert "## Other files" not in llm.requests()[0]


def test_same_seed_and_answers_give_the_same_child() -> None:
    answer = format_block(None, "    return total\n", "    return -total\n")
    children = [edit(answer, seed=seed) for seed in (5, 5, 6)]
    (a, la), (b, lb), (_, lc) = children
    assert a == b and la.calls == lb.calls
    assert la.calls[0]["seed"] != lc.calls[0]["seed"]


# -- invalid children ---------------------------------------------------------------------------
@pytest.mark.parametrize("answer,reason,kind", [
    ("I would square the numbers.", "the answer holds no SEARCH/REPLACE block",
     Failure.NO_BLOCK),
    (format_block(None, "    return tot\n", "    return 0\n"),
     "block 1 does not apply to solve.py: its SEARCH text (starting 'return tot') is not in "
     "the file", Failure.NO_MATCH),
    (format_block(None, "", "x = 1\n"),
     "block 1 does not apply to solve.py: its SEARCH section is empty", Failure.NO_MATCH),
    ("solve.py\n<<<<<<< SEARCH\n    return total\n=======\n    return 1\n",
     "block 1 is not closed (no >>>>>>> REPLACE line; the answer may have been cut off)",
     Failure.INVALID_OUTPUT),
    (format_block(None, "    return total\n", "    return total\n"),
     "the edit leaves every file unchanged", Failure.DUPLICATE),
    (format_block(None, "    return total\n", "    return total +\n"),
     "syntax error in solve.py line 5: invalid syntax", Failure.SYNTAX_ERROR),
    (format_block("helper.py", "    return 1\n", "    return 2\n"),
     "block 1 edits helper.py, which is read-only (the files it may edit: solve.py)",
     Failure.OUTSIDE_MARKERS),
    (format_block("other.py", "a\n", "b\n"),
     "block 1 edits other.py, which is not a file it may edit (solve.py)",
     Failure.INVALID_OUTPUT),
])
def test_invalid_edits_say_why(answer: str, reason: str, kind: Failure) -> None:
    exc, llm = invalid(answer)
    assert exc.reason.startswith(reason)
    assert exc.failure is kind
    assert len(exc.exchanges) == 1 and exc.exchanges[0]["response"] == answer


def test_an_answer_cut_at_max_tokens_that_cannot_be_used_is_truncated() -> None:
    cut = "solve.py\n<<<<<<< SEARCH\n    return total\n=======\n    return"
    exc, _ = invalid(Completion(cut, finish_reason="length"), max_tokens=40)
    assert exc.failure is Failure.TRUNCATED
    assert exc.reason.startswith("the reply was cut at max_tokens (40): block 1 is not closed")


def test_the_blocks_written_whole_before_the_cut_still_make_a_child() -> None:
    whole = format_block(None, "    return total\n", "    return -total\n")
    mutation, _ = edit(Completion(whole + "solve.py\n<<<<<<< SEARCH\n    tot",
                                  finish_reason="length"))
    assert "return -total" in mutation.files["solve.py"]


def test_an_ambiguous_search_is_invalid() -> None:
    tree = {"solve.py": "x = 1\ny = 2\nx = 1\n"}
    exc, _ = invalid(format_block(None, "x = 1\n", "x = 3\n"), tree=tree)
    assert exc.reason == ("block 1 does not apply to solve.py: its SEARCH text matches 2 places "
                          "(it must match exactly once: include more surrounding lines)")
    assert exc.failure is Failure.NO_MATCH


def test_a_block_without_path_is_invalid_with_several_evolvable_files() -> None:
    exc, _ = invalid(format_block(None, "    return 1\n", "    return 2\n"),
                     evolve_paths=("solve.py", "helper.py"))
    assert exc.reason == ("block 1 names no file, and there are 2 files it could edit "
                          "(solve.py, helper.py)")


@pytest.mark.parametrize("old,new,reason", [
    ("import math\n", "import math, sys\n",
     "block 1 changes solve.py outside its EVOLVE-BLOCK regions (line 1)"),
    ("def run():\n    return solve(3)\n", "def run():\n    return solve(4)\n",
     "block 1 changes solve.py outside its EVOLVE-BLOCK regions (line 10)"),
    ("# EVOLVE-BLOCK-START\n", "", "block 1 changes the EVOLVE-BLOCK markers of solve.py"),
    ("    return n\n# EVOLVE-BLOCK-END\n", "    return n\n",
     "block 1 changes the EVOLVE-BLOCK markers of solve.py"),
])
def test_edits_outside_the_marked_regions_are_invalid(old: str, new: str, reason: str) -> None:
    exc, _ = invalid(format_block("solve.py", old, new), tree={"solve.py": MARKED})
    assert exc.reason.startswith(reason)
    assert exc.failure is Failure.OUTSIDE_MARKERS


def test_a_later_block_that_breaks_a_rule_invalidates_the_whole_answer() -> None:
    answer = (format_block(None, "    return total\n", "    return -total\n")
              + format_block(None, "    return nothing\n", "    return 0\n"))
    exc, _ = invalid(answer)
    assert exc.reason.startswith("block 2 does not apply to solve.py")


def test_too_many_blocks_are_invalid() -> None:
    block = format_block(None, "    return total\n", "    return -total\n")
    exc, _ = invalid(block * 3, operator=DiffEdit(max_blocks=2, repairs=0))
    assert exc.reason == "the answer holds 3 SEARCH/REPLACE blocks (at most 2 are accepted)"


def test_an_unusable_llm_answer_is_an_invalid_child() -> None:
    llm = ScriptedLLM([LLMResponseError("the server sent no choices")])
    with pytest.raises(InvalidChild) as info:
        run_code(DiffEdit(), code_context({1: TREE}, llm))
    assert info.value.reason == "mutator LLM gave no usable answer: the server sent no choices"
    [exchange] = info.value.exchanges
    assert exchange["response"] is None and exchange["messages"] == llm.calls[0]["messages"]
    assert exchange["rejected"] == info.value.reason


def test_a_parent_without_evolvable_files_is_invalid_without_asking() -> None:
    exc, llm = invalid([], evolve_paths=("missing.py",))
    assert exc.reason == "the parent has none of the files that may evolve (missing.py)"
    assert llm.calls == []


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="max_blocks"):
        DiffEdit(max_blocks=0)
    with pytest.raises(ValueError, match="zero_order_probability"):
        HyperDiff(zero_order_probability=1.5)


# -- hypermutation ------------------------------------------------------------------------------
NEW_MP = "Look for an off-by-one error in the loop bounds and fix it."
GOOD = format_block(None, "    for i in range(n):\n", "    for i in range(n + 1):\n")


def test_hyper_diff_rewrites_the_mutation_prompt_then_edits_with_it() -> None:
    llm = ScriptedLLM([f"Improved instruction: \"{NEW_MP}\"", GOOD])
    m = run_code(HyperDiff(), code_context({1: TREE}, llm))
    first, second = llm.calls
    assert first["messages"][0]["content"] == SYSTEM_PROMPT
    assert second["messages"][0]["content"] == CODE_SYSTEM_PROMPT
    request = first["messages"][1]["content"]
    assert any(request.startswith(h) for h in HYPER)
    assert f"INSTRUCTION TO IMPROVE:\n{MP}" in request and PROBLEM in request
    assert second["messages"][1]["content"].startswith(NEW_MP)
    assert m.mutation_prompt == NEW_MP
    assert "range(n + 1)" in m.files["solve.py"]
    assert m.message == "hyper_diff: new mutation prompt; 1 block in solve.py"
    assert_recorded(m, llm)


def test_zero_order_hyper_diff_writes_the_prompt_from_the_task_alone() -> None:
    llm = ScriptedLLM([NEW_MP, GOOD])
    m = run_code(HyperDiff(zero_order_probability=1.0), code_context({1: TREE}, llm))
    request = llm.requests()[0]
    assert PROBLEM in request and MP not in request and not any(h in request for h in HYPER)
    assert m.mutation_prompt == NEW_MP


@pytest.mark.parametrize("answers,reason,asked", [
    ([MP.upper()], "the new mutation prompt is identical to the parent's", 1),
    (["Sure!"], "the mutator's answer held no usable mutation prompt", 1),
    ([NEW_MP, "no blocks here"], "the answer holds no SEARCH/REPLACE block", 2),
])
def test_hyper_diff_invalid_children(answers: list[str], reason: str, asked: int) -> None:
    exc, llm = invalid(answers, operator=HyperDiff(repairs=0))
    assert exc.reason == reason and len(llm.calls) == asked


def test_hyper_diff_needs_hyper_mutation_prompts() -> None:
    exc, llm = invalid([], operator=HyperDiff(), hyper_mutation_prompts=())
    assert exc.reason == "hyper_diff needs at least one hyper-mutation prompt"
    assert llm.calls == []


def test_hyper_diff_is_deterministic() -> None:
    def once(seed: int):
        llm = ScriptedLLM([NEW_MP, GOOD])
        return run_code(HyperDiff(), code_context({1: TREE}, llm, seed=seed)), llm.calls

    assert once(3) == once(3)
    prompts = {once(seed)[1][0]["messages"][1]["content"].split("\n")[0] for seed in range(12)}
    assert prompts == set(HYPER)  # the hyper-mutation prompt is drawn from the rng


# -- the answer grammar -------------------------------------------------------------------------
def test_the_request_carries_the_parents_grammar_and_records_it() -> None:
    answer = format_block("solve.py", "    return total\n", "    return total * 2\n")
    mutation, llm = edit(answer)
    grammar = llm.calls[0]["grammar"]
    assert grammar and '"    return total\\n"' in grammar and "solve.py" in grammar
    assert mutation.exchanges[0]["params"]["grammar"] == grammar
    _, free = edit(answer, operator=DiffEdit(constrained=False))
    assert free.calls[0]["grammar"] is None


def test_a_server_that_refuses_the_grammar_is_asked_again_without_it() -> None:
    answer = format_block("solve.py", "    return total\n", "    return total * 2\n")
    llm = ScriptedLLM([LLMRejectedError("HTTP 400: failed to parse grammar"), answer])
    mutation = run_code(DiffEdit(), code_context({1: TREE}, llm))
    first, second = mutation.exchanges
    assert first["grammar_refused"] == "HTTP 400: failed to parse grammar"
    assert first["response"] is None and first["params"]["grammar"]
    assert "grammar" not in second["params"] and second["response"] == answer
    assert [c["grammar"] is None for c in llm.calls] == [False, True]
    assert "return total * 2" in mutation.files["solve.py"]
