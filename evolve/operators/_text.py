"""Text helpers shared by the operators: cleaning LLM answers, cheap similarity.

The mutator LLM rarely answers with just the prompt: it adds preambles ("Sure,
here is an improved instruction:"), labels ("INSTRUCTION MUTANT:"), list
markers, quotes, markdown and sometimes several alternatives. ``clean_prompt``
reduces such an answer to one usable prompt; an empty result means the answer
held none.

Similarity is a character-trigram cosine: no model, no dependency, and good at
catching the near-copies (changed punctuation, one word swapped) that would
otherwise fill a population list with the same idea.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Sequence

#: default cap on the length of a prompt taken from an answer, in characters
MAX_PROMPT_CHARS = 800

_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.S | re.I)
_FENCE = re.compile(r"^\s*```[\w-]*\s*$")
_MARKER = re.compile(r"^\s*(?:[-*+•·–—]+|\(?\d{1,3}[.):]|\[\d{1,3}\]|\(?[a-zA-Z][.)]|#{1,6})\s+")
_LABEL = re.compile(
    r"^\s*(?:\*\*|__)?\s*(?:the\s+|my\s+|your\s+|a\s+)?"
    r"(?:(?:new|improved|better|mutated|rewritten|revised|final|updated|next|modified)\s+)*"
    r"(?:task[- ]?|mutation[- ]?)?"
    r"(?:instruction(?:\s+mutant)?|prompt|hint|mutant|answer|response|output|result|item"
    r"|version|suggestion|advice|rule)s?"
    r"(?:\s*(?:#\s*)?\d{1,3})?"
    r"(?:\s+(?:given\s+)?(?:was|is|would\s+be|could\s+be|might\s+be|should\s+be)"
    r"\s*(?:[:=]|(?=[\"“«]))"  # "The instruction was "...""
    r"|\s*(?:\*\*|__)?\s*(?:[:=]|-\s|–|—))\s*(?:\*\*|__)?\s*",
    re.I)
_PREAMBLE = re.compile(
    r"^\s*(?:sure|certainly|okay|ok|of course|absolutely|great"
    r"|here(?:'s|\s+is|\s+are|\s+you\s+go|\s+it\s+is)|below\s+(?:is|are))\b", re.I)
# section labels of our own requests that a model may echo back before its answer
_ECHO = re.compile(
    r"^\s*(?:\*\*|__)?\s*(?:original\s+instruction|instruction\s+to\s+improve|problem(?:\s+"
    r"description)?|their\s+correct\s+working-out)\s*(?:\*\*|__)?\s*:(.*)$", re.I)
# the closing sentence of our own requests, sometimes copied into the answer
_REPLY_ONLY = re.compile(r"\s*\breply with (?:the|that|it) [\w -]{1,40}? only\b[.!]?", re.I)
_INTERJECTION = re.compile(
    r"^(?:sure|certainly|okay|ok|of course|absolutely)\b[^.!?:\n]*[.!?:]\s+(?=\S)", re.I)
_QUOTES = tuple((pair[: len(pair) // 2], pair[len(pair) // 2:])  # (left, right)
                for pair in ("\"\"", "''", "``", "“”", "‘’", "«»", "**", "__"))
_WORDY = re.compile(r"\w{2,}")
_NON_WORD = re.compile(r"[\W_]+")


@functools.lru_cache(maxsize=4096)  # parents' prompts are compared with each child's
def normalise(text: str) -> str:
    """Case-folded text with runs of whitespace collapsed and edge punctuation removed."""
    return " ".join(text.casefold().split()).strip(" .,;:!?\"'`*")


def same_text(a: str, b: str) -> bool:
    """True when two prompts differ only in case, spacing or edge punctuation."""
    return normalise(a) == normalise(b)


def _unquote(text: str) -> str:
    changed = True
    while changed and len(text) >= 2:
        changed = False
        for left, right in _QUOTES:
            if (len(text) > len(left) + len(right) and text.startswith(left)
                    and text.endswith(right)):
                text = text[len(left): len(text) - len(right)].strip()
                changed = True
    return text.strip()


def _strip_line(line: str) -> str:
    line = _MARKER.sub("", line, count=1)
    previous = None
    while previous != line:  # "1. **New instruction:** text" needs several passes
        previous = line
        line = _INTERJECTION.sub("", line, count=1)
        line = _LABEL.sub("", line, count=1)
        line = _MARKER.sub("", line, count=1)
    return _unquote(line.strip())


def _is_preamble(line: str) -> bool:
    """A line that introduces the answer instead of being it ("Here is a better one:")."""
    stripped = line.strip()
    return bool(_PREAMBLE.match(stripped)) and (
        stripped.endswith((":", "!")) or len(stripped) < 40)


def cap(text: str, max_chars: int) -> str:
    """``text`` cut to at most ``max_chars``, at a sentence end if one is not too early."""
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    end = max(head.rfind(". "), head.rfind("? "), head.rfind("! "))
    if end >= max_chars // 2:
        return head[: end + 1].strip()
    space = head.rfind(" ")
    return (head[:space] if space >= max_chars // 2 else head).strip()


def clean_prompt(text: str, *, max_chars: int = MAX_PROMPT_CHARS, first_line: bool = False) -> str:
    """Reduce an LLM answer to one prompt (possibly ``""`` when it holds none).

    Drops reasoning blocks, code fences, preamble lines, bare labels and echoed
    sections of the request ("ORIGINAL INSTRUCTION: ..."; an answer that is nothing but
    one such line keeps its text); takes the
    first paragraph (or with ``first_line`` the first line; an answer that starts
    as a list counts as alternatives and yields its first item); strips labels,
    list markers and wrapping quotes; joins the lines and caps the length.
    """
    text = _THINK.sub("", text)
    lines = [ln for ln in text.replace("\r", "").split("\n") if not _FENCE.match(ln)]
    while True:
        lines = _skip_noise(lines)
        if not lines:
            return ""
        block = _first_block(lines, first_line)
        joined = " ".join(_strip_line(ln) if i == 0 else ln.strip() for i, ln in enumerate(block))
        joined = _unquote(" ".join(_REPLY_ONLY.sub("", joined).split()))
        if not joined.endswith(":"):
            return cap(joined, max_chars) if _WORDY.search(joined) else ""
        lines = lines[len(block):]  # "To solve it, do this:" introduces what follows


def _skip_noise(lines: list[str]) -> list[str]:
    """``lines`` without leading blank lines, preambles, bare labels and echoed sections."""
    lines = list(lines)
    while lines:
        echo = _ECHO.match(lines[0])
        if echo:
            lines.pop(0)
            inline = echo.group(1).strip()
            if not inline:  # the echoed section continues to a blank line
                while lines and lines[0].strip():
                    lines.pop(0)
            elif not any(ln.strip() for ln in lines):
                # the whole answer is one labelled line (a one-line grammar invites it):
                # its text is the answer; if it repeats the parent, the child is a duplicate
                return [inline]
        elif not _strip_line(lines[0]) or _is_preamble(lines[0]):
            lines.pop(0)
        else:
            break
    return lines


def _first_block(lines: list[str], first_line: bool) -> list[str]:
    """The first paragraph; only its first line for ``first_line`` or a list."""
    block: list[str] = []
    for ln in lines:
        if not ln.strip() or (block and _MARKER.match(ln)):
            break
        block.append(ln)
        if first_line or _MARKER.match(lines[0]):
            break
    return block


# -- similarity -------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4096)  # the same population prompts are compared again and again
def trigrams(text: str) -> frozenset[str]:
    """Character trigrams of the case-folded words of ``text`` (punctuation ignored)."""
    s = f" {' '.join(_NON_WORD.sub(' ', text.casefold()).split())} "
    return frozenset(s[i: i + 3] for i in range(len(s) - 2))


def cosine(a: frozenset[str], b: frozenset[str]) -> float:
    """Cosine similarity of two trigram sets: |a & b| / sqrt(|a| |b|) (set operations run
    in C, which keeps the near-duplicate filter cheap on long prompt lists)."""
    if not a or not b:
        return 0.0
    return len(a & b) / math.sqrt(len(a) * len(b))


def similarity(a: str, b: str) -> float:
    """Character-trigram cosine similarity in [0, 1] (1 for texts equal after normalising)."""
    return cosine(trigrams(a), trigrams(b))


def distinct(texts: Iterable[str], threshold: float, limit: int | None = None) -> list[int]:
    """Indices of ``texts`` kept greedily in order, skipping any text whose similarity to
    an already kept one is >= ``threshold``; stops after ``limit`` kept texts (and reads
    no further than the text after the last one kept)."""
    kept: list[int] = []
    kept_texts: list[str] = []
    for i, text in enumerate(texts):
        if limit is not None and len(kept) >= limit:
            break
        if not _WORDY.search(text):
            continue
        if any(_similarity(text, other) >= threshold for other in kept_texts):
            continue
        kept.append(i)
        kept_texts.append(text)
    return kept


@functools.lru_cache(maxsize=1 << 16)  # the population changes little between two listings
def _similarity(a: str, b: str) -> float:
    return similarity(a, b)


def numbered(items: Sequence[str], start: int = 1) -> str:
    """``items`` as a numbered list, one per line, newlines inside an item flattened."""
    return "\n".join(f"{i}. {' '.join(t.split())}" for i, t in enumerate(items, start))
