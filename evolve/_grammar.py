"""Answer grammars: the shape an operator requires of the mutator's answer.

An operator builds a :class:`Grammar` from a few node types (literal text,
character classes, sequences, alternatives, bounded repetition, references to
named rules); the LLM client sends its GBNF rendering with the request, and
llama.cpp (``grammar``) or vLLM (guided decoding) make the model unable to
write anything else. ``Grammar.matches`` is the same language in Python: the
tests check the grammars with it, and it checks answers from a server that
could not be constrained.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", '"': '\\"', "\\": "\\\\"}
_CLASS_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "]": "\\]", "\\": "\\\\",
                  "^": "\\^", "-": "\\-"}


@dataclass(frozen=True)
class Lit:
    """This text, exactly."""

    text: str


@dataclass(frozen=True)
class Chars:
    """One character of ``chars`` (with ``negate``: any character but those)."""

    chars: str
    negate: bool = False


@dataclass(frozen=True)
class Seq:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Alt:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Repeat:
    """``item`` from ``low`` to ``high`` times (``high`` None: no bound)."""

    item: Node
    low: int = 0
    high: int | None = None


@dataclass(frozen=True)
class Ref:
    """The rule called ``name``."""

    name: str


Node = Lit | Chars | Seq | Alt | Repeat | Ref


def seq(*items: Node) -> Node:
    return items[0] if len(items) == 1 else Seq(items)


def alt(*items: Node) -> Node:
    return items[0] if len(items) == 1 else Alt(items)


def opt(item: Node) -> Repeat:
    return Repeat(item, 0, 1)


#: the rest of a line: any characters but a newline, then the newline
REST_OF_LINE = seq(Repeat(Chars("\n", negate=True)), Lit("\n"))


class GrammarError(ValueError):
    """A grammar that refers to a rule it does not define, or names a rule badly."""


@dataclass(frozen=True)
class Grammar:
    """Named rules; ``root`` is the whole answer."""

    rules: Mapping[str, Node]

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", MappingProxyType(dict(self.rules)))
        if "root" not in self.rules:
            raise GrammarError("a grammar needs a 'root' rule")
        for name in self.rules:
            if not name or not all(c.isascii() and (c.isalnum() or c == "-") for c in name):
                raise GrammarError(f"rule name {name!r}: use letters, digits and '-'")
        for node in self.rules.values():
            for ref in _refs(node):
                if ref not in self.rules:
                    raise GrammarError(f"rule {ref!r} is used but not defined")

    def gbnf(self) -> str:
        """The grammar in llama.cpp's GBNF (also read by vLLM's grammar backends)."""
        return "".join(f"{name} ::= {_gbnf(node)}\n" for name, node in self.rules.items())

    def matches(self, text: str) -> bool:
        """True when ``text`` is a whole answer of this grammar."""
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 1000 + 8 * len(self.rules)))  # a rule chain nests
        try:
            return len(text) in _Matcher(self.rules, text).ends(self.rules["root"], 0)
        finally:
            sys.setrecursionlimit(limit)


def _refs(node: Node) -> list[str]:
    if isinstance(node, Ref):
        return [node.name]
    if isinstance(node, Seq | Alt):
        return [r for item in node.items for r in _refs(item)]
    if isinstance(node, Repeat):
        return _refs(node.item)
    return []


def _gbnf(node: Node) -> str:
    if isinstance(node, Lit):
        return '"' + "".join(_ESCAPES.get(c, c) for c in node.text) + '"'
    if isinstance(node, Chars):
        inner = "".join(_CLASS_ESCAPES.get(c, c) for c in node.chars)
        return f"[{'^' if node.negate else ''}{inner}]"
    if isinstance(node, Ref):
        return node.name
    if isinstance(node, Seq):
        return " ".join(_group(item) for item in node.items)
    if isinstance(node, Alt):
        return " | ".join(_gbnf(item) for item in node.items)
    if node.low == 0 and node.high == 1:
        suffix = "?"
    elif node.low == 0 and node.high is None:
        suffix = "*"
    elif node.low == 1 and node.high is None:
        suffix = "+"
    else:
        suffix = f"{{{node.low},{'' if node.high is None else node.high}}}"
    return _group(node.item, atom=True) + suffix


def _group(node: Node, atom: bool = False) -> str:
    text = _gbnf(node)
    if isinstance(node, Alt) or (atom and isinstance(node, Seq | Repeat)):
        return f"({text})"
    return text


class _Matcher:
    """The end positions each node can reach from a start position (memoised per rule)."""

    def __init__(self, rules: Mapping[str, Node], text: str) -> None:
        self.rules = rules
        self.text = text
        self.ends = functools.lru_cache(maxsize=None)(self._ends)  # type: ignore[method-assign]

    def _ends(self, node: Node, pos: int) -> frozenset[int]:
        text = self.text
        if isinstance(node, Lit):
            return frozenset({pos + len(node.text)}) if text.startswith(node.text, pos) else (
                frozenset())
        if isinstance(node, Chars):
            if pos < len(text) and (text[pos] in node.chars) != node.negate:
                return frozenset({pos + 1})
            return frozenset()
        if isinstance(node, Ref):
            return self.ends(self.rules[node.name], pos)
        if isinstance(node, Alt):
            return frozenset().union(*(self.ends(item, pos) for item in node.items))
        if isinstance(node, Seq):
            current = frozenset({pos})
            for item in node.items:
                current = frozenset().union(*(self.ends(item, p) for p in current))
                if not current:
                    break
            return current
        reached: set[int] = set()
        current, count = frozenset({pos}), 0
        while True:
            if count >= node.low:
                reached |= current
            if node.high is not None and count == node.high:
                break
            following = frozenset().union(*(self.ends(node.item, p) for p in current))
            if node.high is None and count >= node.low:
                following -= reached  # a position reached again adds nothing new
            if not following:
                break
            current, count = following, count + 1
        return frozenset(reached)
