"""Failures teach the next attempt (issue 14, point 6): a request for a parent lists its latest
children that failed and why, and once some have failed the mutation prompt is drawn from the
run's set, so that repeated requests for one parent differ."""

from __future__ import annotations

from dataclasses import replace

from archive import Failure, Status
from evolve._species import ATTEMPT_CHARS, failed_attempts
from evolve.code.operators import DiffEdit
from evolve.code.operators._base import parent_mutation_prompt
from evolve.code.operators._patch import format_block

from .code_support import MP, code_candidate, code_context, run_code
from .op_support import ScriptedLLM, index_of

TREE = {"solve.py": "def solve(n):\n    return n\n"}
GOOD = format_block(None, "    return n\n", "    return n + 1\n")
TRIED = ("diff_edit (no_match): block 1 does not apply to solve.py: its SEARCH text "
         "(starting 'return m') is not in the file",
         "full_rewrite (syntax_error): syntax error in solve.py line 2: invalid syntax",
         "diff_edit (runtime_error): exit on all 3 example(s): NameError")


def test_the_request_lists_the_latest_failed_attempts_and_asks_for_something_else() -> None:
    llm = ScriptedLLM([GOOD])
    ctx = replace(code_context({1: TREE}, llm), attempts=TRIED)
    run_code(DiffEdit(attempts_shown=2), ctx)
    request = llm.requests()[0]
    assert "## Earlier changes to this version that failed (newest first)" in request
    assert f"- {TRIED[0]}\n- {TRIED[1]}\nDo not repeat them" in request
    assert TRIED[2] not in request  # only the two newest are shown


def test_no_attempts_no_section() -> None:
    for attempts, shown in (((), 3), (TRIED, 0)):
        llm = ScriptedLLM([GOOD])
        run_code(DiffEdit(attempts_shown=shown),
                 replace(code_context({1: TREE}, llm), attempts=attempts))
        assert "Earlier changes" not in llm.requests()[0]


def test_after_failures_the_mutation_prompt_is_drawn_from_the_runs_set() -> None:
    lexicon = ("Make it faster.", "Handle the edge cases.", MP)
    def drawn(attempts: tuple[str, ...]) -> set[str]:
        return {parent_mutation_prompt(replace(
            code_context({1: TREE}, ScriptedLLM(), seed=seed, mutation_prompts=lexicon),
            attempts=attempts)) for seed in range(60)}
    assert drawn(()) == {MP}  # the parent's own, as long as nothing failed
    assert drawn(TRIED) == set(lexicon)  # own included once, every lexicon entry drawn


def test_failed_attempts_are_the_parents_invalid_and_failed_children_newest_first() -> None:
    def child(cid: int, status: Status, failure: Failure | None, reason: str | None,
              parent: int = 1):
        c = code_candidate(cid, parents=(parent,), fitness=0.5 if status is Status.EVALUATED
                           else None)
        return replace(c, status=status, failure=failure, reason=reason, operator="diff_edit")
    long = "x " * 400
    view = index_of(
        code_candidate(1), code_candidate(2, parents=(1,)),
        child(3, Status.INVALID, Failure.NO_MATCH, "SEARCH text not in the file"),
        child(4, Status.FAILED, Failure.TIMEOUT, "timeout on all 2 example(s)"),
        child(5, Status.PENDING, None, None),
        child(6, Status.INVALID, Failure.NO_BLOCK, "no block", parent=2),  # another parent's
        child(7, Status.FAILED, None, long),  # from an archive older than failure kinds
    )
    lines = failed_attempts(view, view.get(1))
    assert lines[1:] == ["diff_edit (timeout): timeout on all 2 example(s)",
                         "diff_edit (no_match): SEARCH text not in the file"]
    assert lines[0].startswith("diff_edit (failed): x x") and lines[0].endswith("...")
    assert len(lines[0]) == ATTEMPT_CHARS  # the whole line is cut
    many = index_of(code_candidate(1), *(child(i, Status.INVALID, Failure.NO_BLOCK, f"r{i}")
                                         for i in range(2, 20)))
    assert failed_attempts(many, many.get(1)) == [f"diff_edit (no_block): r{i}"
                                                  for i in range(19, 11, -1)]
