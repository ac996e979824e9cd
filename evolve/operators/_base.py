"""The operator contract, and the parts every operator shares.

An operator turns a selected parent into a child genome. It sees the archive
only through a read-only :class:`~archive.ArchiveIndex`, draws every random
choice from the injected ``numpy.random.Generator`` and talks to the mutator
LLM only through a :class:`Transcript`, which derives each request's seed from
that generator and records the exact request and response. A child that
cannot be used (empty answer, unchanged copy, nothing to work from) is
reported by raising :class:`InvalidChild` carrying the reason and the
exchanges made so far, so an invalid child is still fully documented.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from archive import ArchiveIndex, Candidate, Failure

from .._errors import LLMRejectedError, LLMResponseError
from .._genome import PromptGenome
from .._grammar import Chars, Grammar, Repeat, seq
from .._schema import doc
from ..llm._types import Completion
from ._text import MAX_PROMPT_CHARS, clean_prompt, same_text

#: system message of every mutator request
SYSTEM_PROMPT = (
    "You write and improve instructions for a language model. "
    "Answer with the requested text only: no explanations, no preamble."
)
_SEED_BOUND = 2**31 - 1
#: characters per token assumed when sizing a request: few enough for code under the small
#: models' tokenizers, so that a request sized with it fits (it errs on the short side)
CHARS_PER_TOKEN = 3
#: characters always left free in the context window (the chat template's own tokens)
TEMPLATE_CHARS = 300


def request_room(context_tokens: int | None, max_tokens: int | None, system: str) -> float:
    """How long a request may be, in characters, to leave room for a reply of
    ``max_tokens`` in a context window of ``context_tokens`` (unbounded when unknown)."""
    if context_tokens is None:
        return float("inf")
    return ((context_tokens - (max_tokens or 0)) * CHARS_PER_TOKEN - len(system)
            - TEMPLATE_CHARS)


def fitted(build: Any, items: Sequence[str], room: float, *, drop_first: bool = False
           ) -> tuple[str, list[str]]:
    """``build(items)`` with items left out (the last ones, or with ``drop_first`` the first
    ones) until the request is at most ``room`` characters; one item is always kept."""
    kept = list(items)
    request = build(kept)
    while len(request) > room and len(kept) > 1:
        kept = kept[1:] if drop_first else kept[:-1]
        request = build(kept)
    return request, kept


def attempts_note(attempts: Sequence[str]) -> str:
    """The paragraph listing earlier attempts from the parent that did not pay off."""
    if not attempts:
        return ""
    return ("Earlier attempts from this instruction that did not pay off (newest first):\n"
            + "\n".join(f"- {a}" for a in attempts)
            + "\nDo not repeat them: write something different.")


class MutatorLLM(Protocol):
    """What operators need from an LLM client (``evolve.llm.LLMClient`` provides it)."""

    async def chat(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
                   temperature: float | None = None, seed: int | None = None,
                   stop: list[str] | None = None, grammar: str | None = None) -> Completion: ...


@dataclass(frozen=True)
class MutationContext:
    """Everything an operator may use to make one child."""

    parent: Candidate  # the selected parent; its genome is a PromptGenome dict
    view: ArchiveIndex  # read-only archive
    rng: np.random.Generator  # the only source of randomness
    llm: MutatorLLM
    problem: str  # the problem description (the benchmark's description)
    thinking_styles: Sequence[str]
    mutation_prompts: Sequence[str]
    hyper_mutation_prompts: Sequence[str]
    correct_workings: Sequence[tuple[str, str]]  # (question, output) the parent got right
    max_tokens: int = 256
    temperature: float | None = None
    #: what was already tried from the parent and did not pay off, newest first, one line
    #: each (children not valid, with why; children that scored below the parent)
    attempts: Sequence[str] = ()
    #: the mutator's context window in tokens (request and reply); None: unknown
    context_tokens: int | None = None


@dataclass(frozen=True)
class Mutation:
    """A child genome and how it was made."""

    genome: PromptGenome
    extra_parents: tuple[int, ...] = ()  # parents besides the selected one (crossover donor)
    exchanges: tuple[dict[str, Any], ...] = ()  # every LLM request/response, in order


class InvalidChild(Exception):
    """The child is unusable; ``reason`` says why, ``failure`` its kind, ``exchanges`` what
    was asked on the way."""

    def __init__(self, reason: str, exchanges: Sequence[dict[str, Any]] = (),
                 failure: Failure = Failure.INVALID_OUTPUT) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exchanges = tuple(exchanges)
        self.failure = failure


class Operator(ABC):
    """Makes one child from the parent in ``ctx``. Options are dataclass fields."""

    name: ClassVar[str]

    @abstractmethod
    async def mutate(self, ctx: MutationContext) -> Mutation:
        """The child, or raise :class:`InvalidChild`."""


class Transcript:
    """The mutator LLM as one mutation sees it: seeded from the rng, every exchange kept.

    ``system`` is the system message of every request (the code operators use their own).
    With ``constrained``, ``ask_prompt`` constrains each answer to one instruction (a
    grammar the server enforces while the model writes, when it takes one).
    """

    def __init__(self, llm: MutatorLLM, rng: np.random.Generator, *, max_tokens: int | None,
                 temperature: float | None, system: str = SYSTEM_PROMPT,
                 constrained: bool = False, note: str = "",
                 context_tokens: int | None = None) -> None:
        self.llm = llm
        self.rng = rng
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.system = system
        self.constrained = constrained
        self.note = note  # added to each task-prompt request while it fits (``ask_prompt``)
        self.room = request_room(context_tokens, max_tokens, system)
        self.exchanges: list[dict[str, Any]] = []
        self._conversation: list[dict[str, str]] = []  # the last one, its answer included

    @classmethod
    def of(cls, ctx: MutationContext, *, constrained: bool = False,
           note: str = "") -> Transcript:
        return cls(ctx.llm, ctx.rng, max_tokens=ctx.max_tokens, temperature=ctx.temperature,
                   constrained=constrained, note=note, context_tokens=ctx.context_tokens)

    async def ask(self, request: str, *, stop: list[str] | None = None,
                  system: str | None = None, grammar: Grammar | None = None) -> str:
        """Send ``request`` as the user message and return the answer text.

        ``system`` replaces the transcript's system message for this request only;
        ``grammar`` constrains the answer (its GBNF is recorded with the request); a
        server that refuses the grammar is asked again without it (both exchanges are
        recorded). A server answer that is no usable completion becomes an
        :class:`InvalidChild` (with the exchanges so far); other LLM errors propagate.
        """
        messages = [{"role": "system", "content": self.system if system is None else system},
                    {"role": "user", "content": request}]
        return await self._converse(messages, stop, grammar)

    async def follow_up(self, request: str, *, grammar: Grammar | None = None) -> str:
        """Send ``request`` in the conversation of the last ``ask`` (after its answer), e.g.
        the exact error that made the answer unusable; the exchange is marked ``repair``
        with its number (1 for the first)."""
        if not self._conversation:
            raise RuntimeError("follow_up needs an earlier ask")
        messages = [*self._conversation, {"role": "user", "content": request}]
        text = await self._converse(messages, None, grammar)
        self.exchanges[-1]["repair"] = sum(1 for ex in self.exchanges if "repair" in ex) + 1
        return text

    async def _converse(self, messages: list[dict[str, str]], stop: list[str] | None,
                        grammar: Grammar | None) -> str:
        seed = int(self.rng.integers(_SEED_BOUND))
        gbnf = grammar.gbnf() if grammar is not None else None
        try:
            completion = await self._send(messages, seed, stop, gbnf)
        except LLMRejectedError as exc:
            if gbnf is None:
                raise
            # the server refused the grammar (its own limits): ask again unconstrained
            self.exchanges[-1]["grammar_refused"] = str(exc)
            completion = await self._send(messages, seed, stop, None)
        self._conversation = [*messages, {"role": "assistant", "content": completion.text}]
        return completion.text

    async def _send(self, messages: list[dict[str, str]], seed: int, stop: list[str] | None,
                    gbnf: str | None) -> Completion:
        """One request, recorded as an exchange whatever comes of it."""
        params: dict[str, Any] = {"max_tokens": self.max_tokens,
                                  "temperature": self.temperature, "seed": seed, "stop": stop}
        if gbnf is not None:
            params["grammar"] = gbnf
        try:
            completion = await self.llm.chat(
                [dict(m) for m in messages], max_tokens=self.max_tokens,
                temperature=self.temperature, seed=seed, stop=stop, grammar=gbnf)
        except (LLMResponseError, LLMRejectedError) as exc:
            self.exchanges.append({"messages": messages, "params": params, "response": None,
                                   "error": str(exc), "cached": False,
                                   "prompt_tokens": 0, "completion_tokens": 0})
            if isinstance(exc, LLMResponseError):
                raise self.reject(f"mutator LLM gave no usable answer: {exc}",
                                  Failure.LLM_ERROR) from exc
            raise
        self.exchanges.append({
            "messages": messages, "params": params, "response": completion.text,
            "cached": completion.cached, "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "finish_reason": completion.finish_reason,
        })
        return completion

    async def ask_prompt(self, request: str, *, what: str = "prompt",
                         max_chars: int = MAX_PROMPT_CHARS, first_line: bool = False,
                         system: str | None = None) -> str:
        """Ask, and clean the answer into one prompt; an answer without one is rejected.

        A request for a task prompt ends with the transcript's ``note`` (earlier attempts)
        when the two fit in the context window together."""
        grammar = instruction_grammar(max_chars) if self.constrained else None
        if what == "task prompt" and self.note and (
                len(request) + len(self.note) + 2 <= self.room):
            request = f"{request}\n\n{self.note}"
        text = clean_prompt(await self.ask(request, system=system, grammar=grammar),
                            max_chars=max_chars, first_line=first_line)
        if not text:
            raise self.reject(f"the mutator's answer held no usable {what}", Failure.NO_BLOCK)
        return text

    def reject(self, reason: str, failure: Failure = Failure.INVALID_OUTPUT) -> InvalidChild:
        """The exception for an unusable child (the last exchange is marked rejected).

        When the last answer was cut at ``max_tokens``, the cut is what made it unusable:
        the failure is ``truncated`` and the reason says so."""
        last = self.exchanges[-1] if self.exchanges else {}
        if last.get("finish_reason") == "length" and failure is not Failure.LLM_ERROR:
            failure = Failure.TRUNCATED
            reason = f"the reply was cut at max_tokens ({self.max_tokens}): {reason}"
        if last and "rejected" not in last:
            last["rejected"] = reason
        return InvalidChild(reason, self.exchanges, failure)

    def finish(self, parent: PromptGenome, child: PromptGenome,
               extra_parents: tuple[int, ...] = ()) -> Mutation:
        """The mutation, unless ``child`` is an unchanged copy of ``parent``."""
        if not genome_changed(parent, child):
            raise self.reject("the child is an unchanged copy of its parent", Failure.DUPLICATE)
        return Mutation(child, extra_parents, tuple(self.exchanges))


# -- helpers shared by operators ---------------------------------------------------------------
def instruction_grammar(max_chars: int) -> Grammar:
    """One instruction on one line, at most ``max_chars`` characters, starting with neither
    a space, a quote, a list mark nor a heading mark (no preamble to cut off)."""
    first = Chars(" \t\n\"'`*#>-", negate=True)
    return Grammar({"root": seq(first, Repeat(Chars("\n", negate=True), 0, max_chars - 1))})


def parent_genome(ctx: MutationContext) -> PromptGenome:
    return PromptGenome.from_dict(ctx.parent.genome)


def genome_changed(a: PromptGenome, b: PromptGenome) -> bool:
    """False when the genomes differ at most in case, spacing or edge punctuation."""
    return (len(a.task_prompts) != len(b.task_prompts)
            or not all(same_text(x, y) for x, y in zip(a.task_prompts, b.task_prompts,
                                                       strict=True))
            or not same_text(a.mutation_prompt, b.mutation_prompt)
            or a.context != b.context)


def pick(rng: np.random.Generator, items: Sequence[Any]) -> Any:
    """One item of a non-empty sequence, uniformly."""
    return items[int(rng.integers(len(items)))]


def member_prompt(view: ArchiveIndex, cid: int, slot: int) -> str | None:
    """Candidate ``cid``'s task prompt at ``slot`` (its last one if it has fewer; None if
    it has none)."""
    prompts = view.get(cid).genome.get("task_prompts")
    return str(prompts[slot if slot < len(prompts) else -1]) if prompts else None


@dataclass(frozen=True, kw_only=True)
class PromptOperator(Operator):
    """Base of the operators that rewrite task prompts with the mutator LLM.

    ``mutate`` lets ``_prepare`` change the genome first (hypermutation makes a new
    mutation prompt there), then rewrites one task prompt chosen at random (or all
    with ``every_prompt``) with ``_rewrite``.
    """

    max_chars: int = doc(
        "Longest task prompt kept from an answer, in characters (longer ones are cut).",
        MAX_PROMPT_CHARS)
    every_prompt: bool = doc(
        "With several task prompts per unit, rewrite all of them instead of one chosen "
        "at random.", False)
    constrained: bool = doc(
        "Constrain each answer, while the model writes it, to one instruction of at most "
        "max_chars characters on one line, with no quote, list mark or heading before it "
        "(on servers that take a grammar; others are asked unconstrained).", True)
    attempts_shown: int = doc(
        "How many of the parent's latest children that did not pay off (not valid, with "
        "why, or scored below the parent) are listed in each request for a task prompt, so "
        "that the mutator writes something else (0: none).", 3)

    def __post_init__(self) -> None:
        if self.max_chars < 20:
            raise ValueError("max_chars must be at least 20")
        if self.attempts_shown < 0:
            raise ValueError("attempts_shown must not be negative")

    async def mutate(self, ctx: MutationContext) -> Mutation:
        parent = parent_genome(ctx)
        transcript = Transcript.of(ctx, constrained=self.constrained,
                                   note=attempts_note(ctx.attempts[: self.attempts_shown]))
        genome = await self._prepare(ctx, parent, transcript)
        n = len(genome.task_prompts)
        slots = range(n) if self.every_prompt else [int(ctx.rng.integers(n))]
        prompts = list(genome.task_prompts)
        for slot in slots:
            prompts[slot] = await self._rewrite(ctx, genome, slot, transcript)
        child = PromptGenome(tuple(prompts), genome.mutation_prompt, genome.context)
        return transcript.finish(parent, child)

    async def _prepare(self, ctx: MutationContext, genome: PromptGenome,
                       transcript: Transcript) -> PromptGenome:
        """The genome whose task prompts get rewritten (default: the parent's)."""
        return genome

    @abstractmethod
    async def _rewrite(self, ctx: MutationContext, genome: PromptGenome, slot: int,
                       transcript: Transcript) -> str:
        """The new task prompt for ``slot`` (clean, non-empty) or raise InvalidChild."""

