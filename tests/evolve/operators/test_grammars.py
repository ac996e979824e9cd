"""The answer grammars: each accepts every valid answer and refuses invalid ones, over
generated parents. The SEARCH text of a constrained diff can only be consecutive whole lines
of an editable region that occur once, so every accepted block applies inside the markers;
a constrained rewrite keeps the frozen text; a prompt answer is one instruction."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from evolve._grammar import Chars, Grammar, GrammarError, Lit, Ref, Repeat, alt, opt, seq
from evolve.code.operators._grammars import diff_grammar, editable_regions, rewrite_grammar
from evolve.code.operators._patch import (
    apply_blocks,
    code_from_answer,
    marker_violation,
    parse_blocks,
)
from evolve.operators._base import instruction_grammar

WORDS = ["x", "y", "total", "return x", "pass", "", "# note", "y = x + 1", "for i in r:",
         "    x += 1", "print(x)", 'a = "q\\"s"', "[1, 2]", "-1", "{}"]
line = st.sampled_from(WORDS)
#: a replacement line: never one the block parser could read as a marker
new_line = st.text(st.characters(blacklist_characters="\n\r<=>", codec="utf-8"), max_size=30)


@st.composite
def parents(draw: st.DrawFn) -> str:
    """A file of a few lines, with EVOLVE-BLOCK regions half of the time."""
    head = draw(st.lists(line, max_size=4))
    if not draw(st.booleans()):
        body = draw(st.lists(line, min_size=1, max_size=12))
        return "".join(f"{ln}\n" for ln in head + body)
    parts = list(head)
    for _ in range(draw(st.integers(1, 2))):
        parts += ["# EVOLVE-BLOCK-START", *draw(st.lists(line, min_size=1, max_size=8)),
                  "# EVOLVE-BLOCK-END", *draw(st.lists(line, max_size=3))]
    return "".join(f"{ln}\n" for ln in parts)


def unique_spans(text: str) -> list[tuple[int, int]]:
    """Every (start, end) run of whole lines inside one region that occurs once in the file."""
    lines = text.splitlines(keepends=True)
    spans = []
    for first, end in editable_regions(text):
        for i in range(first, end):
            for j in range(i + 1, end + 1):
                run = lines[i:j]
                hits = sum(lines[k:k + len(run)] == run for k in range(len(lines)))
                if hits == 1:
                    spans.append((i, j))
    return spans


def block(path: str, search: str, replace: list[str]) -> str:
    return (f"{path}\n<<<<<<< SEARCH\n{search}=======\n"
            + "".join(f"{r}\n" for r in replace) + ">>>>>>> REPLACE\n")


# -- the grammar module ------------------------------------------------------------------------
def test_gbnf_escapes_literals_and_classes_and_brackets_what_it_repeats() -> None:
    grammar = Grammar({"root": seq(Lit('say "hi"\\\n'), Repeat(Chars("]-^\n"), 1, 3),
                                   Repeat(alt(Lit("a"), Ref("b"))), opt(seq(Lit("c"), Lit("d")))),
                       "b": Lit("b")})
    assert grammar.gbnf() == ('root ::= "say \\"hi\\"\\\\\\n" [\\]\\-\\^\\n]{1,3} ("a" | b)* '
                              '("c" "d")?\nb ::= "b"\n')


def test_a_grammar_must_define_what_it_uses_and_name_rules_plainly() -> None:
    with pytest.raises(GrammarError, match="'missing' is used but not defined"):
        Grammar({"root": Ref("missing")})
    with pytest.raises(GrammarError, match="rule name 'a_b'"):
        Grammar({"root": Lit("x"), "a_b": Lit("y")})
    with pytest.raises(GrammarError, match="'root'"):
        Grammar({"start": Lit("x")})


@given(st.integers(0, 4), st.integers(0, 4) | st.none(), st.integers(0, 8))
def test_a_repetition_matches_its_bounds_exactly(low: int, high: int | None, n: int) -> None:
    assume(high is None or high >= low)
    grammar = Grammar({"root": seq(Lit("<"), Repeat(alt(Lit("ab"), Lit("a")), low, high),
                                   Lit(">"))})
    fits = n >= low and (high is None or n <= high)
    assert grammar.matches("<" + "ab" * n + ">") is fits
    assert grammar.matches("<" + "a" * n + ">") is fits


# -- diff_edit ---------------------------------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(parents(), st.data())
def test_every_unique_run_of_editable_lines_is_a_search_that_applies_inside_the_markers(
        text: str, data: st.DataObject) -> None:
    spans = unique_spans(text)
    assume(spans)
    i, j = data.draw(st.sampled_from(spans))
    lines = text.splitlines(keepends=True)
    replace = data.draw(st.lists(new_line, max_size=3))
    answer = block("solve.py", "".join(lines[i:j]), replace)
    grammar = diff_grammar({"solve.py": text}, ["solve.py"], max_blocks=4)
    assert grammar.matches(answer)
    child = apply_blocks({"solve.py": text}, parse_blocks(answer), ["solve.py"],
                         tolerant=False)["solve.py"]
    assert marker_violation("solve.py", text, child) is None


@settings(max_examples=150, deadline=None)
@given(parents(), st.data())
def test_a_search_the_grammar_accepts_is_a_unique_run_of_editable_lines(
        text: str, data: st.DataObject) -> None:
    """Any run of whole lines of the file (inside or outside the regions, unique or not)
    is accepted exactly when it is a unique run inside one region."""
    lines = text.splitlines(keepends=True)
    i = data.draw(st.integers(0, len(lines) - 1))
    j = data.draw(st.integers(i + 1, len(lines)))
    answer = block("solve.py", "".join(lines[i:j]), ["z = 0"])
    try:
        grammar = diff_grammar({"solve.py": text}, ["solve.py"], max_blocks=4)
    except ValueError:
        assert not unique_spans(text)
        return
    assert grammar.matches(answer) is ((i, j) in unique_spans(text))


@settings(max_examples=80, deadline=None)
@given(parents(), st.data())
def test_searches_that_skip_a_line_or_change_one_are_refused(text: str,
                                                              data: st.DataObject) -> None:
    spans = [(i, j) for i, j in unique_spans(text) if j - i >= 2]
    assume(spans)
    i, j = data.draw(st.sampled_from(spans))
    lines = text.splitlines(keepends=True)
    run = lines[i:j]
    k = data.draw(st.integers(0, len(run) - 1))
    changed = run[:k] + [run[k].rstrip("\n") + " # changed\n"] + run[k + 1:]
    skipped = run[:k] + run[k + 1:]
    grammar = diff_grammar({"solve.py": text}, ["solve.py"], max_blocks=4)
    assert not grammar.matches(block("solve.py", "".join(changed), []))
    searchable = {"".join(lines[a:b]) for a, b in unique_spans(text)}
    if "".join(skipped) not in searchable:  # the shorter text may be a unique run elsewhere
        assert not grammar.matches(block("solve.py", "".join(skipped), []))


def test_blocks_name_an_editable_file_come_one_to_max_and_carry_no_prose() -> None:
    files = {"a.py": "x = 1\ny = 2\n", "b.py": "z = 3\n", "c.py": "w = 4\n"}
    grammar = diff_grammar(files, ["a.py", "b.py"], max_blocks=2)
    one, two = block("a.py", "x = 1\n", ["x = 5"]), block("b.py", "z = 3\n", [""])
    assert grammar.matches(one) and grammar.matches(one + "\n" + two)
    assert not grammar.matches(one + two + one)  # three blocks: more than max_blocks
    assert not grammar.matches("Here is the edit:\n" + one)
    assert not grammar.matches(block("c.py", "w = 4\n", []))  # a read-only file
    assert not grammar.matches(block("a.py", "x = 1\n", ["<<<<<<< SEARCH"]))
    assert not grammar.matches(block("a.py", "", ["x = 5"]))  # an empty SEARCH


def test_a_file_with_no_unique_editable_line_gives_no_diff_grammar() -> None:
    with pytest.raises(ValueError, match="no editable line"):
        diff_grammar({"a.py": "x\n# EVOLVE-BLOCK-START\nx\n# EVOLVE-BLOCK-END\n"}, ["a.py"],
                     max_blocks=1)


# -- full_rewrite ------------------------------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(parents(), st.data())
def test_a_rewrite_keeping_the_frozen_text_is_accepted_and_one_changing_it_is_not(
        text: str, data: st.DataObject) -> None:
    lines = text.splitlines(keepends=True)
    regions = editable_regions(text)
    has_markers = "EVOLVE-BLOCK" in text
    assume(regions)
    new = list(lines)
    for first, end in reversed(regions):  # every region rewritten, frozen text kept
        new[first:end] = [f"{ln}\n" for ln in data.draw(st.lists(
            new_line.filter(lambda s: not s.startswith("`")), min_size=1, max_size=4))]
    assume(has_markers or "".join(new).strip())  # a whole new file is not an empty one
    answer = "```python\n" + "".join(new) + "```"
    grammar = rewrite_grammar("solve.py", text, "python")
    assert grammar.matches(answer)
    assert marker_violation("solve.py", text, code_from_answer(answer)) is None
    if has_markers:
        frozen = [k for k in range(len(lines))
                  if not any(first <= k < end for first, end in regions)]
        k = data.draw(st.sampled_from(frozen))
        broken = lines[:k] + [lines[k].rstrip("\n") + "!\n"] + lines[k + 1:]
        assert not grammar.matches("```python\n" + "".join(broken) + "```")
    assert not grammar.matches("Sure:\n" + answer)
    assert has_markers or not grammar.matches("```python\n\n \n```")
    assert not grammar.matches(answer + "\nDone.")


# -- prompts -----------------------------------------------------------------------------------
@given(st.text(st.characters(blacklist_characters="\n\r", codec="utf-8"), max_size=60))
def test_an_instruction_is_one_line_of_bounded_length_with_no_mark_before_it(text: str) -> None:
    grammar = instruction_grammar(40)
    ok = 1 <= len(text) <= 40 and text[0] not in " \t\"'`*#>-"
    assert grammar.matches(text) is ok
    assert not grammar.matches(text + "\nmore")


def test_a_replace_text_is_bounded_so_a_looping_model_must_close_its_block() -> None:
    text = "a = 1\nb = 2\nc = 3\n"  # one region of 3 lines: at most 2 * 3 + 4 REPLACE lines
    grammar = diff_grammar({"s.py": text}, ["s.py"], max_blocks=1)
    assert grammar.matches(block("s.py", "a = 1\n", ["x = 0"] * 10))
    assert not grammar.matches(block("s.py", "a = 1\n", ["x = 0"] * 11))


def test_a_replace_text_is_bounded_in_lines_and_in_line_length() -> None:
    """At most twice the longest region's lines plus four, each at most twice the longest
    region line (at least 120 characters): a model that starts repeating itself must close
    the block before max_tokens."""
    wide = "w = [" + ", ".join(["1"] * 40) + "]\n"  # 125 characters with its newline
    text = "x = 1\n" + wide + "y = 2\n"
    grammar = diff_grammar({"a.py": text}, ["a.py"], max_blocks=1)
    ok = 2 * len(wide.rstrip("\n"))
    assert grammar.matches(block("a.py", "x = 1\n", ["z" * ok] * 10))
    assert not grammar.matches(block("a.py", "x = 1\n", ["z" * (ok + 1)]))
    assert not grammar.matches(block("a.py", "x = 1\n", ["z"] * 11))
    short = diff_grammar({"a.py": "x = 1\n"}, ["a.py"], max_blocks=1)
    assert short.matches(block("a.py", "x = 1\n", ["z" * 120]))
    assert not short.matches(block("a.py", "x = 1\n", ["z" * 121]))
    assert "replace-line ::= " in grammar.gbnf()  # a rule of its own (see _replace_line)
