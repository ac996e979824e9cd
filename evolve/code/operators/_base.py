"""The code-operator contract, and the parts every code operator shares.

A code operator turns a selected parent program (a commit whose files are
given as ``parent_files``) into a child tree. Like the prompt operators it sees
the archive only through a read-only view, draws every random choice from the
injected generator and asks the mutator LLM through a :class:`Transcript` (with
:data:`CODE_SYSTEM_PROMPT`), so every exchange is recorded exactly. It may
change only ``evolve_paths``; the other files are read-only context. An unusable
child raises :class:`InvalidChild` with a precise reason and the exchanges.

Every child is checked the same way before it is returned (:func:`tree_violation`):
it must differ from the parent, change no read-only file, keep the text outside
the EVOLVE-BLOCK regions of a file that has them, and every changed ``.py`` file
must compile and read no global name it never defines (a NameError found before
the sandbox, :mod:`._names`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from archive import ArchiveIndex, Candidate, Failure

from ..._grammar import Grammar
from ..._schema import doc
from ...operators import InvalidChild, MutatorLLM, Transcript, pick
from ...operators._base import request_room
from .._genome import CodeGenome
from ._names import name_error
from ._patch import PatchError, has_markers, marker_violation, syntax_error

#: system message of every code-mutator request
CODE_SYSTEM_PROMPT = (
    "You are an expert programmer improving a program. Follow the requested answer format "
    "exactly; write no explanations outside it.")
#: the mutation prompt used when the parent has none and the lexicon is empty
DEFAULT_CODE_MUTATION_PROMPT = "Make one small, targeted improvement to the program."

_LANGUAGES = {".py": "python", ".js": "javascript", ".ts": "typescript", ".sh": "bash",
              ".c": "c", ".h": "c", ".cpp": "cpp", ".rs": "rust", ".go": "go",
              ".java": "java", ".json": "json", ".yaml": "yaml", ".yml": "yaml", ".md": "markdown",
              ".toml": "toml"}


@dataclass(frozen=True)
class CodeMutationContext:
    """Everything a code operator may use to make one child."""

    parent: Candidate  # archive record; genome = CodeGenome dict
    parent_files: Mapping[str, str]  # the parent's text files (path -> text)
    evolve_paths: tuple[str, ...]  # files operators may change; others are read-only context
    view: ArchiveIndex  # read-only archive
    rng: np.random.Generator  # the only randomness
    llm: MutatorLLM  # the mutator LLM (chat)
    problem: str  # the task statement (benchmark description)
    feedback: str  # the parent's evaluation summary: scores, failures, stderr excerpts
    mutation_prompts: Sequence[str]  # code mutation-prompt lexicon
    hyper_mutation_prompts: Sequence[str]
    files_of: Callable[[int], Mapping[str, str]]  # text files of another candidate (for merge)
    merge_base_files: Callable[[int, int], Mapping[str, str] | None]  # common ancestor's files
    max_tokens: int = 1024
    temperature: float | None = None
    workshop: Any = None  # the sandbox workshop of agent benchmarks (for self-modification)
    #: the parent's latest children that were not valid, newest first, one line each:
    #: "operator (failure kind): reason"
    attempts: Sequence[str] = ()
    #: the mutator's context window in tokens (request and reply); None: unknown
    context_tokens: int | None = None


@dataclass(frozen=True)
class CodeMutation:
    """A child tree and how it was made."""

    files: Mapping[str, str]  # the child's WHOLE tree (unchanged files included)
    mutation_prompt: str  # the child's mutation prompt (changed by hypermutation)
    extra_parents: tuple[int, ...] = ()  # a merge's second parent
    exchanges: tuple[dict[str, Any], ...] = ()  # every LLM request/response, in order
    message: str = ""  # a one-line commit message (operator + summary)


class CodeOperator(ABC):
    """Makes one child program from the parent in ``ctx``. Options are dataclass fields."""

    name: ClassVar[str]

    @abstractmethod
    async def mutate(self, ctx: CodeMutationContext) -> CodeMutation:
        """The child, or raise :class:`InvalidChild`."""


# -- helpers shared by code operators -----------------------------------------------------------
def _request_chars(ctx: CodeMutationContext) -> float:
    """How long a request may be, in characters, to leave room for a reply of
    ``max_tokens`` (unbounded when the context window is unknown)."""
    return request_room(ctx.context_tokens, ctx.max_tokens, CODE_SYSTEM_PROMPT)


def _length(parts: Sequence[str]) -> int:
    return len(_joined(parts))


def _joined(parts: Sequence[str]) -> str:
    return "\n\n".join(p for p in parts if p)


def code_transcript(ctx: CodeMutationContext, *, constrained: bool = False) -> Transcript:
    return Transcript(ctx.llm, ctx.rng, max_tokens=ctx.max_tokens, temperature=ctx.temperature,
                      system=CODE_SYSTEM_PROMPT, constrained=constrained)


def parent_mutation_prompt(ctx: CodeMutationContext) -> str:
    """The parent's mutation prompt; without one, a random lexicon entry (or the default).

    Once children of the parent have failed (``ctx.attempts``), it is drawn uniformly from
    the parent's own and the lexicon's, so that the next request differs."""
    own = CodeGenome.from_dict(ctx.parent.genome).mutation_prompt.strip()
    choices = [own] if own else []
    if ctx.attempts or not own:
        choices += [p for p in ctx.mutation_prompts if p.strip() and p.strip() != own]
    return pick(ctx.rng, choices) if choices else DEFAULT_CODE_MUTATION_PROMPT


def editable_files(ctx: CodeMutationContext) -> list[str]:
    """The evolvable paths that exist in the parent, in ``evolve_paths`` order."""
    paths = [p for p in ctx.evolve_paths if p in ctx.parent_files]
    if not paths:
        raise InvalidChild("the parent has none of the files that may evolve ("
                           + ", ".join(ctx.evolve_paths) + ")")
    return paths


def language(path: str) -> str:
    """The code-fence language tag for ``path`` ("" when unknown)."""
    dot = path.rfind(".")
    return _LANGUAGES.get(path[dot:].lower(), "") if dot >= 0 else ""


def show_file(path: str, text: str) -> str:
    """``path`` and its text in a fenced block (a fence longer than any inside it)."""
    fence = "```"
    while fence in text:
        fence += "`"
    body = text if text.endswith("\n") or not text else text + "\n"
    return f"### {path}\n{fence}{language(path)}\n{body}{fence}"


def clip(text: str, max_chars: int) -> str:
    """``text`` cut to ``max_chars`` with a note of what was left out."""
    text = text.strip()
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars].rstrip()}\n[... {len(text) - max_chars} more characters]"


#: the failures a second answer can fix (a timeout or an LLM error cannot be argued with);
#: an operator's runtime_error is a name the child reads and never defines
REPAIRABLE = frozenset({Failure.NO_BLOCK, Failure.INVALID_OUTPUT, Failure.NO_MATCH,
                        Failure.OUTSIDE_MARKERS, Failure.SYNTAX_ERROR, Failure.DUPLICATE,
                        Failure.TRUNCATED, Failure.RUNTIME_ERROR})


def repair_request(reason: str) -> str:
    """The follow-up that sends ``reason`` (why the answer made no valid child) back."""
    return (f"Your answer could not be used: {reason}.\n\nAnswer again, in the format asked "
            "for above, with this fixed.")


def tree_violation(parent: Mapping[str, str], child: Mapping[str, str],
                   evolve_paths: Sequence[str], who: str) -> PatchError | None:
    """Why ``child`` is no valid child of ``parent``, with its kind (None: it is one).

    ``who`` names the change in the reason ("the edit", "the rewrite", "the merge").
    """
    changed = [p for p in sorted(set(parent) | set(child)) if parent.get(p) != child.get(p)]
    if not changed:
        return PatchError(f"{who} leaves every file unchanged", Failure.DUPLICATE)
    for path in changed:
        if path not in evolve_paths:
            return PatchError(f"{who} changes {path}, which is read-only",
                              Failure.OUTSIDE_MARKERS)
        if path in parent and path in child:
            violation = marker_violation(path, parent[path], child[path])
            if violation:
                return PatchError(f"{who} changes {violation}", Failure.OUTSIDE_MARKERS)
    for path in changed:
        error = syntax_error(path, child[path]) if path in child else None
        if error:
            return PatchError(error, Failure.SYNTAX_ERROR)
    for path in changed:
        error = name_error(path, parent.get(path), child[path]) if path in child else None
        if error:
            return PatchError(error, Failure.RUNTIME_ERROR)
    return None


def finish(transcript: Transcript | None, ctx: CodeMutationContext, files: Mapping[str, str],
           *, who: str, message: str, mutation_prompt: str,
           extra_parents: tuple[int, ...] = ()) -> CodeMutation:
    """The checked mutation, or raise :class:`InvalidChild` with the violation."""
    error = tree_violation(ctx.parent_files, files, ctx.evolve_paths, who)
    exchanges = tuple(transcript.exchanges) if transcript else ()
    if error:
        raise (transcript.reject(error.reason, error.failure) if transcript
               else InvalidChild(error.reason, failure=error.failure))
    return CodeMutation(dict(files), mutation_prompt, extra_parents, exchanges, message)


@dataclass(frozen=True, kw_only=True)
class LLMCodeOperator(CodeOperator):
    """Base of the code operators that show the parent's files to the mutator LLM."""

    feedback_chars: int = doc(
        "Longest evaluation feedback (scores, failures, stderr) shown to the mutator, in "
        "characters; the rest is cut.", 4000)
    context_chars: int = doc(
        "Read-only files shown to the mutator for reference, in characters in total "
        "(files are shown whole, in path order, while they fit; 0 shows none).", 4000)
    constrained: bool = doc(
        "Constrain the answer to the operator's format while the model writes it, with a "
        "grammar built for the parent (diff_edit: SEARCH text only from whole lines of the "
        "editable regions; full_rewrite: one fenced file keeping the frozen text; mutation "
        "prompts: one instruction). Servers that take no grammar are asked unconstrained.",
        True)
    attempts_shown: int = doc(
        "How many of the parent's latest children that were not valid are listed in the "
        "request, each with why it failed, so that the mutator tries something else "
        "(0: none).", 3)
    repairs: int = doc(
        "How many times an answer that makes no valid child (no block, a SEARCH text not "
        "found, frozen text changed, a syntax error, a name never defined, no change, cut "
        "at max_tokens) is sent back to the mutator with the exact error, in the same "
        "conversation, before the child is recorded invalid (0: never).", 1)

    def __post_init__(self) -> None:
        if self.feedback_chars < 0 or self.context_chars < 0:
            raise ValueError("feedback_chars and context_chars must not be negative")
        if self.repairs < 0 or self.attempts_shown < 0:
            raise ValueError("repairs and attempts_shown must not be negative")

    async def child_from_answers(self, transcript: Transcript, request: str,
                                 grammar: Grammar | None,
                                 child: Callable[[str], CodeMutation]) -> CodeMutation:
        """``child(answer)`` for the answer to ``request``; while it raises
        :class:`InvalidChild` and ``repairs`` are left, the error goes back to the mutator
        in the same conversation and ``child`` gets the new answer."""
        answer = await transcript.ask(request, grammar=grammar)
        for attempt in range(self.repairs + 1):
            try:
                return child(answer)
            except InvalidChild as exc:
                if attempt == self.repairs or exc.failure not in REPAIRABLE:
                    raise
                answer = await transcript.follow_up(repair_request(exc.reason),
                                                    grammar=grammar)
        raise AssertionError("unreachable")

    def request(self, ctx: CodeMutationContext, mutation_prompt: str, paths: Sequence[str],
                answer_format: str) -> str:
        """The instruction, the task, the feedback, the failed attempts, the files ``paths``
        to change, the other files for reference (within ``context_chars``), then
        ``answer_format``.

        When the mutator's context window is known, the request leaves room for a reply
        of ``max_tokens``: what is only listed gives way first (reference files, then the
        feedback, cut to fit, then the failed attempts); the instruction, the task, the
        files to change and the format are always sent whole."""
        room = _request_chars(ctx)
        rules = ("Change only the lines between EVOLVE-BLOCK-START and EVOLVE-BLOCK-END; "
                 "everything else, the marker lines included, must stay exactly as it is."
                 if any(has_markers(ctx.parent_files[p]) for p in paths) else "")
        head = [mutation_prompt.strip(), f"## Task\n{ctx.problem.strip()}"]
        files = ["## Files you may change\n" + "\n\n".join(
            show_file(p, ctx.parent_files[p]) for p in paths)]
        tail = [rules, answer_format]
        left = room - _length(head + files + tail)
        feedback = attempts = ""
        if ctx.attempts[: self.attempts_shown]:
            attempts = ("## Earlier changes to this version that failed (newest first)\n"
                        + "\n".join(f"- {a}" for a in ctx.attempts[: self.attempts_shown])
                        + "\nDo not repeat them: try something different.")
            if len(attempts) + 2 > left:
                attempts = ""
            left -= len(attempts) + 2
        if ctx.feedback.strip() and self.feedback_chars and left > 200:
            heading = "## How the current version did\n"
            feedback = heading + clip(ctx.feedback, min(self.feedback_chars,
                                                        left - len(heading) - 60))
            left -= len(feedback) + 2
        heading = "## Other files (for reference; leave them unchanged)\n"
        shown, budget = [], self.context_chars  # counts the files' own text
        left -= len(heading) + 2
        for path in sorted(p for p in ctx.parent_files if p not in paths):
            text, block = ctx.parent_files[path], show_file(path, ctx.parent_files[path])
            if len(text) <= budget and len(block) + 2 <= left:
                shown.append(block)
                budget -= len(text)
                left -= len(block) + 2
        others = heading + "\n\n".join(shown) if shown else ""
        return _joined([*head, feedback, attempts, *files, others, *tail])
