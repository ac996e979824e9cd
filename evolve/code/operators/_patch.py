"""Pure text functions of the code operators: SEARCH/REPLACE blocks, markers, checks.

Nothing here talks to an LLM or the archive; every function maps text to text
(or to a reason) and raises :class:`PatchError` with a precise reason, which the
operators turn into an invalid child.

The edit format is aider's / OpenEvolve's::

    path/to/file.py
    <<<<<<< SEARCH
    exact old lines
    =======
    new lines
    >>>>>>> REPLACE

Parsing tolerates CRLF line ends, code fences around blocks, 5 to 9 marker
characters and spaces around the markers. The path is the last non-blank line
before ``<<<<<<< SEARCH`` (a fence line is skipped; ``File:``, ``#``, ``*``,
quotes and backticks around it are dropped; a prose line counts only through a
backticked path in it). A block without a path line edits the file of the block
before it.

Matching works on whole lines and must be unique. When the exact SEARCH lines
are not found and ``tolerant`` is on, two fallbacks are tried in order, each
also required to match exactly once: lines compared without trailing
whitespace, then lines that differ only by one uniform indentation prefix added
to (or removed from) every non-blank SEARCH line — the REPLACE lines are then
re-indented the same way. A SEARCH text found several times at some tier is
ambiguous at once (a looser tier would not make it less so).

EVOLVE-BLOCK markers: a line containing ``EVOLVE-BLOCK-START`` opens an
editable region that the next line containing ``EVOLVE-BLOCK-END`` closes (a
START without an END leaves the rest of the file editable). When a file has
markers, everything outside the regions, the marker lines included, is frozen:
a child is valid only if its frozen text equals the parent's.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from archive import Failure

MARKER_START = "EVOLVE-BLOCK-START"
MARKER_END = "EVOLVE-BLOCK-END"

_SEARCH = re.compile(r"^\s*<{5,9}\s*SEARCH\s*$")
_DIVIDER = re.compile(r"^\s*={5,9}\s*$")
_REPLACE = re.compile(r"^\s*>{5,9}\s*REPLACE\s*$")
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*[\w+.-]*\s*$")
_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.S | re.I)
_PATH = re.compile(r"^[\w.\-/\\]+$")
_PATH_LABEL = re.compile(r"^(?:file(?:name)?|path)\s*:\s*", re.I)
_BACKTICKED = re.compile(r"`([^`\s]+)`")
_CONFLICT = re.compile(r"^(?:<{7}|>{7}|\|{7})(?: |$)")


class PatchError(ValueError):
    """An answer or an edit that cannot be used; ``reason`` says why, ``failure`` its kind
    (by default: an answer in the right format that cannot be used)."""

    def __init__(self, reason: str, failure: Failure = Failure.INVALID_OUTPUT) -> None:
        super().__init__(reason)
        self.reason = reason
        self.failure = failure


@dataclass(frozen=True)
class EditBlock:
    """One SEARCH/REPLACE block of an answer (``index`` counts from 1)."""

    index: int
    path: str | None  # as written (None: no path line and no block before it)
    search: str  # whole lines, each ending in "\n" ("" for an empty section)
    replace: str


# -- parsing ------------------------------------------------------------------------------------
def _lines_text(lines: Sequence[str]) -> str:
    lines = list(lines)
    if len(lines) >= 2 and _FENCE.match(lines[0]) and _FENCE.match(lines[-1]):
        lines = lines[1:-1]  # a section wrapped in its own code fence
    return "".join(f"{ln}\n" for ln in lines)


def _path_of(lines: Sequence[str]) -> str | None:
    """The path named by the last meaningful line of ``lines`` (None: none named)."""
    for raw in reversed(lines):
        if not raw.strip() or _FENCE.match(raw):
            continue
        line = raw.strip().strip("#*\"' ").strip()
        line = _PATH_LABEL.sub("", line).strip("`*\"' ").rstrip(":").strip("`*\"' ")
        if _PATH.match(line) and ("." in line or "/" in line):
            return line
        ticked = [t for t in _BACKTICKED.findall(raw) if "." in t or "/" in t]
        return ticked[-1].rstrip(":") if ticked else None
    return None


def parse_blocks(answer: str) -> list[EditBlock]:
    """The SEARCH/REPLACE blocks of ``answer``, in order.

    Raises :class:`PatchError` when there are none or one is not well formed.
    """
    text = _THINK.sub("", answer.replace("\r\n", "\n").replace("\r", "\n"))
    lines = text.split("\n")
    blocks: list[EditBlock] = []
    before: list[str] = []  # lines since the end of the previous block
    path: str | None = None
    i = 0
    while i < len(lines):
        if not _SEARCH.match(lines[i]):
            before.append(lines[i])
            i += 1
            continue
        n = len(blocks) + 1
        path = _path_of(before) or path
        j = i + 1
        while j < len(lines) and not _DIVIDER.match(lines[j]):
            if _SEARCH.match(lines[j]) or _REPLACE.match(lines[j]):
                raise PatchError(f"block {n} has no ======= line between SEARCH and REPLACE")
            j += 1
        if j == len(lines):
            raise PatchError(f"block {n} is not complete (no ======= line; the answer may "
                             "have been cut off)")
        k = j + 1
        while k < len(lines) and not _REPLACE.match(lines[k]):
            if _SEARCH.match(lines[k]) or _DIVIDER.match(lines[k]):
                raise PatchError(f"block {n} is not closed by a >>>>>>> REPLACE line")
            k += 1
        if k == len(lines):
            raise PatchError(f"block {n} is not closed (no >>>>>>> REPLACE line; the answer "
                             "may have been cut off)")
        blocks.append(EditBlock(n, path, _lines_text(lines[i + 1: j]),
                                _lines_text(lines[j + 1: k])))
        before = []
        i = k + 1
    if not blocks:
        raise PatchError("the answer holds no SEARCH/REPLACE block", Failure.NO_BLOCK)
    return blocks


def complete_part(answer: str) -> str | None:
    """``answer`` up to the end of its last complete block (None: no block is complete):
    what can be used of an answer cut off in the middle of a block."""
    lines = answer.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    ends = [i for i, ln in enumerate(lines) if _REPLACE.match(ln)]
    return "\n".join(lines[: ends[-1] + 1]) + "\n" if ends else None


def without_repeats(blocks: Sequence[EditBlock]) -> list[EditBlock]:
    """``blocks`` without those that search for the same text as an earlier block (a small
    model's loop writes the same edit again, or another version of it: neither would apply
    to the edited file); the first is kept."""
    seen: set[tuple[str | None, str]] = set()
    kept = []
    for block in blocks:
        key = (block.path, block.search)
        if key not in seen:
            seen.add(key)
            kept.append(block)
    return kept


def format_block(path: str | None, search: str, replace: str) -> str:
    """A block as the operators ask for it (the inverse of :func:`parse_blocks`)."""
    return f"{path or ''}\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"


# -- applying -----------------------------------------------------------------------------------
def _split(text: str) -> tuple[list[str], list[str]]:
    """Line bodies and their line ends ("\\n", "\\r\\n" or "" for a last unended line)."""
    bodies, ends = [], []
    for piece in text.split("\n"):
        bodies.append(piece)
        ends.append("\n")
    ends[-1] = ""
    if bodies[-1] == "":  # text ends with a line end (or is empty)
        bodies.pop()
        ends.pop()
    for i, body in enumerate(bodies):
        if body.endswith("\r") and ends[i]:
            bodies[i], ends[i] = body[:-1], "\r\n"
    return bodies, ends


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _shift(file_lines: Sequence[str], search: Sequence[str]) -> tuple[str, str] | None:
    """``("add"|"remove", prefix)`` when the lines differ only by one indentation prefix."""
    shift: tuple[str, str] | None = None
    for f, s in zip(file_lines, search, strict=True):
        f, s = f.rstrip(), s.rstrip()
        if not f and not s:
            continue
        if f.lstrip() != s.lstrip() or not f or not s:
            return None
        fi, si = _indent(f), _indent(s)
        if fi.endswith(si):
            this = ("add", fi[: len(fi) - len(si)])
        elif si.endswith(fi):
            this = ("remove", si[: len(si) - len(fi)])
        else:
            return None
        if shift is not None and this != shift:
            return None
        shift = this
    return shift


def _reindent(lines: list[str], shift: tuple[str, str]) -> list[str]:
    how, prefix = shift
    if not prefix:
        return lines
    if how == "add":
        return [prefix + ln if ln.strip() else ln for ln in lines]
    return [ln[len(prefix):] if ln.startswith(prefix)
            else ln[min(len(prefix), len(_indent(ln))):] for ln in lines]


def _find(bodies: list[str], search: list[str], tolerant: bool
          ) -> tuple[list[int], tuple[str, str] | None]:
    """Start lines of the matches at the first tier that has any, and the indent shift."""
    n = len(search)
    starts = range(len(bodies) - n + 1)
    exact = [i for i in starts if bodies[i: i + n] == search]
    if exact or not tolerant:
        return exact, None
    stripped = [s.rstrip() for s in search]
    loose = [i for i in starts if [b.rstrip() for b in bodies[i: i + n]] == stripped]
    if loose:
        return loose, None
    shifted = [(i, sh) for i in starts if (sh := _shift(bodies[i: i + n], search)) is not None]
    if len(shifted) == 1:
        return [shifted[0][0]], shifted[0][1]
    return [i for i, _ in shifted], None


def apply_block(text: str, search: str, replace: str, *, tolerant: bool = True) -> str:
    """``text`` with the unique occurrence of the SEARCH lines replaced by the REPLACE lines.

    An empty SEARCH section is allowed only for an empty (or new) file. Raises
    :class:`PatchError` with the tail of a reason ("its SEARCH text ...").
    """
    bodies, ends = _split(text)
    search_lines = search.split("\n")[:-1] if search else []
    replace_lines = replace.split("\n")[:-1] if replace else []
    newline = "\r\n" if "\r\n" in ends else "\n"
    if not search_lines:
        if text.strip():
            raise PatchError("its SEARCH section is empty (allowed only for an empty or new "
                             "file)", Failure.NO_MATCH)
        return "".join(f"{ln}{newline}" for ln in replace_lines)
    found, shift = _find(bodies, search_lines, tolerant)
    if len(found) > 1:
        raise PatchError(f"its SEARCH text matches {len(found)} places (it must match exactly "
                         "once: include more surrounding lines)", Failure.NO_MATCH)
    if not found:
        first = next((s.strip() for s in search_lines if s.strip()), "")
        raise PatchError(f"its SEARCH text (starting {first[:60]!r}) is not in the file",
                         Failure.NO_MATCH)
    start, stop = found[0], found[0] + len(search_lines)
    if shift is not None:
        replace_lines = _reindent(replace_lines, shift)
    ending = ends[start] or newline
    new_ends = [ending] * len(replace_lines)
    if stop == len(bodies) and not ends[-1] and new_ends:
        new_ends[-1] = ""  # the file did not end with a line end; keep it so
    bodies[start:stop] = replace_lines
    ends[start:stop] = new_ends
    return "".join(b + e for b, e in zip(bodies, ends, strict=True))


def resolve_path(block: EditBlock, editable: Sequence[str], files: Collection[str]) -> str:
    """The evolvable file a block edits, or :class:`PatchError` (see module doc)."""
    if block.path is None:
        if len(editable) == 1:
            return editable[0]
        raise PatchError(f"block {block.index} names no file, and there are {len(editable)} "
                         f"files it could edit ({', '.join(editable)})")
    path = block.path.replace("\\", "/")
    for prefix in ("./", "a/", "b/"):
        if path.startswith(prefix) and path[len(prefix):] in editable:
            path = path[len(prefix):]
    if path in editable:
        return path
    tail = [p for p in editable if p.endswith("/" + path.lstrip("/"))]
    if len(tail) == 1:
        return tail[0]
    if path in files:
        raise PatchError(f"block {block.index} edits {path}, which is read-only (the files it "
                         f"may edit: {', '.join(editable)})", Failure.OUTSIDE_MARKERS)
    raise PatchError(f"block {block.index} edits {block.path}, which is not a file it may "
                     f"edit ({', '.join(editable)})")


def apply_blocks(files: Mapping[str, str], blocks: Sequence[EditBlock],
                 editable: Sequence[str], *, tolerant: bool = True) -> dict[str, str]:
    """The whole tree after applying ``blocks`` in order (each to the result of the last).

    Raises :class:`PatchError` for a block that targets a file it may not edit,
    does not match exactly once, or changes frozen text (EVOLVE-BLOCK markers).
    """
    out = dict(files)
    for block in blocks:
        path = resolve_path(block, editable, files)
        old = out.get(path, "")
        try:
            new = apply_block(old, block.search, block.replace, tolerant=tolerant)
        except PatchError as exc:
            raise PatchError(f"block {block.index} does not apply to {path}: "
                             f"{exc.reason}", exc.failure) from None
        violation = marker_violation(path, old, new)
        if violation:
            raise PatchError(f"block {block.index} changes {violation}",
                             Failure.OUTSIDE_MARKERS)
        out[path] = new
    return out


# -- markers, conflicts, syntax -----------------------------------------------------------------
def frozen_parts(text: str) -> list[tuple[int, list[str]]] | None:
    """The frozen parts of ``text`` as (first line number, lines); None without markers."""
    if not has_markers(text):
        return None
    lines = text.split("\n")
    parts: list[tuple[int, list[str]]] = [(1, [])]
    inside = False
    for number, line in enumerate(lines, 1):
        if inside:
            if MARKER_END in line:
                inside = False
                parts.append((number, [line]))
            continue
        parts[-1][1].append(line)
        if MARKER_START in line:
            inside = True
    return parts


def marker_violation(path: str, old: str, new: str) -> str | None:
    """What ``new`` changes outside the EVOLVE-BLOCK regions of ``old`` (None: nothing).

    The answer completes "... changes <answer>", e.g. "solve.py outside its
    EVOLVE-BLOCK regions (line 12)".
    """
    before = frozen_parts(old)
    if before is None:
        return None
    after = frozen_parts(new)
    if after is None or len(after) != len(before):
        return f"the EVOLVE-BLOCK markers of {path}"
    for (first, a), (_, b) in zip(before, after, strict=True):
        if a != b:
            k = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                     min(len(a), len(b)))
            changed = a[k: k + 1] + b[k: k + 1]
            if any(MARKER_START in ln or MARKER_END in ln for ln in changed):
                return f"the EVOLVE-BLOCK markers of {path} (line {first + k})"
            return f"{path} outside its EVOLVE-BLOCK regions (line {first + k})"
    return None


def has_markers(text: str) -> bool:
    return any(MARKER_START in ln or MARKER_END in ln for ln in text.split("\n"))


def conflict_line(text: str) -> int | None:
    """The first line holding a merge conflict marker (None: no conflict left)."""
    for number, line in enumerate(text.split("\n"), 1):
        if _CONFLICT.match(line):
            return number
    return None


def syntax_error(path: str, text: str) -> str | None:
    """For a ``.py`` file, why it does not compile ("syntax error in a.py line 3: ...")."""
    if not path.endswith(".py"):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(text, path, "exec", dont_inherit=True)
    except SyntaxError as exc:
        return f"syntax error in {path} line {exc.lineno}: {exc.msg}"
    except (ValueError, RecursionError, MemoryError) as exc:
        return f"syntax error in {path}: {exc}"
    return None


# -- fenced code --------------------------------------------------------------------------------
def code_from_answer(answer: str) -> str:
    """The largest fenced code block of ``answer`` (the last of equally large ones).

    Raises :class:`PatchError` when there is none, it is empty or a fence is left open.
    """
    lines = _THINK.sub("", answer.replace("\r\n", "\n").replace("\r", "\n")).split("\n")
    blocks: list[str] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence = opening.group(1)
        j = i + 1
        while j < len(lines) and not _closes(lines[j], fence):
            j += 1
        if j == len(lines):
            raise PatchError("the code block is not closed (the answer may have been cut off)")
        blocks.append("".join(f"{ln}\n" for ln in lines[i + 1: j]))
        i = j + 1
    if not blocks:
        raise PatchError("the answer holds no fenced code block", Failure.NO_BLOCK)
    best = max(range(len(blocks)), key=lambda k: (len(blocks[k]), k))
    if not blocks[best].strip():
        raise PatchError("the code block is empty", Failure.NO_BLOCK)
    return blocks[best]


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return len(stripped) >= len(fence) and set(stripped) == {fence[0]}
