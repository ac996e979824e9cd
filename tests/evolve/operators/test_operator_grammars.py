"""The answer grammars of the remaining operators (issue 14, point 1).

``merge``: over generated parents, donors and bases merged by git, the resolution grammar
accepts every valid resolution (the parent's file, the donor's, the merge with git taking
either side of every conflict or both, any edit inside the EVOLVE-BLOCK regions) and
refuses the conflicted text, any conflict-marker line, an END marker inside a region and
changed frozen text. The requests of ``merge``, ``hyper_diff`` and every prompt operator
(hypermutation and Lamarckian included) and of the initial population carry their
grammar, recorded with the exchange, when constrained, and none with ``constrained:
false``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from evolve.code.operators import DiffEdit, HyperDiff, Merge
from evolve.code.operators._grammars import (
    answer_fence,
    diff_grammar,
    resolution_grammar,
    rewrite_grammar,
)
from evolve.code.operators._merge import merge_file
from evolve.code.operators._patch import (
    code_from_answer,
    conflict_line,
    format_block,
    marker_violation,
)
from evolve.operators import (
    EDA,
    OPERATORS,
    EDARankIndex,
    FirstOrderDirect,
    FirstOrderHyper,
    Lamarckian,
    Lineage,
    PromptOperator,
    ZeroOrderDirect,
    ZeroOrderHyper,
    initial_population,
)
from evolve.operators._base import instruction_grammar

from .code_support import code_context, fenced, run_code
from .op_support import ScriptedLLM, assert_recorded, candidate, context, index_of, run

START, END = "# EVOLVE-BLOCK-START", "# EVOLVE-BLOCK-END"
#: lines of an editable region that a resolution may hold: none is a conflict marker, though
#: some look like one (fewer or more than seven marks, another character after seven, indented)
CODE = ["x = 1", "y = x + 1", "    return x", "    total += i", "", "# note", "for i in r:",
        "pass", "a = b << 2", "\tz = 0", "   ", "s = '```'", "<<<<<<", "<<<<<<<<", "=======x",
        "========", ">>>>>>>y", "    >>>>>>> indented", "|||||| z", "<<<<<<<\tx", "==== =="]
#: frozen lines (outside the regions), which the grammar takes literally, markers or not
FROZEN = ["import math", "", "def run():", "    return solve(3)", "=======", "```", "N = 26"]
#: lines that git writes for a conflict
MARKERS = ["<<<<<<< parent", "=======", ">>>>>>> donor", "||||||| base", "<<<<<<<", ">>>>>>>",
           "======= x", "|||||||"]

code_lines = st.lists(st.sampled_from(CODE), max_size=6)


@dataclass(frozen=True)
class Program:
    """A file: frozen parts around EVOLVE-BLOCK regions (``marked``), or one whole region."""

    frozen: tuple[tuple[str, ...], ...]
    marked: bool

    def text(self, regions: list[list[str]]) -> str:
        if not self.marked:
            return "".join(f"{ln}\n" for ln in regions[0])
        lines = list(self.frozen[0])
        for region, after in zip(regions, self.frozen[1:], strict=True):
            lines += [START, *region, END, *after]
        return "".join(f"{ln}\n" for ln in lines)

    @property
    def n_regions(self) -> int:
        return len(self.frozen) - 1 if self.marked else 1


@st.composite
def programs(draw: st.DrawFn) -> Program:
    if not draw(st.booleans()):
        return Program(((),), marked=False)
    n = draw(st.integers(1, 3))
    frozen = draw(st.lists(st.lists(st.sampled_from(FROZEN), max_size=3).map(tuple),
                           min_size=n + 1, max_size=n + 1))
    return Program(tuple(frozen), marked=True)


def filled(text: str) -> bool:
    """A whole file (no markers) must hold a line with something on it."""
    return any(ln.strip(" \t") for ln in text.split("\n"))


def within(parent: str, text: str) -> str:
    """``text`` in the fence of a resolution of ``parent`` (longer than its backtick runs)."""
    fence = answer_fence(parent)
    return f"{fence}python\n{text}{fence}"


def git_resolved(parent: str, base: str, donor: str, side: str) -> str:
    """The merge with every conflict resolved by git itself: ``ours`` (the parent's side),
    ``theirs`` (the donor's) or ``union`` (both)."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, text in (("parent", parent), ("base", base), ("donor", donor)):
            path = Path(tmp) / name
            path.write_text(text, encoding="utf-8")
            paths.append(str(path))
        env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
        return subprocess.run(["git", "merge-file", "-p", f"--{side}", *paths],
                              capture_output=True, check=True, env=env, text=True).stdout


# -- merge: the resolution grammar -------------------------------------------------------------
@settings(max_examples=120, deadline=None)
@given(programs(), st.data())
def test_the_resolution_grammar_accepts_every_valid_resolution_of_a_real_merge(
        program: Program, data: st.DataObject) -> None:
    def version() -> str:
        return program.text([data.draw(code_lines) for _ in range(program.n_regions)])

    parent, base, donor = version(), version(), version()
    assume(program.marked or (filled(parent) and filled(donor)))
    grammar = resolution_grammar("solve.py", parent, "python")
    assert grammar.matches(within(parent, parent)) and grammar.matches(within(parent, donor))
    merged, conflicts = merge_file(parent, base, donor, diff3=data.draw(st.booleans()))
    if conflicts:  # the conflicted text itself is no resolution
        assert not grammar.matches(within(parent, merged))
    resolution = git_resolved(parent, base, donor,
                              data.draw(st.sampled_from(["ours", "theirs", "union"])))
    assert conflict_line(resolution) is None
    # git may align repeated marker lines differently (a region's markers matched with
    # another's): such a merge changes the markers, is invalid, and needs no grammar
    if marker_violation("solve.py", parent, resolution) is None and (
            program.marked or filled(resolution)):
        assert grammar.matches(within(parent, resolution))
    edited = version()  # any edit inside the regions
    assume(program.marked or filled(edited))
    assert grammar.matches(within(parent, edited))
    assert code_from_answer(within(parent, edited)) == edited


@settings(max_examples=120, deadline=None)
@given(programs(), st.data())
def test_the_resolution_grammar_refuses_markers_changed_frozen_text_and_prose(
        program: Program, data: st.DataObject) -> None:
    regions = [data.draw(code_lines) for _ in range(program.n_regions)]
    parent = program.text(regions)
    assume(program.marked or filled(parent))
    grammar = resolution_grammar("solve.py", parent, "python")
    answer = within(parent, parent)
    assert grammar.matches(answer)
    assert not grammar.matches("Here is the resolved file:\n" + answer)
    assert not grammar.matches(answer + "\nI kept both changes.")
    # a conflict-marker line anywhere in a region
    k = data.draw(st.integers(0, program.n_regions - 1))
    region = list(regions[k])
    region.insert(data.draw(st.integers(0, len(region))), data.draw(st.sampled_from(MARKERS)))
    marked = program.text(regions[:k] + [region] + regions[k + 1:])
    assert conflict_line(marked) is not None or "\n=======" in "\n" + marked
    assert not grammar.matches(within(parent, marked))
    if program.marked:  # a frozen line (a marker too) changed or dropped
        lines = parent.splitlines(keepends=True)
        frozen = [i for i, ln in enumerate(lines)
                  if ln.rstrip("\n") in (START, END) or not _inside(lines, i)]
        i = data.draw(st.sampled_from(frozen))
        for broken in (lines[:i] + [lines[i].rstrip("\n") + " !\n"] + lines[i + 1:],
                       lines[:i] + lines[i + 1:]):
            assert not grammar.matches(within(parent, "".join(broken)))
    else:
        assert not grammar.matches(within(parent, "\n \n"))  # an empty file


def _inside(lines: list[str], i: int) -> bool:
    """Whether line ``i`` is inside an EVOLVE-BLOCK region (between a START and an END)."""
    inside = False
    for line in lines[:i]:
        if line.rstrip("\n") == START:
            inside = True
        elif line.rstrip("\n") == END:
            inside = False
    return inside


@given(st.text(st.sampled_from("<=>|` xa\t"), max_size=10), st.booleans())
def test_a_line_is_refused_exactly_when_git_would_read_it_as_a_conflict_marker(
        line: str, marked: bool) -> None:
    parent = f"import math\n{START}\nx = 1\n{END}\n" if marked else "x = 1\n"
    grammar = resolution_grammar("solve.py", parent, "python")
    answer = within(parent, parent.replace("x = 1\n", f"x = 1\n{line}\n"))
    is_marker = any(line.startswith(c * 7) and line[7:8] in ("", " ") for c in "<=>|")
    assert grammar.matches(answer) is not (is_marker or line.startswith("`"))
    if conflict_line(line) is not None:
        assert is_marker


PIECES = ["E", "V", "EV", "EVOLVE", "-", "BLOCK", "EVOLVE-BLOCK-", "START", "END", "S", "T",
          "x", " ", "#", "EE", "EVOLVE-BLOCK-EN", "D", "STAR"]


@given(st.lists(st.sampled_from(PIECES), max_size=8).map("".join),
       st.sampled_from([rewrite_grammar, resolution_grammar]))
def test_a_region_line_holding_the_end_marker_is_refused(line: str, build) -> None:
    """It ends the region early (the child is invalid), and a model that copies the END
    marker as a region line could write on inside the region until max_tokens; a START
    inside a region is no marker there, and is accepted."""
    parent = f"import math\n{START}\nx = 1\n{END}\nrun()\n"
    grammar = build("solve.py", parent, "python")
    answer = within(parent, parent.replace("x = 1\n", f"x = 1\n{line}\n"))
    holds = "EVOLVE-BLOCK-END" in line
    assert grammar.matches(answer) is not holds
    assert (marker_violation("solve.py", parent, code_from_answer(answer)) is None) is not holds


def test_an_emptied_region_is_a_resolution_and_an_empty_one_may_be_filled() -> None:
    parent = f"import math\n{START}\nx = 1\n{END}\n{START}\n{END}\nrun()\n"
    grammar = resolution_grammar("solve.py", parent, "python")
    assert grammar.matches(fenced(parent.replace("x = 1\n", "")))
    assert grammar.matches(fenced(parent.replace(f"{START}\n{END}\nrun",
                                                 f"{START}\ny = 2\n{END}\nrun")))
    # a rewrite, unlike a resolution, must write each region it has
    assert not rewrite_grammar("solve.py", parent, "python").matches(
        fenced(parent.replace("x = 1\n", "")))


def test_a_last_line_without_newline_and_the_language_tag() -> None:
    grammar = resolution_grammar("notes.md", "# EVOLVE-BLOCK-START\nhi\n# EVOLVE-BLOCK-END",
                                 "markdown")
    assert grammar.matches("```markdown\n# EVOLVE-BLOCK-START\nbye\n# EVOLVE-BLOCK-END\n```")
    assert not grammar.matches("```python\n# EVOLVE-BLOCK-START\nbye\n# EVOLVE-BLOCK-END\n```")


# -- merge: the operator -----------------------------------------------------------------------
MARKED_BASE = ("import math\n# EVOLVE-BLOCK-START\ndef solve(n):\n    return n\n"
               "# EVOLVE-BLOCK-END\nprint(solve(3))\n")
MARKED_OURS = MARKED_BASE.replace("return n\n", "return n * 2\n")
MARKED_THEIRS = MARKED_BASE.replace("return n\n", "return n + 1\n")


def merge_run(operator: Merge, answer: str):
    llm = ScriptedLLM([answer])
    ctx = code_context({1: {"solve.py": MARKED_OURS}, 2: {"solve.py": MARKED_THEIRS}}, llm,
                       bases={(1, 2): {"solve.py": MARKED_BASE}})
    return run_code(operator, ctx), llm


def test_a_constrained_merge_sends_the_resolution_grammar_of_the_parents_file() -> None:
    resolved = MARKED_BASE.replace("return n\n", "return n * 2 + 1\n")
    m, llm = merge_run(Merge(), fenced(resolved))
    assert m.files["solve.py"] == resolved
    expected = resolution_grammar("solve.py", MARKED_OURS, "python")
    [call] = llm.calls
    assert call["grammar"] == expected.gbnf()
    assert m.exchanges[0]["params"]["grammar"] == expected.gbnf()
    assert expected.matches(fenced(resolved))
    assert_recorded(m, llm)
    m, llm = merge_run(Merge(constrained=False), fenced(resolved))
    assert llm.calls[0]["grammar"] is None and "grammar" not in m.exchanges[0]["params"]
    assert m.files["solve.py"] == resolved
    assert_recorded(m, llm)


# -- hyper_diff --------------------------------------------------------------------------------
SOLVE = "def solve(n):\n    total = 0\n    for i in range(n):\n        total += i\n" \
        "    return total\n"
NEW_MP = "Look for an off-by-one error in the loop bounds and fix it."
GOOD = format_block(None, "    for i in range(n):\n", "    for i in range(n + 1):\n")


@pytest.mark.parametrize("zero_order", [0.0, 1.0])
def test_hyper_diff_constrains_its_mutation_prompt_and_its_diff(zero_order: float) -> None:
    llm = ScriptedLLM([NEW_MP, GOOD])
    operator = HyperDiff(zero_order_probability=zero_order, max_mutation_chars=300)
    m = run_code(operator, code_context({1: {"solve.py": SOLVE}}, llm))
    first, second = (c["grammar"] for c in llm.calls)
    assert first == instruction_grammar(300).gbnf()
    assert second == diff_grammar({"solve.py": SOLVE}, ["solve.py"], 16).gbnf()
    assert [ex["params"]["grammar"] for ex in m.exchanges] == [first, second]
    assert m.mutation_prompt == NEW_MP
    assert_recorded(m, llm)
    llm = ScriptedLLM([NEW_MP, GOOD])
    m = run_code(HyperDiff(zero_order_probability=zero_order, constrained=False),
                 code_context({1: {"solve.py": SOLVE}}, llm))
    assert [c["grammar"] for c in llm.calls] == [None, None]
    assert all("grammar" not in ex["params"] for ex in m.exchanges)


def test_diff_edit_alone_asks_once_with_the_diff_grammar() -> None:
    llm = ScriptedLLM([GOOD])
    run_code(DiffEdit(), code_context({1: {"solve.py": SOLVE}}, llm))
    [call] = llm.calls
    assert call["grammar"] == diff_grammar({"solve.py": SOLVE}, ["solve.py"], 16).gbnf()


# -- prompt operators --------------------------------------------------------------------------
def answers(n: int):
    """Distinct usable instructions, one per call."""
    return [lambda messages, seed, i=i: f"Add the numbers column by column, way {i}."
            for i in range(n)]


def prompt_context(llm: ScriptedLLM):
    view = index_of(candidate(1, ("Solve it.",), mutation_prompt="Make it shorter.",
                              fitness=0.6),
                    candidate(2, ("Work it out slowly.",), fitness=0.4, parents=(1,)),
                    candidate(3, ("Think, then answer.",), fitness=0.2, parents=(1,)))
    return context(view, 1, llm, correct_workings=[("What is 2 + 3?", "2 + 3 = 5.")])


@pytest.mark.parametrize("operator,limits", [
    (ZeroOrderHyper(max_mutation_chars=300, max_chars=600), [300, 600]),
    (FirstOrderHyper(max_mutation_chars=300, max_chars=600), [300, 600]),
    (Lamarckian(max_chars=250), [250]),
])
def test_hypermutation_and_lamarckian_answers_are_constrained(operator: PromptOperator,
                                                              limits: list[int]) -> None:
    llm = ScriptedLLM(answers(len(limits)))
    m = run(operator, prompt_context(llm))
    expected = [instruction_grammar(n).gbnf() for n in limits]
    assert [c["grammar"] for c in llm.calls] == expected
    assert [ex["params"]["grammar"] for ex in m.exchanges] == expected
    assert_recorded(m, llm)


@pytest.mark.parametrize("cls", [ZeroOrderDirect, FirstOrderDirect, EDA, EDARankIndex, Lineage,
                                 ZeroOrderHyper, FirstOrderHyper, Lamarckian])
def test_every_prompt_operator_constrains_each_answer_unless_told_not_to(cls) -> None:
    llm = ScriptedLLM(answers(2))
    m = run(cls(), prompt_context(llm))
    assert m.exchanges and all(c["grammar"] for c in llm.calls)
    assert all(ex["params"]["grammar"] == c["grammar"]
               for ex, c in zip(m.exchanges, llm.calls, strict=True))
    llm = ScriptedLLM(answers(2))
    m = run(cls(constrained=False), prompt_context(llm))
    assert m.exchanges and all(c["grammar"] is None for c in llm.calls)
    assert all("grammar" not in ex["params"] for ex in m.exchanges)


def test_the_prompt_operators_that_ask_the_llm_all_take_constrained() -> None:
    asking = {name for name, cls in OPERATORS.items() if issubclass(cls, PromptOperator)}
    assert asking == {"zero_order_direct", "first_order_direct", "eda", "eda_rank_index",
                      "lineage", "zero_order_hyper", "first_order_hyper", "lamarckian"}


@pytest.mark.parametrize("constrained", [True, False])
def test_the_initial_population_constrains_its_task_prompts(constrained: bool) -> None:
    llm = ScriptedLLM(answers(2))
    units = asyncio.run(initial_population(
        size=2, problem="Add two numbers.", thinking_styles=("Work step by step.",),
        mutation_prompts=("Make it shorter.",), llm=llm, rng=np.random.default_rng(0),
        max_chars=120, constrained=constrained))
    grammar = instruction_grammar(120).gbnf() if constrained else None
    assert [c["grammar"] for c in llm.calls] == [grammar, grammar]
    for unit in units:
        assert [ex["params"].get("grammar") for ex in unit.exchanges] == [grammar]
