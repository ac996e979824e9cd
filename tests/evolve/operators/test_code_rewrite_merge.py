"""``full_rewrite`` and ``merge`` with a scripted mutator: children, invalid children, donors."""

from __future__ import annotations

import pytest

from evolve.code.operators import CODE_SYSTEM_PROMPT, FullRewrite, Merge
from evolve.code.operators._merge import merge_file
from evolve.operators import InvalidChild

from .code_support import MP, PROBLEM, code_candidate, code_context, fenced, run_code
from .op_support import ScriptedLLM, assert_recorded, index_of

SOLVE = "def solve(n):\n    return sum(range(n))\n"
NEW = "def solve(n):\n    return n * (n - 1) // 2\n"
MARKED = ("import math\n# EVOLVE-BLOCK-START\ndef solve(n):\n    return n\n# EVOLVE-BLOCK-END\n"
          "print(solve(3))\n")


def rewrite(answers, tree, *, evolve_paths=("solve.py",), **kw):
    llm = ScriptedLLM(answers)
    return run_code(FullRewrite(), code_context({1: tree}, llm, evolve_paths=evolve_paths,
                                                **kw)), llm


def rewrite_invalid(answer: str, tree=None) -> InvalidChild:
    llm = ScriptedLLM([answer])
    with pytest.raises(InvalidChild) as info:
        run_code(FullRewrite(repairs=0), code_context({1: tree or {"solve.py": SOLVE}}, llm))
    assert_recorded(info.value.exchanges, llm)
    assert info.value.exchanges[-1]["rejected"] == info.value.reason
    return info.value


# -- full rewrite -------------------------------------------------------------------------------
def test_full_rewrite_replaces_the_file_with_the_answers_code() -> None:
    tree = {"solve.py": SOLVE, "data.txt": "1 2 3\n"}
    m, llm = rewrite([f"Here is a faster version:\n{fenced(NEW)}\nIt uses Gauss's formula."],
                     tree)
    assert m.files == {"solve.py": NEW, "data.txt": "1 2 3\n"}
    assert m.mutation_prompt == MP and m.extra_parents == ()
    assert m.message == "full_rewrite: rewrote solve.py (2 -> 2 lines)"
    [call] = llm.calls
    assert call["messages"][0]["content"] == CODE_SYSTEM_PROMPT
    request = call["messages"][1]["content"]
    assert request.startswith(MP) and PROBLEM in request
    assert f"### solve.py\n```python\n{SOLVE}```" in request and "### data.txt" in request
    assert "complete new content of solve.py in one ```python code block" in request
    assert_recorded(m, llm)


def test_full_rewrite_takes_the_largest_fenced_block() -> None:
    small, end = fenced("x = 1\n"), fenced("# end\n", "")
    m, _ = rewrite([f"{small}\n{fenced(NEW)}\n{end}"], {"solve.py": SOLVE})
    assert m.files["solve.py"] == NEW


def test_full_rewrite_picks_one_evolvable_file_by_the_rng() -> None:
    tree = {"a.py": "A = 1\n", "b.py": "B = 1\n", "c.py": "C = 1\n"}

    def answer(messages, seed):
        request = messages[-1]["content"]
        path = request.split("complete new content of ", 1)[1].split(" ", 1)[0]
        return fenced(f"{path[0].upper()} = 2\n")

    chosen = set()
    for seed in range(10):
        m, _ = rewrite([answer], tree, evolve_paths=("a.py", "b.py"), seed=seed)
        [path] = [p for p in tree if m.files[p] != tree[p]]
        chosen.add(path)
        again, _ = rewrite([answer], tree, evolve_paths=("a.py", "b.py"), seed=seed)
        assert again == m
    assert chosen == {"a.py", "b.py"}


def test_full_rewrite_keeps_marked_files_outside_their_regions() -> None:
    inside = MARKED.replace("    return n\n", "    return n * n\n")
    m, _ = rewrite([fenced(inside)], {"solve.py": MARKED})
    assert m.files["solve.py"] == inside
    exc = rewrite_invalid(fenced(inside.replace("print(solve(3))", "print(solve(4))")),
                          {"solve.py": MARKED})
    assert exc.reason == "the rewrite changes solve.py outside its EVOLVE-BLOCK regions (line 6)"
    exc = rewrite_invalid(fenced("def solve(n):\n    return n * n\n"), {"solve.py": MARKED})
    assert exc.reason == "the rewrite changes the EVOLVE-BLOCK markers of solve.py"


@pytest.mark.parametrize("answer,reason", [
    ("def solve(n): return 0", "the answer holds no fenced code block"),
    ("```python\ndef solve(n):\n",
     "the code block is not closed (the answer may have been cut off)"),
    ("```python\n```", "the code block is empty"),
    (fenced(SOLVE), "the rewrite leaves every file unchanged"),
    (fenced("def solve(n):\n    return (n\n"),
     "syntax error in solve.py line 2: '(' was never closed"),
])
def test_full_rewrite_invalid_children(answer: str, reason: str) -> None:
    assert rewrite_invalid(answer).reason == reason


# -- merge --------------------------------------------------------------------------------------
BASE = "def solve():\n    a = 1\n    b = 2\n    c = 3\n    return a + b + c\n"
OURS = BASE.replace("a = 1", "a = 10")
THEIRS = BASE.replace("c = 3", "c = 30")
CLASH = BASE.replace("a = 1", "a = 20")


def merge_ctx(parent_tree, donor_tree, answers=(), *, base=BASE, view=None, seed=0,
              evolve_paths=("solve.py",), extra=None):
    trees = {1: parent_tree, 2: donor_tree, **(extra or {})}
    base_tree = None if base is None else {**parent_tree, "solve.py": base}
    llm = ScriptedLLM(list(answers))
    ctx = code_context(trees, llm, view=view, seed=seed, evolve_paths=evolve_paths,
                       bases={(1, cid): base_tree for cid in trees})
    return ctx, llm


def merge_invalid(*args, operator=None, **kw) -> tuple[InvalidChild, ScriptedLLM]:
    ctx, llm = merge_ctx(*args, **kw)
    with pytest.raises(InvalidChild) as info:
        run_code(operator or Merge(), ctx)
    assert info.value.reason
    assert_recorded(info.value.exchanges, llm)
    return info.value, llm


def test_merge_file_wraps_git_merge_file() -> None:
    assert merge_file(OURS, BASE, THEIRS) == (BASE.replace("a = 1", "a = 10").replace(
        "c = 3", "c = 30"), 0)
    text, conflicts = merge_file(OURS, BASE, CLASH)
    assert conflicts == 1
    assert "<<<<<<< parent\n    a = 10\n=======\n    a = 20\n>>>>>>> donor\n" in text
    text, _ = merge_file(OURS, BASE, CLASH, diff3=True)
    assert "||||||| base\n    a = 1\n=======" in text


def test_a_clean_merge_needs_no_llm() -> None:
    ctx, llm = merge_ctx({"solve.py": OURS, "notes.txt": "mine\n"},
                         {"solve.py": THEIRS, "notes.txt": "theirs\n"})
    m = run_code(Merge(), ctx)
    assert m.files == {"solve.py": OURS.replace("c = 3", "c = 30"), "notes.txt": "mine\n"}
    assert m.extra_parents == (2,) and m.exchanges == () and llm.calls == []
    assert m.mutation_prompt == MP
    assert m.message == "merge: #1 with #2 (solve.py)"


def test_a_file_only_the_donor_changed_is_taken_whole() -> None:
    ctx, _ = merge_ctx({"solve.py": OURS, "util.py": "U = 1\n"},
                       {"solve.py": THEIRS, "util.py": "U = 2\n"},
                       evolve_paths=("solve.py", "util.py"))
    ctx = ctx.__class__(**{**ctx.__dict__, "merge_base_files": lambda a, b: {
        "solve.py": BASE, "util.py": "U = 1\n"}})
    m = run_code(Merge(), ctx)
    assert m.files == {"solve.py": OURS.replace("c = 3", "c = 30"), "util.py": "U = 2\n"}


def test_a_conflict_is_resolved_by_the_llm() -> None:
    resolved = BASE.replace("a = 1", "a = 15")
    ctx, llm = merge_ctx({"solve.py": OURS}, {"solve.py": CLASH},
                         [f"Resolved:\n{fenced(resolved)}"])
    m = run_code(Merge(), ctx)
    assert m.files == {"solve.py": resolved} and m.extra_parents == (2,)
    assert m.message == "merge: #1 with #2 (solve.py, 1 conflicted file resolved by the LLM)"
    [call] = llm.calls
    assert call["messages"][0]["content"] == CODE_SYSTEM_PROMPT
    request = call["messages"][1]["content"]
    assert "<<<<<<< parent\n    a = 10\n=======\n    a = 20\n>>>>>>> donor" in request
    assert PROBLEM in request and "whole resolved file" in request
    assert_recorded(m, llm)


@pytest.mark.parametrize("answer,reason", [
    (fenced("def solve():\n<<<<<<< parent\n    a = 10\n=======\n    a = 20\n>>>>>>> donor\n"),
     "the resolution of solve.py still holds a conflict marker (line 2)"),
    ("Keep both.", "the resolution of solve.py: the answer holds no fenced code block"),
    (fenced("def solve(:\n    return 1\n"), "syntax error in solve.py line 1: invalid syntax"),
    (fenced(OURS), "the merge with #2 leaves every file unchanged"),
])
def test_an_unresolved_conflict_is_invalid(answer: str, reason: str) -> None:
    exc, llm = merge_invalid({"solve.py": OURS}, {"solve.py": CLASH}, [answer])
    assert exc.reason == reason
    assert len(exc.exchanges) == 1 and exc.exchanges[0]["rejected"] == reason


def test_conflicts_are_invalid_when_resolution_is_off_or_too_many() -> None:
    exc, llm = merge_invalid({"solve.py": OURS}, {"solve.py": CLASH},
                             operator=Merge(resolve_conflicts=False))
    assert exc.reason == "the merge with #2 has conflicts in solve.py (resolve_conflicts is off)"
    assert llm.calls == []
    trees = ({"solve.py": OURS, "b.py": OURS}, {"solve.py": CLASH, "b.py": CLASH})
    ctx, llm = merge_ctx(*trees, evolve_paths=("solve.py", "b.py"))
    ctx = ctx.__class__(**{**ctx.__dict__, "merge_base_files": lambda a, b: {
        "solve.py": BASE, "b.py": BASE}})
    with pytest.raises(InvalidChild) as info:
        run_code(Merge(max_conflicted_files=1), ctx)
    assert info.value.reason == ("the merge with #2 has conflicts in 2 files (at most 1 are "
                                 "resolved)")


def test_a_merge_without_new_changes_is_invalid() -> None:
    exc, _ = merge_invalid({"solve.py": OURS}, {"solve.py": BASE})
    assert exc.reason == "the merge with #2 leaves every file unchanged"


def test_a_fast_forward_merge_is_invalid() -> None:
    exc, _ = merge_invalid({"solve.py": OURS}, {"solve.py": THEIRS}, base=None)
    assert exc.reason == ("the merge with #2 is a copy of the donor (the parent holds nothing the "
                          "donor lacks)")


def test_merge_changes_only_evolvable_files() -> None:
    ctx, _ = merge_ctx({"solve.py": OURS, "run.py": "x = 1\n"},
                       {"solve.py": THEIRS, "run.py": "x = 2\n"})
    m = run_code(Merge(), ctx)
    assert m.files["run.py"] == "x = 1\n"


def test_a_marked_region_merges_and_frozen_text_is_checked() -> None:
    base = MARKED.replace("    return n\n", "    m = n\n    k = 1\n    return m\n")
    ours = base.replace("m = n\n", "m = n * 2\n")
    theirs = base.replace("return m\n", "return m + k\n")
    ctx, _ = merge_ctx({"solve.py": ours}, {"solve.py": theirs}, base=base)
    assert run_code(Merge(), ctx).files["solve.py"] == ours.replace("return m\n",
                                                                    "return m + k\n")
    # the donor changed frozen text: the merge takes it, and the child is invalid
    theirs = base.replace("print(solve(3))", "print(solve(9))")
    ours = base.replace("m = n\n", "m = n * 2\n")
    exc, _ = merge_invalid({"solve.py": ours}, {"solve.py": theirs}, base=base)
    assert exc.reason == ("the merge with #2 changes solve.py outside its EVOLVE-BLOCK regions "
                          "(line 8)")


def test_donors_are_other_members_drawn_by_fitness() -> None:
    view = index_of(code_candidate(1, fitness=0.9), code_candidate(2, fitness=0.0),
                    code_candidate(3, fitness=0.8), code_candidate(4, commit=f"{1:040x}",
                                                                   fitness=0.9),
                    code_candidate(5, fitness=None))
    trees = {cid: {"solve.py": THEIRS} for cid in (2, 3, 4, 5)}
    for seed in range(8):
        ctx, _ = merge_ctx({"solve.py": OURS}, {"solve.py": THEIRS}, view=view, seed=seed,
                           extra=trees)
        # 2 has no fitness weight, 4 shares the parent's commit, 5 is not evaluated
        assert run_code(Merge(), ctx).extra_parents == (3,)


def test_a_lone_parent_cannot_merge() -> None:
    view = index_of(code_candidate(1), code_candidate(2, commit=f"{1:040x}"))
    exc, llm = merge_invalid({"solve.py": OURS}, {"solve.py": THEIRS}, view=view)
    assert exc.reason == ("merge: no other population member (with a different commit) to merge "
                          "with")
    assert exc.exchanges == () and llm.calls == []


def test_merge_is_deterministic() -> None:
    view = index_of(*(code_candidate(cid, fitness=0.1 * cid) for cid in range(1, 6)))
    trees = {cid: {"solve.py": BASE.replace("c = 3", f"c = {cid * 10}")} for cid in range(2, 6)}

    def once(seed: int):
        ctx, llm = merge_ctx({"solve.py": OURS}, trees[2], view=view, seed=seed, extra=trees)
        return run_code(Merge(), ctx)

    donors = [once(seed).extra_parents for seed in range(20)]
    assert donors == [once(seed).extra_parents for seed in range(20)]
    assert len(set(donors)) > 1
