"""The answer grammars of the code operators, built per parent.

``diff_grammar``: SEARCH/REPLACE blocks whose SEARCH text is, by construction,
one or more consecutive whole lines of one editable region of an editable file
(between EVOLVE-BLOCK markers, or the whole file without them), enough of them
to occur once in the file, so every block applies and stays inside the
markers. ``rewrite_grammar``: one fenced file whose text outside the editable
regions is the parent's, exactly, and no line of a region holding the END marker.
``resolution_grammar`` (a merge's conflict resolution): the same, with regions that
may be left empty and no line, anywhere, that git would read as a conflict marker.
Both fence the file with more backticks than any run in the parent's text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ..._grammar import REST_OF_LINE, Chars, Grammar, Lit, Node, Ref, Repeat, alt, opt, seq
from ._patch import MARKER_END, MARKER_START, has_markers

#: the shortest bound on the length of a REPLACE line, in characters
_MIN_REPLACE_LINE = 120


def _replace_line(longest: int) -> Node:
    """A REPLACE line: not one that could be read as a block marker, at most ``longest``
    characters. (It is a rule of its own: llama.cpp refuses a bounded repetition written
    inside another one, and takes one behind a rule name.)"""
    return alt(seq(Chars("<=>\n", negate=True), Repeat(Chars("\n", negate=True), 0,
                                                         longest - 1), Lit("\n")),
               Lit("\n"))

#: a line with something on it
_FILLED_LINE = seq(Repeat(Chars(" \t")), Chars("` \t\n", negate=True), REST_OF_LINE)
#: the characters of git's conflict-marker lines (seven of one, then a space or the line's end)
_MARKER_CHARS = "<=>|"
#: text that ends a region where it stands in a line (``frozen_parts``; a START inside a
#: region is no marker there)
_MARKER_TEXTS = (MARKER_END,)


def _no_marker_rest() -> tuple[dict[str, Node], dict[str, int]]:
    """Rules ``rest-<n>``: the rest of a line, to its newline, such that the whole line holds
    no EVOLVE-BLOCK-END, one rule per state of matching it (the longest end of the line so
    far that begins it; rest-0: none). Also the characters that leave state 0, with their
    states.

    A region line holding the END marker ends the region early, which makes the child
    invalid; and it lets a small model stay inside the region while it copies the END
    line and the frozen text after it, then write on past them: it loops there until
    max_tokens (seen with the embedded model on merges). Each rule is right-recursive only
    at the characters of the marker (a run of other characters is one repetition)."""
    prefixes = sorted({m[:i] for m in _MARKER_TEXTS for i in range(len(m))},
                      key=lambda t: (len(t), t))
    state = {t: n for n, t in enumerate(prefixes)}  # "" is 0
    chars = sorted(set("".join(_MARKER_TEXTS)))

    def step(before: str, c: str) -> int | None:
        text = before + c
        if any(text.endswith(m) for m in _MARKER_TEXTS):
            return None
        return state[max((text[i:] for i in range(len(text) + 1) if text[i:] in state),
                         key=len)]

    rules: dict[str, Node] = {}
    for before, n in state.items():
        moves = {c: step(before, c) for c in chars}
        onward = {c: m for c, m in moves.items() if m}  # to a state but 0
        barred = "".join(c for c, m in moves.items() if m is None)
        go = [seq(Lit(c), Ref(f"rest-{m}")) for c, m in onward.items()]
        if n == 0:  # no character of a marker can finish one here
            rules["rest-0"] = seq(Repeat(Chars("".join(onward) + "\n", negate=True)),
                                  alt(Lit("\n"), *go))
        else:
            rules[f"rest-{n}"] = alt(Lit("\n"), *go, seq(
                Chars("".join(onward) + barred + "\n", negate=True), Ref("rest-0")))
    first = {c: m for c, m in ((c, step("", c)) for c in chars) if m}
    return rules, first


_REST_RULES, _FIRST_STATES = _no_marker_rest()


def _plain_after(excluded: str) -> Node:
    """A character not in ``excluded`` (nor a newline), then the rest of the line."""
    return seq(Chars(excluded + "\n", negate=True), REST_OF_LINE)


def _region_after(excluded: str) -> Node:
    """The same, the whole line not holding EVOLVE-BLOCK-END (``rest-<n>`` rules)."""
    onward = {c: m for c, m in _FIRST_STATES.items() if c not in excluded}
    return alt(*(seq(Lit(c), Ref(f"rest-{m}")) for c, m in onward.items()),
               seq(Chars(excluded + "".join(onward) + "\n", negate=True), Ref("rest-0")))


def _marker_char_lines(after: Callable[[str], Node]) -> list[Node]:
    """The lines starting with one of ``<=>|`` that git would not read as a conflict
    marker: one to six of it then another character or the line's end, or seven then
    neither a space nor the line's end (spelled out: llama.cpp refuses a bounded
    repetition inside the repetition of lines)."""
    return [node for c in _MARKER_CHARS for node in (
        *(seq(Lit(c * k), alt(after(c), Lit("\n"))) for k in range(1, 7)),
        seq(Lit(c * 7), after(" ")))]


def _line(after: Callable[[str], Node], *, conflicts: bool) -> Node:
    """A line that cannot close the fence (no backtick first) and, with ``conflicts``, that
    git would not read as a conflict marker."""
    if not conflicts:
        return alt(after("`"), Lit("\n"))
    return alt(after("`" + _MARKER_CHARS), Lit("\n"), *_marker_char_lines(after))


def _filled_line(*, conflicts: bool) -> Node:
    """A line of a file without markers with something on it (a whitespace-only line is
    not): indented, or starting with a character the line rule allows first."""
    if not conflicts:
        return _FILLED_LINE
    return alt(seq(Repeat(Chars(" \t"), 1), Chars("` \t\n", negate=True), REST_OF_LINE),
               _plain_after("`" + _MARKER_CHARS + " \t"), *_marker_char_lines(_plain_after))


def editable_regions(text: str, *, keep_empty: bool = False) -> list[tuple[int, int]]:
    """The editable line ranges of ``text`` as (first, end) indexes into its lines (each
    with its newline): between each EVOLVE-BLOCK-START line and the next END line, or the
    whole text when it has no markers. A last line without a newline is left out, and so
    are empty regions (a START line right before its END line) unless ``keep_empty``."""
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
    return [(a, b) for a, b in regions if keep_empty or b > a]


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
    holds at most twice the lines of the longest region, plus four, each at most twice as
    long as the longest line of a region (and at least ``_MIN_REPLACE_LINE``): a small
    model that starts repeating itself is made to close the block before its reply is cut
    off."""
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
    regions = [(files[path].splitlines(), first, end) for path in paths
               for first, end in editable_regions(files[path])]
    most_lines = max((end - first for _, first, end in regions), default=0)
    widest = max((len(line) for lines, first, end in regions for line in lines[first:end]),
                 default=0)
    rules["replace"] = Repeat(Ref("replace-line"), 0, 2 * most_lines + 4)
    rules["replace-line"] = _replace_line(max(_MIN_REPLACE_LINE, 2 * widest))
    rules["block"] = alt(*blocks)
    rules["root"] = seq(Ref("block"), Repeat(seq(opt(Lit("\n")), Ref("block")), 0,
                                                max_blocks - 1))
    return Grammar({"root": rules.pop("root"), **rules})


def rewrite_grammar(path: str, text: str, lang: str) -> Grammar:
    """One fenced block holding a new ``path``: free lines inside each editable region
    (at least one; none holding EVOLVE-BLOCK-END), the parent's own lines (markers included)
    everywhere else."""
    return _fenced_file(text, lang, conflicts=False)


def resolution_grammar(path: str, text: str, lang: str) -> Grammar:
    """One fenced block holding the merge's resolution of ``path``, whose parent version
    is ``text``: the parent's own lines (markers included) outside the editable regions,
    free lines inside them (none too: one side may have emptied a region; none holding
    EVOLVE-BLOCK-END), and no line that git would read as a conflict marker (seven
    ``<``, ``=``, ``>`` or ``|``, then a space or the line's end). A parent without
    markers gives a whole non-empty file."""
    return _fenced_file(text, lang, conflicts=True)


def _fenced_file(text: str, lang: str, *, conflicts: bool) -> Grammar:
    """A fenced block: ``text``'s frozen lines literally, free lines in its editable
    regions (without markers: a whole file of them, one with something on it); with
    ``conflicts`` no line is a conflict marker, and a region may be left empty."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"  # the fence needs the body to end with a newline
    fence = answer_fence(text)
    parts: list[Node] = [Lit(f"{fence}{lang}\n")]
    rules: dict[str, Node] = {}
    if has_markers(text):
        done = 0
        for first, end in editable_regions("".join(lines), keep_empty=conflicts):
            if first > done:
                parts.append(Lit("".join(lines[done:first])))
            parts.append(Ref("code"))
            done = end
        if done < len(lines):
            parts.append(Lit("".join(lines[done:])))
        rules["code"] = Repeat(Ref("line"), 0 if conflicts else 1)
        rules["line"] = _line(_region_after, conflicts=conflicts)
        rules.update(_REST_RULES)
    else:  # a whole new file: not an empty one
        parts += [Repeat(Ref("line")), Ref("filled"), Repeat(Ref("line"))]
        rules["line"] = _line(_plain_after, conflicts=conflicts)
        rules["filled"] = _filled_line(conflicts=conflicts)
    parts.append(Lit(fence))
    return Grammar({"root": seq(*parts), **rules})


def answer_fence(text: str) -> str:
    """The fence of a rewrite or resolution of ``text``: longer than any run of backticks
    in it, so that no frozen line can close it."""
    fence = "```"
    while fence in text:
        fence += "`"
    return fence
