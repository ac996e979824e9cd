"""The pure functions of the code operators: SEARCH/REPLACE parsing and applying, markers,
syntax checks, fenced code."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from evolve.code.operators._patch import (
    EditBlock,
    PatchError,
    apply_block,
    apply_blocks,
    code_from_answer,
    complete_part,
    conflict_line,
    format_block,
    frozen_parts,
    marker_violation,
    parse_blocks,
    resolve_path,
    syntax_error,
    without_repeats,
)

SRC = "def f(x):\n    y = x + 1\n    return y\n\n\ndef g():\n    return 2\n"


# -- parsing ------------------------------------------------------------------------------------
def test_parse_one_block_with_path() -> None:
    [b] = parse_blocks(format_block("pkg/solve.py", "a\n", "b\nc\n"))
    assert b == EditBlock(1, "pkg/solve.py", "a\n", "b\nc\n")


def test_parse_tolerates_fences_crlf_prose_and_trailing_spaces() -> None:
    answer = ("Sure! Here is the change:\r\n\r\n```python\r\nsolve.py\r\n<<<<<<< SEARCH  \r\n"
              "    y = x + 1\r\n=======   \r\n    y = x + 2\r\n>>>>>>> REPLACE\r\n```\r\n"
              "And a second one in `helper.py`:\r\n```\r\n<<<<<<< SEARCH\r\nold\r\n=======\r\n"
              ">>>>>>> REPLACE\r\n```\r\nDone.")
    a, b = parse_blocks(answer)
    assert a == EditBlock(1, "solve.py", "    y = x + 1\n", "    y = x + 2\n")
    assert b == EditBlock(2, "helper.py", "old\n", "")


@pytest.mark.parametrize("line,path", [
    ("solve.py", "solve.py"), ("**solve.py**", "solve.py"), ("`src/a.py`", "src/a.py"),
    ("File: src/a.py", "src/a.py"), ("### solve.py:", "solve.py"), ("Change it like this:", None),
    ("Edit `a.py` as follows:", "a.py"), ("Makefile", None),
])
def test_path_line_forms(line: str, path: str | None) -> None:
    [b] = parse_blocks(f"{line}\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE")
    assert b.path == path


def test_a_block_without_path_inherits_the_previous_blocks() -> None:
    blocks = parse_blocks("a.py\n" + format_block(None, "1\n", "2\n")
                          + format_block(None, "3\n", "4\n") + format_block("b.py", "5\n", "6\n"))
    assert [b.path for b in blocks] == ["a.py", "a.py", "b.py"]
    assert [b.index for b in blocks] == [1, 2, 3]


def test_sections_wrapped_in_their_own_fences_are_unwrapped() -> None:
    [b] = parse_blocks("<<<<<<< SEARCH\n```python\nx = 1\n```\n=======\n```\nx = 2\n```\n"
                       ">>>>>>> REPLACE")
    assert (b.search, b.replace) == ("x = 1\n", "x = 2\n")


@pytest.mark.parametrize("answer,reason", [
    ("I would change the loop.", "holds no SEARCH/REPLACE block"),
    ("", "holds no SEARCH/REPLACE block"),
    ("<<<<<<< SEARCH\nx\n", "block 1 is not complete (no ======= line; the answer may have"),
    ("<<<<<<< SEARCH\nx\n=======\ny\n", "block 1 is not closed (no >>>>>>> REPLACE line"),
    ("<<<<<<< SEARCH\nx\n>>>>>>> REPLACE\n", "block 1 has no ======= line between"),
    (format_block("a.py", "x\n", "y\n") + "<<<<<<< SEARCH\nx\n=======\n<<<<<<< SEARCH\n",
     "block 2 is not closed by a >>>>>>> REPLACE line"),
])
def test_malformed_answers(answer: str, reason: str) -> None:
    with pytest.raises(PatchError) as info:
        parse_blocks(answer)
    assert reason in info.value.reason


_line = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")),
                max_size=12).filter(lambda s: s.strip(" <>=`~") == s.strip() or not s.strip())
_path = st.from_regex(r"[a-z]{1,8}(/[a-z]{1,8})?\.py", fullmatch=True)


@given(_path, st.lists(_line, min_size=1, max_size=6), st.lists(_line, max_size=6),
       st.booleans(), st.booleans())
def test_format_then_parse_round_trips(path: str, search: list[str], replace: list[str],
                                       crlf: bool, fence: bool) -> None:
    assume(not any(s.lstrip().startswith(("```", "~~~", "<<<<<", "=====", ">>>>>"))
                   for s in search + replace))
    text = format_block(path, "".join(f"{s}\n" for s in search),
                        "".join(f"{r}\n" for r in replace))
    if fence:
        text = f"Here:\n```python\n{text}```\n"
    if crlf:
        text = text.replace("\n", "\r\n")
    [b] = parse_blocks(text)
    assert b.path == path
    assert b.search == "".join(f"{s}\n" for s in search)
    assert b.replace == "".join(f"{r}\n" for r in replace)


# -- applying -----------------------------------------------------------------------------------
def test_apply_replaces_exactly_the_matched_lines() -> None:
    out = apply_block(SRC, "    y = x + 1\n", "    y = x * 2\n    y += 1\n")
    assert out == SRC.replace("    y = x + 1\n", "    y = x * 2\n    y += 1\n")


def test_apply_matches_whole_lines_only() -> None:
    with pytest.raises(PatchError, match="is not in the file"):
        apply_block(SRC, "y = x + 1\n", "y = 0\n", tolerant=False)


def test_an_ambiguous_search_is_rejected_with_the_count() -> None:
    with pytest.raises(PatchError, match="matches 2 places"):
        apply_block(SRC, "\n", "# blank\n")
    with pytest.raises(PatchError, match="matches 2 places"):
        apply_block("a\nb\na\nb\n", "a\n", "c\n")


def test_a_missing_search_names_its_first_line() -> None:
    with pytest.raises(PatchError) as info:
        apply_block(SRC, "\n  def h():\n    pass\n", "")
    assert info.value.reason == "its SEARCH text (starting 'def h():') is not in the file"


def test_tolerant_matching_ignores_trailing_whitespace() -> None:
    src = "a = 1   \nb = 2\n"
    assert apply_block(src, "a = 1\n", "a = 3\n") == "a = 3\nb = 2\n"
    with pytest.raises(PatchError):
        apply_block(src, "a = 1\n", "a = 3\n", tolerant=False)


def test_tolerant_matching_reindents_a_uniformly_shifted_block() -> None:
    out = apply_block(SRC, "y = x + 1\nreturn y\n", "z = x + 1\nreturn z * 2\n")
    assert out == SRC.replace("    y = x + 1\n    return y\n", "    z = x + 1\n    return z * 2\n")
    src = "if a:\n    b()\n"
    out = apply_block(src, "        b()\n", "        c()\n        d()\n")
    assert out == "if a:\n    c()\n    d()\n"


def test_indentation_that_is_not_uniform_does_not_match() -> None:
    with pytest.raises(PatchError, match="is not in the file"):
        apply_block(SRC, "  y = x + 1\n      return y\n", "pass\n")


def test_crlf_files_keep_their_line_ends_and_a_missing_final_newline_stays_missing() -> None:
    assert apply_block("a\r\nb\r\n", "a\n", "x\ny\n") == "x\r\ny\r\nb\r\n"
    assert apply_block("a\nb", "b\n", "c\nd\n") == "a\nc\nd"
    assert apply_block("a\nb", "a\nb\n", "") == ""


def test_empty_search_only_for_an_empty_or_new_file() -> None:
    assert apply_block("", "", "x = 1\n") == "x = 1\n"
    with pytest.raises(PatchError, match="SEARCH section is empty"):
        apply_block(SRC, "", "x = 1\n")


@given(st.lists(st.sampled_from(["a", "b", "c", " a", "a ", "", "x = 1"]), max_size=12),
       st.data())
def test_applying_a_block_made_from_a_random_edit_reproduces_the_edit(
        lines: list[str], data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(lines)))
    j = data.draw(st.integers(i, len(lines)))
    new = data.draw(st.lists(st.sampled_from(["a", "z", "  y", ""]), max_size=4))
    search = lines[i:j]
    occurrences = sum(lines[k: k + len(search)] == search
                      for k in range(len(lines) - len(search) + 1))
    text = "".join(f"{ln}\n" for ln in lines)
    expected = "".join(f"{ln}\n" for ln in lines[:i] + new + lines[j:])
    block = ("".join(f"{s}\n" for s in search), "".join(f"{n}\n" for n in new))
    if not search:
        assume(not text.strip())
        assert apply_block(text, *block) == "".join(f"{n}\n" for n in new)
    elif occurrences == 1:
        assert apply_block(text, *block, tolerant=False) == expected
        assert apply_block(text, *block) == expected
    else:
        with pytest.raises(PatchError, match=f"matches {occurrences} places"):
            apply_block(text, *block)


@given(st.lists(st.text("abc \n", max_size=8), min_size=1, max_size=6), st.data())
def test_a_parsed_block_applies_like_the_edit_it_was_made_from(chunks: list[str],
                                                               data: st.DataObject) -> None:
    lines = [f"{k}:{c.replace(chr(10), ' ')}" for k, c in enumerate(chunks)]  # unique lines
    i = data.draw(st.integers(0, len(lines) - 1))
    j = data.draw(st.integers(i + 1, len(lines)))
    new = data.draw(st.lists(st.from_regex(r"[a-z =+1-9]{0,10}", fullmatch=True), max_size=3))
    text = "".join(f"{ln}\n" for ln in lines)
    answer = format_block("m.txt", "".join(f"{s}\n" for s in lines[i:j]),
                          "".join(f"{n}\n" for n in new))
    out = apply_blocks({"m.txt": text}, parse_blocks(answer), ["m.txt"])
    assert out == {"m.txt": "".join(f"{ln}\n" for ln in lines[:i] + new + lines[j:])}


def test_blocks_apply_in_order_across_files() -> None:
    files = {"a.py": "x = 1\n", "b.py": "y = 2\n", "README": "hi\n"}
    blocks = parse_blocks(format_block("a.py", "x = 1\n", "x = 10\n")
                          + format_block("b.py", "y = 2\n", "y = 20\n")
                          + format_block("a.py", "x = 10\n", "x = 100\n"))
    out = apply_blocks(files, blocks, ["a.py", "b.py"])
    assert out == {"a.py": "x = 100\n", "b.py": "y = 20\n", "README": "hi\n"}
    assert files["a.py"] == "x = 1\n"  # the input is not changed


def test_path_resolution() -> None:
    editable, files = ["src/solve.py", "lib.py"], {"src/solve.py", "lib.py", "main.py"}
    assert resolve_path(EditBlock(1, "./lib.py", "", ""), editable, files) == "lib.py"
    assert resolve_path(EditBlock(1, "solve.py", "", ""), editable, files) == "src/solve.py"
    assert resolve_path(EditBlock(1, "a/src/solve.py", "", ""), editable, files) == "src/solve.py"
    assert resolve_path(EditBlock(1, None, "", ""), ["one.py"], files) == "one.py"
    with pytest.raises(PatchError) as info:
        resolve_path(EditBlock(2, None, "", ""), editable, files)
    assert info.value.reason == ("block 2 names no file, and there are 2 files it could edit "
                                 "(src/solve.py, lib.py)")
    with pytest.raises(PatchError) as info:
        resolve_path(EditBlock(1, "main.py", "", ""), editable, files)
    assert info.value.reason == ("block 1 edits main.py, which is read-only (the files it may "
                                 "edit: src/solve.py, lib.py)")
    with pytest.raises(PatchError) as info:
        resolve_path(EditBlock(3, "other.py", "", ""), editable, files)
    assert info.value.reason == ("block 3 edits other.py, which is not a file it may edit "
                                 "(src/solve.py, lib.py)")


# -- markers ------------------------------------------------------------------------------------
MARKED = ("import math\n# EVOLVE-BLOCK-START\ndef f():\n    return 1\n# EVOLVE-BLOCK-END\n"
          "\nprint(f())\n")


def test_frozen_parts() -> None:
    assert frozen_parts("a\nb\n") is None
    assert frozen_parts(MARKED) == [(1, ["import math", "# EVOLVE-BLOCK-START"]),
                                    (5, ["# EVOLVE-BLOCK-END", "", "print(f())", ""])]
    # a START without an END leaves the rest editable
    assert frozen_parts("a\n# EVOLVE-BLOCK-START\nb\n") == [(1, ["a", "# EVOLVE-BLOCK-START"])]


def test_edits_inside_the_regions_are_allowed() -> None:
    new = MARKED.replace("    return 1\n", "    x = 2\n    return x\n")
    assert marker_violation("m.py", MARKED, new) is None
    out = apply_blocks({"m.py": MARKED}, parse_blocks(format_block(
        "m.py", "def f():\n    return 1\n", "def f():\n    return 2\n")), ["m.py"])
    assert "return 2" in out["m.py"]


@pytest.mark.parametrize("old,new,reason", [
    ("import math\n", "import math, sys\n",
     "block 1 changes m.py outside its EVOLVE-BLOCK regions (line 1)"),
    ("print(f())\n", "print(f() + 1)\n",
     "block 1 changes m.py outside its EVOLVE-BLOCK regions (line 7)"),
    ("# EVOLVE-BLOCK-END\n", "", "block 1 changes the EVOLVE-BLOCK markers of m.py"),
    ("# EVOLVE-BLOCK-START\n", "# EVOLVE-BLOCK-START here\n",
     "block 1 changes the EVOLVE-BLOCK markers of m.py (line 2)"),
    ("    return 1\n# EVOLVE-BLOCK-END\n\n", "    return 2\n# EVOLVE-BLOCK-END\nx = 1\n",
     "block 1 changes m.py outside its EVOLVE-BLOCK regions (line 6)"),
])
def test_edits_outside_the_regions_are_rejected(old: str, new: str, reason: str) -> None:
    with pytest.raises(PatchError) as info:
        apply_blocks({"m.py": MARKED}, parse_blocks(format_block("m.py", old, new)), ["m.py"])
    assert info.value.reason.startswith(reason)


def test_an_edit_spanning_a_marker_that_keeps_it_is_allowed() -> None:
    old = "    return 1\n# EVOLVE-BLOCK-END\n"
    new = "    return 3\n# EVOLVE-BLOCK-END\n"
    out = apply_blocks({"m.py": MARKED}, parse_blocks(format_block("m.py", old, new)), ["m.py"])
    assert out["m.py"] == MARKED.replace(old, new)


def test_a_file_without_markers_may_change_anywhere() -> None:
    assert marker_violation("a.py", "a\n", "b\n# EVOLVE-BLOCK-START\n") is None


# -- syntax, conflicts, fenced code -------------------------------------------------------------
def test_syntax_errors_name_the_file_and_line() -> None:
    assert syntax_error("a.py", SRC) is None
    assert syntax_error("a.py", "x = 1\ndef f(:\n") == (
        "syntax error in a.py line 2: invalid syntax")
    assert syntax_error("a.py", "x = 1\nreturn 2\n") == (
        "syntax error in a.py line 2: 'return' outside function")
    assert syntax_error("a.py", "x = 1\0\n").startswith("syntax error in a.py")
    assert syntax_error("notes.txt", "def f(:\n") is None


def test_conflict_markers_are_found() -> None:
    assert conflict_line("a\n=======\nb\n") is None
    assert conflict_line("a\n<<<<<<< parent\nb\n=======\nc\n>>>>>>> donor\n") == 2
    assert conflict_line("a\n>>>>>>> donor\n") == 2


def test_code_from_answer_takes_the_largest_block() -> None:
    answer = "Plan:\n```\nshort\n```\nCode:\n```python\nx = 1\ny = 2\n```\n```\nz = 3\n```"
    assert code_from_answer(answer) == "x = 1\ny = 2\n"
    assert code_from_answer("```\na\n```\n```py\nb\n```") == "b\n"  # equal sizes: the last
    assert code_from_answer("````python\ns = '```'\n````\n") == "s = '```'\n"
    assert code_from_answer("```python\r\nx = 1\r\n```") == "x = 1\n"


@pytest.mark.parametrize("answer,reason", [
    ("x = 1", "the answer holds no fenced code block"),
    ("```python\nx = 1\n", "the code block is not closed (the answer may have been cut off)"),
    ("```python\n\n```", "the code block is empty"),
])
def test_code_from_answer_rejects(answer: str, reason: str) -> None:
    with pytest.raises(PatchError) as info:
        code_from_answer(answer)
    assert info.value.reason == reason


# -- salvaging a small model's answer ----------------------------------------------------------
def test_an_answer_cut_off_mid_block_keeps_the_blocks_written_whole() -> None:
    whole = format_block("solve.py", "    y = x + 1\n", "    y = x + 2\n")
    cut = whole + "\nsolve.py\n<<<<<<< SEARCH\n    return y\n=====\n    return"
    assert complete_part(cut) == whole
    assert parse_blocks(complete_part(cut)) == parse_blocks(whole)
    assert complete_part("solve.py\n<<<<<<< SEARCH\n    return y\n") is None


def test_a_block_searching_for_text_already_searched_is_dropped_and_the_first_kept() -> None:
    first = format_block("solve.py", "    y = x + 1\n", "    y = x + 2\n")
    again = format_block("solve.py", "    y = x + 1\n", "    y = x + 3\n")
    other = format_block("solve.py", "    return y\n", "    return -y\n")
    kept = without_repeats(parse_blocks(first + again + first + other))
    assert [(b.search, b.replace) for b in kept] == [("    y = x + 1\n", "    y = x + 2\n"),
                                                      ("    return y\n", "    return -y\n")]
    child = apply_blocks({"solve.py": SRC}, kept, ["solve.py"])["solve.py"]
    assert "y = x + 2" in child and "return -y" in child
