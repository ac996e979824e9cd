"""How far apart two genomes' texts are, shared by the collapse monitor (mean pairwise
distance) and MAP-Elites (distance to the seed): the Jaccard distance of their sets of
UTF-8 byte 3-grams, linear in the texts' length (``difflib``'s ratio is quadratic)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def prompt_text(genome: Mapping[str, Any]) -> str | None:
    """A prompt genome's task prompts and context, one per line (the mutation prompt is
    left out: it does not change what a candidate answers). None for a genome with no
    ``task_prompts`` (a code genome's record holds a commit, not its files)."""
    if "task_prompts" not in genome:
        return None
    return "\n".join(str(p) for p in (*genome["task_prompts"], *genome.get("context", ())))


def gram_set(text: str) -> frozenset[bytes]:
    """The set of ``text``'s UTF-8 byte 3-grams (a text shorter than 3 bytes: its bytes,
    as its one element; an empty text: the empty set)."""
    raw = text.encode("utf-8", "replace")
    if len(raw) < 3:
        return frozenset((raw,)) if raw else frozenset()
    return frozenset([raw[i:i + 3] for i in range(len(raw) - 2)])


def gram_distance(a: frozenset[bytes], b: frozenset[bytes]) -> float:
    """1 - |A ∩ B| / |A ∪ B|, in [0, 1]: 0 for equal sets (two empty ones included), 1
    when none is shared."""
    shared = len(a & b)
    union = len(a) + len(b) - shared
    return 0.0 if union == 0 else 1.0 - shared / union


def text_distance(a: str, b: str) -> float:
    """``gram_distance`` of the two texts' 3-gram sets."""
    return gram_distance(gram_set(a), gram_set(b))
