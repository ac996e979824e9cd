"""The answer grammars of the code operators, built per parent.

``diff_grammar``: SEARCH/REPLACE blocks whose SEARCH text is, by construction,
one or more consecutive whole lines of one editable region of an editable file
(between EVOLVE-BLOCK markers, or the whole file without them), enough of them
to occur once in the file, so every block applies and stays inside the
markers. ``rewrite_grammar``: one fenced file whose text outside the editable
regions is the parent's, exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..._grammar import REST_OF_LINE, Chars, Grammar, Lit, Node, Ref, Repeat, alt, opt, seq
from ._patch import MARKER_END, MARKER_START, has_markers

#: a REPLACE line: anything but a line that could be read as a block marker (its length is
#: not bounded: llama.cpp refuses a bounded repetition inside another one)
_REPLACE_LINE = alt(seq(Chars("<=>\n", negate=True), REST_OF_LINE), Lit("\n"))
#: a line of a rewritten file or region: anything but a line that could close the fence
_CODE_LINE = alt(seq(Chars("`\n", negate=True), REST_OF_LINE), Lit("\n"))
#: a line with something on it
_FILLED_LINE = seq(Repeat(Chars(" \t")), Chars("` \t\n", negate=True), REST_OF_LINE)


def editable_regions(text: str) -> list[tuple[int, int]]:
    """The editable line ranges of ``text`` as (first, end) indexes into its lines (each
    with its newline): between each EVOLVE-BLOCK-START line and the next END line, or the
    whole text when it has no markers. A last line without a newline is left out."""
    lines = text.splitlines(keepends=True)
    if not has_markers(text):
        whole = len(lines) if not lines or lines[-1].endswith("\n") else len(lines) - 1
        return [(0, whole)] if whole else []
    regions, start = [], None
    for i, line in enumerate(lines):
        if start is None and MARKER_START in line:
            start = i + 1
        elif start is not None and MARKER_END in line:
            regions.append((start, i))
            start = None
    if start is not None:  # a START without an END: the rest of the file
        end = len(lines) if lines[-1].endswith("\n") else len(lines) - 1
        regions.append((start, end))
    return [(a, b) for a, b in regions if b > a]


def _unique_lengths(lines: Sequence[str], first: int, end: int) -> dict[int, int]:
    """For each start line in [first, end): the fewest lines from it, within the region,
    that occur exactly once in the file as whole lines (starts never unique are left out)."""
    lengths = {}
    for i in range(first, end):
        candidates = [j for j in range(len(lines)) if j != i and lines[j] == lines[i]]
        m = 1
        while candidates and i + m < end:
            candidates = [j for j in candidates
                          if j + m < len(lines) and lines[j + m] == lines[i + m]]
            m += 1
        if not candidates:
            lengths[i] = m
    return lengths


def _search_rules(tag: str, text: str) -> tuple[dict[str, Node], Node | None]:
    """Rules for the SEARCH text of one file, and the node naming them (None: no line of
    the file can start a unique SEARCH)."""
    lines = text.splitlines(keepends=True)
    rules: dict[str, Node] = {}
    starts: list[Node] = []
    for first, end in editable_regions(text):
        for i in range(first, end):  # tail i: line i, then optionally the tail after it
            more = [opt(Ref(f"{tag}-tail-{i + 1}"))] if i + 1 < end else []
            rules[f"{tag}-tail-{i}"] = seq(Lit(lines[i]), *more)
        for i, m in _unique_lengths(lines, first, end).items():
            head = Lit("".join(lines[i: i + m]))
            rest = [opt(Ref(f"{tag}-tail-{i + m}"))] if i + m < end else []
            rules[f"{tag}-start-{i}"] = seq(head, *rest)
            starts.append(Ref(f"{tag}-start-{i}"))
    if not starts:
        return {}, None
    rules[f"{tag}-search"] = alt(*starts)
    return rules, Ref(f"{tag}-search")


def diff_grammar(files: Mapping[str, str], paths: Sequence[str], max_blocks: int) -> Grammar:
    """One to ``max_blocks`` SEARCH/REPLACE blocks, each naming one of ``paths`` on its
    first line and searching whole lines of that file's editable regions. A REPLACE text
    holds at most twice the lines of the longest region, plus four: a small model that
    starts repeating itself is made to close the block before its reply is cut off."""
    rules: dict[str, Node] = {}
    blocks: list[Node] = []
    for n, path in enumerate(paths):
        file_rules, search = _search_rules(f"f{n}", files[path])
        if search is None:
            continue
        rules.update(file_rules)
        blocks.append(seq(Lit(f"{path}\n<<<<<<< SEARCH\n"), search, Lit("=======\n"),
                          Ref("replace"), Lit(">>>>>>> REPLACE\n")))
    if not blocks:
        raise ValueError("no editable line of " + ", ".join(paths) + " can be searched for")
    longest = max(end - first for path in paths
                  for first, end in editable_regions(files[path]) or [(0, 0)])
    rules["replace"] = Repeat(_REPLACE_LINE, 0, 2 * longest + 4)
    rules["block"] = alt(*blocks)
    rules["root"] = seq(Ref("block"), Repeat(seq(opt(Lit("\n")), Ref("block")), 0,
                                                max_blocks - 1))
    return Grammar({"root": rules.pop("root"), **rules})


def rewrite_grammar(path: str, text: str, lang: str) -> Grammar:
    """One fenced block holding a new ``path``: free lines inside each editable region,
    the parent's own lines (markers included) everywhere else."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"  # the fence needs the body to end with a newline
    parts: list[Node] = [Lit(f"```{lang}\n")]
    done = 0
    for first, end in editable_regions("".join(lines)) if has_markers(text) else []:
        if first > done:
            parts.append(Lit("".join(lines[done:first])))
        parts.append(Ref("code"))
        done = end
    if has_markers(text):
        if done < len(lines):
            parts.append(Lit("".join(lines[done:])))
    else:  # a whole new file: not an empty one
        parts += [Repeat(Ref("line")), _FILLED_LINE, Repeat(Ref("line"))]
    parts.append(Lit("```"))
    rules: dict[str, Node] = {"root": seq(*parts), "line": _CODE_LINE}
    if has_markers(text):
        rules["code"] = Repeat(Ref("line"), 1)
    return Grammar(rules)
