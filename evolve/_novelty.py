"""Novelty rejection: is a new genome's text too close to one already in the archive?

Two measures. ``NoveltyFilter`` (``minhash``, no model needed): texts are compared by
the Jaccard similarity of their sets of character shingles (``SHINGLE`` characters),
estimated with MinHash signatures (``PERMUTATIONS`` hash functions); candidates for the
nearest neighbour are found by locality-sensitive hashing over bands of the signature,
so a lookup does not grow with the archive. A pair that shares no band is never
compared: with the default bands the chance of missing a neighbour is 2e-4 at a
similarity of 0.8 and below 1e-5 from 0.85. Everything is a function of the texts, so
an index rebuilt from the archive after a resume answers as the one it replaces.

``EmbeddingNoveltyFilter`` (``embedding``): the cosine similarity of the texts'
embeddings from the mutator's server, compared with every earlier one (a matrix
product). Each text is embedded in a request of its own, so the run's response cache
answers it again on a resume and the rebuilt index is the one it replaces.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from archive import ArchiveIndex, Status

from ._errors import LLMError
from ._llm_failures import stops_the_run

logger = logging.getLogger(__name__)

SHINGLE = 5
PERMUTATIONS = 64
BANDS = 16  # of PERMUTATIONS // BANDS rows each
_PRIME = (1 << 61) - 1
_MASK = (1 << 32) - 1


def _coefficients() -> tuple[np.ndarray, np.ndarray]:
    """The fixed (a, b) of the universal hashes (a * x + b) mod p, one pair per permutation
    (from a hash of their index: the same in every process, with no generator)."""
    raw = [int.from_bytes(hashlib.blake2b(f"minhash {i}".encode(), digest_size=8).digest(),
                          "little") for i in range(2 * PERMUTATIONS)]
    a = np.array([1 + r % (_PRIME - 1) for r in raw[:PERMUTATIONS]], dtype=object)
    b = np.array([r % _PRIME for r in raw[PERMUTATIONS:]], dtype=object)
    return a, b


_A, _B = _coefficients()


def shingles(text: str) -> set[int]:
    """The 32-bit hashes of ``text``'s character shingles (whitespace runs count as one
    space; a text shorter than a shingle is one shingle)."""
    text = " ".join(text.split())
    if len(text) <= SHINGLE:
        grams = {text} if text else set()
    else:
        grams = {text[i:i + SHINGLE] for i in range(len(text) - SHINGLE + 1)}
    return {int.from_bytes(hashlib.blake2b(g.encode(), digest_size=4).digest(), "little")
            for g in grams}


def signature(text: str) -> np.ndarray:
    """The MinHash signature of ``text`` (``PERMUTATIONS`` values; all at the maximum for an
    empty text)."""
    grams = shingles(text)
    if not grams:
        return np.full(PERMUTATIONS, _MASK, dtype=np.uint64)
    x = np.array(sorted(grams), dtype=object)
    hashed = (np.outer(_A, x) + _B[:, None]) % _PRIME  # exact integers: no overflow
    return (hashed.min(axis=1) & _MASK).astype(np.uint64)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """The estimated Jaccard similarity of the texts of two signatures."""
    return float(np.mean(a == b))


class NoveltyIndex:
    """Signatures of the texts added so far, keyed by any label (e.g. a slot)."""

    def __init__(self) -> None:
        self.signatures: dict[Hashable, np.ndarray] = {}
        self.order: dict[Hashable, int] = {}  # key -> when it was added
        self.buckets: dict[tuple[int, bytes], list[Hashable]] = defaultdict(list)

    def __len__(self) -> int:
        return len(self.signatures)

    def __contains__(self, key: object) -> bool:
        return key in self.signatures

    def add(self, key: Hashable, text: str) -> None:
        sig = signature(text)
        if key in self.signatures:
            raise ValueError(f"{key!r} is already in the index")
        self.signatures[key] = sig
        self.order[key] = len(self.order)
        for band in _bands(sig):
            self.buckets[band].append(key)

    def nearest(self, text: str) -> tuple[Hashable, float] | None:
        """The most similar text's key and estimated similarity, among those sharing a band
        with ``text`` (None: none does). Ties go to the key added first."""
        sig = signature(text)
        seen = {key for band in _bands(sig) for key in self.buckets.get(band, ())}
        best: tuple[Hashable, float] | None = None
        for key in sorted(seen, key=self.order.__getitem__):
            value = similarity(sig, self.signatures[key])
            if best is None or value > best[1]:
                best = (key, value)
        return best


def _bands(sig: np.ndarray) -> list[tuple[int, bytes]]:
    rows = PERMUTATIONS // BANDS
    return [(i, sig[i * rows:(i + 1) * rows].tobytes()) for i in range(BANDS)]


class ArchiveNovelty(ABC):
    """Rejects genomes at least ``threshold`` similar to one already in the archive (or
    made earlier in this execution). The index is built from the archive's candidates
    that are not invalid on first use, keyed by slot, and grows with each genome let
    through, so it holds what an uninterrupted run's would after a resume."""

    def __init__(self, threshold: float, view: ArchiveIndex,
                 text_of: Callable[[Mapping[str, Any]], str | None]) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        self.threshold = threshold
        self.view = view
        self.text_of = text_of
        self._built = False
        self._building = asyncio.Lock()

    async def check(self, genome: Mapping[str, Any], slot: int) -> tuple[int, float] | None:
        """(the slot of the nearest earlier genome, the similarity) when ``genome`` is too
        close to it; otherwise None, and ``genome`` joins the index under ``slot``."""
        text = self.text_of(genome)
        if text is None:
            return None
        await self._build()
        item = await self._item(text)
        # no await from here on: siblings made at once are compared one after another
        near = self._nearest(item)
        if near is not None and near[1] >= self.threshold:
            return near
        self._add(slot, item)
        return None

    async def _build(self) -> None:
        async with self._building:
            if self._built:
                return
            for c in self.view.candidates():
                if c.status is not Status.INVALID:
                    text = self.text_of(c.genome)
                    if text is not None:
                        self._add(c.slot, await self._item(text))
            self._built = True

    @abstractmethod
    async def _item(self, text: str) -> Any:
        """What the index keeps of a text."""

    @abstractmethod
    def _nearest(self, item: Any) -> tuple[int, float] | None:
        """The most similar earlier slot and the similarity (ties: the earliest)."""

    @abstractmethod
    def _add(self, slot: int, item: Any) -> None:
        """Keep ``item`` under ``slot`` (a slot already kept is left as it is)."""


class NoveltyFilter(ArchiveNovelty):
    """Novelty by the MinHash-estimated Jaccard similarity of character shingles."""

    def __init__(self, threshold: float, view: ArchiveIndex,
                 text_of: Callable[[Mapping[str, Any]], str | None]) -> None:
        super().__init__(threshold, view, text_of)
        self.index = NoveltyIndex()

    async def _item(self, text: str) -> str:
        return text

    def _nearest(self, item: str) -> tuple[int, float] | None:
        near = self.index.nearest(item)
        return None if near is None else (int(near[0]), near[1])  # type: ignore[call-overload]

    def _add(self, slot: int, item: str) -> None:
        if slot not in self.index:
            self.index.add(slot, item)


class EmbeddingNoveltyFilter(ArchiveNovelty):
    """Novelty by the cosine similarity of embeddings (``embed``: a text's vector, e.g.
    the mutator client's ``embed``). A text the server fails to embed for a passing
    reason (a timeout, a 5xx) is let through unchecked and not kept, with a warning; a
    failure that would recur (no such endpoint, server gone) stops the run."""

    def __init__(self, threshold: float, view: ArchiveIndex,
                 text_of: Callable[[Mapping[str, Any]], str | None],
                 embed: Callable[[str], Awaitable[Sequence[float]]]) -> None:
        super().__init__(threshold, view, text_of)
        self.embed = embed
        self.slots: list[int] = []
        self.kept: set[int] = set()
        self.matrix = np.zeros((0, 0), dtype=np.float32)  # one unit row per slot, grown x2

    async def _item(self, text: str) -> np.ndarray | None:
        try:
            vector = np.asarray(await self.embed(text), dtype=np.float32)
        except LLMError as exc:
            if stops_the_run(exc):
                raise
            logger.warning("novelty: the text could not be embedded (%s); let through "
                           "unchecked", exc)
            return None
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else vector

    def _nearest(self, item: np.ndarray | None) -> tuple[int, float] | None:
        n = len(self.slots)
        if item is None or n == 0:
            return None
        if item.shape[0] != self.matrix.shape[1]:
            raise LLMError(f"the embedding server changed its vector size "
                           f"({self.matrix.shape[1]} -> {item.shape[0]})")
        similarities = self.matrix[:n] @ item
        best = int(np.argmax(similarities))  # the first of equals: the earliest kept
        return self.slots[best], float(similarities[best])

    def _add(self, slot: int, item: np.ndarray | None) -> None:
        if item is None or slot in self.kept:
            return
        n = len(self.slots)
        if n == self.matrix.shape[0]:
            grown = np.zeros((max(16, 2 * n), item.shape[0]), dtype=np.float32)
            if n:
                grown[:n] = self.matrix[:n]
            self.matrix = grown
        self.matrix[n] = item
        self.slots.append(slot)
        self.kept.add(slot)
