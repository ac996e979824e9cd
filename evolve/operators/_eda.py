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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from archive._index import ArchiveIndex

from .._genome import PromptGenome
from .._schema import doc
from ._base import InvalidChild, MutationContext, PromptOperator, Transcript, member_prompt
from ._text import distinct, numbered, same_text


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
        text = await transcript.ask_prompt(self._request(genome, listed), what="task prompt",
                                           max_chars=self.max_chars, first_line=True)
        if any(same_text(text, p) for p in listed):
            raise transcript.reject("the new task prompt repeats a listed one")
        return text

    @abstractmethod
    def _listing(self, view: ArchiveIndex, slot: int, rng: np.random.Generator) -> list[str]:
        """The task prompts to show, in the order shown."""

    def _distinct(self, view: ArchiveIndex, ids: np.ndarray, order: np.ndarray,
                  slot: int) -> list[str]:
        """The distinct task prompts of the members ``ids[order]``, in that order. Members
        are read only until ``max_items`` are found: under DGM selection nothing is
        retired, and the population can be the whole archive."""
        texts: list[str] = []

        def read() -> Iterator[str]:
            for k in order:
                text = member_prompt(view, int(ids[k]), slot)
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
        ids = view.population_ids()
        return self._distinct(view, ids, rng.permutation(len(ids)), slot)

    def _request(self, genome: PromptGenome, listed: Sequence[str]) -> str:
        return eda_request(listed)


@dataclass(frozen=True, kw_only=True)
class EDARankIndex(_PopulationList):
    """Continue the fittest distinct task prompts, worst first, framed as best first."""

    name: ClassVar[str] = "eda_rank_index"

    def _listing(self, view: ArchiveIndex, slot: int, rng: np.random.Generator) -> list[str]:
        ids = view.population_ids()
        best_first = np.lexsort((ids, -view.fitness_of(ids)))  # ties: the lower id first
        return self._distinct(view, ids, best_first, slot)[::-1]

    def _request(self, genome: PromptGenome, listed: Sequence[str]) -> str:
        return rank_index_request(genome.mutation_prompt, listed)
