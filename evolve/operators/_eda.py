"""Estimation-of-distribution mutation: the LLM continues a list of population prompts.

``eda`` shows the population's task prompts in random order, with
near-duplicates removed (character-trigram cosine at or above
``similarity_threshold``), and asks for one more. ``eda_rank_index`` shows the
fittest distinct prompts, with the unit's mutation prompt, under a header that
calls the list *descending* by score while it is in fact *ascending* (best
last): Promptbreeder found that this framing works better than the honest one.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from archive import ArchiveIndex, Failure

from .._genome import PromptGenome
from .._schema import doc
from ._base import (
    InvalidChild,
    MutationContext,
    PromptOperator,
    Transcript,
    fitted,
    member_prompt,
)
from ._text import distinct, numbered, same_text

LEADERS = 64  # as many as the archive's leaderboard keeps: reading them is cheap


def shuffled(ids: np.ndarray, rng: np.random.Generator, head: int) -> Iterator[int]:
    """``ids`` in uniformly random order, drawn as read: ``head`` of them first (in time
    proportional to ``head``, not to ``len(ids)``), a shuffle of the rest only if read."""
    first = rng.choice(len(ids), size=min(head, len(ids)), replace=False)
    yield from ids[first].tolist()
    if len(first) < len(ids):
        rest = np.delete(ids, first)
        yield from rest[rng.permutation(len(rest))].tolist()


def best_first(view: ArchiveIndex, first: int = LEADERS) -> Iterator[int]:
    """The population's members, best training fitness first (ties: the lower id first),
    sorted as read. When the population is most of the archive (as under DGM selection),
    the archive's best ``first``, then 8 times as many, and so on, are read before the
    whole population is sorted: the members among the archive's k best are the
    population's best."""
    size, done = view.population_size(), 0
    if size * 2 > len(view):
        k = first
        while k < size:
            members = [c.id for c in view.top(k) if view.in_population(c.id)]
            yield from members[done:]
            done, k = len(members), k * 8
    ids = view.population_ids()  # built only when the leaders did not suffice
    order = np.lexsort((ids, -view.fitness_of(ids)))
    yield from ids[order[done:]].tolist()


def eda_request(listed: Sequence[str]) -> str:
    n = len(listed)
    return ("Below is a list of different instructions for the same task.\n\n"
            f"{numbered(listed)}\n\n"
            f"Write item {n + 1}: one new instruction, unlike every item above. "
            "Reply with the instruction only.")


def rank_index_request(mutation_prompt: str, listed: Sequence[str]) -> str:
    n = len(listed)
    closer = f" It resembles item {n} more than item 1." if n > 1 else ""
    return (f"{mutation_prompt}\n\n"
            "The instructions below are listed in descending order of score. "
            f"Item {n + 1} will score best of all.{closer}\n\n"
            f"{numbered(listed)}\n\n"
            f"Write item {n + 1}. Reply with the instruction only.")


@dataclass(frozen=True, kw_only=True)
class _PopulationList(PromptOperator):
    similarity_threshold: float = doc(
        "Task prompts at least this similar (character-trigram cosine, 0..1) count as "
        "near-duplicates; only one of them is listed.", 0.85)
    max_items: int = doc("Most task prompts listed in the request.", 10)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.similarity_threshold <= 1.0:
            raise ValueError("similarity_threshold must be in (0, 1]")
        if self.max_items < 1:
            raise ValueError("max_items must be at least 1")

    async def _rewrite(self, ctx: MutationContext, genome: PromptGenome, slot: int,
                       transcript: Transcript) -> str:
        listed = self._listing(ctx.view, slot, ctx.rng)
        if not listed:
            raise InvalidChild(f"{self.name}: the population has no task prompts to list",
                               transcript.exchanges)
        request, listed = fitted(lambda items: self._request(genome, items), listed,
                                 transcript.room, drop_first=self.drop_first)
        text = await transcript.ask_prompt(request, what="task prompt",
                                           max_chars=self.max_chars, first_line=True)
        if any(same_text(text, p) for p in listed):
            raise transcript.reject("the new task prompt repeats a listed one",
                                    Failure.DUPLICATE)
        return text

    #: which end of the listing gives way when the request must be shorter (the mutator's
    #: context window): the last items (False) or the first (True)
    drop_first: ClassVar[bool] = False

    @abstractmethod
    def _listing(self, view: ArchiveIndex, slot: int, rng: np.random.Generator) -> list[str]:
        """The task prompts to show, in the order shown."""

    def _distinct(self, view: ArchiveIndex, ids: Iterable[int], slot: int) -> list[str]:
        """The distinct task prompts of the members ``ids``, in that order. Members are
        read only until ``max_items`` are found: under DGM selection nothing is retired,
        and the population can be the whole archive."""
        texts: list[str] = []

        def read() -> Iterator[str]:
            for cid in ids:
                text = member_prompt(view, cid, slot)
                if text is not None:
                    texts.append(text)
                    yield text

        return [texts[i] for i in distinct(read(), self.similarity_threshold, self.max_items)]

    @abstractmethod
    def _request(self, genome: PromptGenome, listed: Sequence[str]) -> str: ...


@dataclass(frozen=True, kw_only=True)
class EDA(_PopulationList):
    """Continue a shuffled list of the population's distinct task prompts."""

    name: ClassVar[str] = "eda"

    def _listing(self, view: ArchiveIndex, slot: int, rng: np.random.Generator) -> list[str]:
        return self._distinct(view, shuffled(view.population_ids(), rng, 8 * self.max_items),
                              slot)

    def _request(self, genome: PromptGenome, listed: Sequence[str]) -> str:
        return eda_request(listed)


@dataclass(frozen=True, kw_only=True)
class EDARankIndex(_PopulationList):
    """Continue the fittest distinct task prompts, worst first, framed as best first."""

    name: ClassVar[str] = "eda_rank_index"
    drop_first: ClassVar[bool] = True  # the worst are listed first

    def _listing(self, view: ArchiveIndex, slot: int, rng: np.random.Generator) -> list[str]:
        return self._distinct(view, best_first(view), slot)[::-1]

    def _request(self, genome: PromptGenome, listed: Sequence[str]) -> str:
        return rank_index_request(genome.mutation_prompt, listed)
