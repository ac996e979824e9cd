"""How far apart two genomes' texts are, shared by the collapse monitor (mean pairwise
distance) and MAP-Elites (distance to the seed): the Jaccard distance of their sets of
UTF-8 byte 3-grams, linear in the texts' length (``difflib``'s ratio is quadratic)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

_BUCKETS = 1024  # simhash: hashed 3-gram buckets (a power of two)


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


#: bits of the SimHash a candidate records (``text_descriptors``); a selector that wants
#: fewer takes its low bits
SIMHASH_BITS = 16


def text_descriptors(text: str, root_text: str) -> dict[str, float]:
    """What MAP-Elites' text descriptors read, for a genome whose archive record does not
    hold its text (a code genome: a commit), recorded on the candidate when it is made:
    ``length`` in characters, ``seed_distance`` to its root's text, and ``embedding``,
    its ``SIMHASH_BITS``-bit SimHash."""
    return {"length": len(text),
            "seed_distance": round(text_distance(text, root_text), 6),
            "embedding": simhash(gram_codes(text), SIMHASH_BITS)}


def gram_codes(text: str) -> np.ndarray:
    """Every UTF-8 byte 3-gram of ``text`` as a 24-bit number, in order (a text shorter
    than 3 bytes: one code of its own, above 2**24)."""
    raw = text.encode("utf-8", "replace")
    if len(raw) < 3:
        if not raw:
            return np.zeros(0, dtype=np.uint32)
        return np.array([(len(raw) << 24) | int.from_bytes(raw, "big")], dtype=np.uint32)
    b = np.frombuffer(raw, dtype=np.uint8).astype(np.uint32)
    return (b[:-2] << 16) | (b[1:-1] << 8) | b[2:]


@functools.lru_cache(maxsize=16)
def _planes(bits: int) -> np.ndarray:
    """``bits`` fixed ±1 hyperplanes over the buckets, from a splitmix64 hash of their
    position (the same on every machine and numpy version)."""
    x = np.arange(bits * _BUCKETS, dtype=np.uint64) + np.uint64(0x5EED)
    x = x * np.uint64(0x9E3779B97F4A7C15)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    planes = np.where((x >> np.uint64(63)) == 1, 1.0, -1.0).reshape(bits, _BUCKETS)
    planes.flags.writeable = False
    return planes


def simhash(codes: np.ndarray, bits: int) -> int:
    """The SimHash cluster (0 .. 2**bits - 1) of a text's 3-gram codes (``gram_codes``):
    the codes hashed into 1024 buckets, projected on ``bits`` fixed random ±1 hyperplanes
    (Charikar 2002), bit i the sign of plane i. Plane i is the same for every ``bits``, so
    the cluster with fewer bits is this one's low bits."""
    product = codes.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    buckets = (product >> np.uint64(64 - 10)).astype(np.intp)  # top 10 bits: 1024 buckets
    counts = np.bincount(buckets, minlength=_BUCKETS).astype(np.float64)
    signs = _planes(bits) @ counts > 0.0  # integer sums: exact in float64
    return int(sum(1 << i for i, s in enumerate(signs.tolist()) if s))
