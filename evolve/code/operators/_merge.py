"""``merge``: crossover of two programs by a three-way merge, conflicts resolved by the LLM.

The donor is drawn fitness-proportionally among the other population members
whose commit differs from the parent's (as the prompt ``crossover`` draws its
donor). Each evolvable file is merged with the common ancestor's version as the
base (``merge_base_files``; None, no common ancestor known, makes the parent's
files the base):

- a file the donor left as in the base (or equal to the parent's) stays the parent's;
- a file only the donor changed becomes the donor's (a donor deletion deletes it);
- a file changed on both sides goes through ``git merge-file -p`` (temporary files,
  no repository, no user git config); a file deleted on one side and changed on
  the other keeps the parent's version.

A clean merge asks the LLM nothing. Each conflicted file (with ``<<<<<<< parent``
/ ``=======`` / ``>>>>>>> donor`` markers) is given to the mutator in one exchange,
which answers with the whole resolved file in a fenced code block; with
``constrained`` (the default) the server makes the model write one fenced file that
keeps the parent's text outside the EVOLVE-BLOCK regions exactly and holds no
conflict-marker line (``_grammars.resolution_grammar``). A resolution that still
holds conflict markers, changes frozen EVOLVE-BLOCK text or does not compile makes
the child invalid, as does a merge that leaves the parent unchanged or whose
evolvable files are all the donor's (a fast-forward: the parent is the donor's
ancestor, or the base is the parent's files — the child would only repeat the
donor). The donor is recorded as the second parent.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from archive import Failure

from ..._schema import doc
from ...operators import InvalidChild, NotApplicable, Transcript, draw_member
from ._base import (
    CodeMutation,
    CodeMutationContext,
    CodeOperator,
    code_transcript,
    finish,
    language,
    parent_mutation_prompt,
    show_file,
)
from ._grammars import resolution_grammar
from ._patch import PatchError, code_from_answer, conflict_line

LABELS = ("parent", "base", "donor")


def merge_file(ours: str, base: str, theirs: str, *, diff3: bool = False) -> tuple[str, int]:
    """``git merge-file -p`` of three texts: (merged text, number of conflicts).

    Raises :class:`PatchError` when git cannot merge them (e.g. binary content)
    and ``RuntimeError`` when git is missing.
    """
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
           "LC_ALL": "C"}
    with tempfile.TemporaryDirectory(prefix="cladeforge-merge-") as tmp:
        names = []
        for label, text in zip(LABELS, (ours, base, theirs), strict=True):
            path = Path(tmp) / label
            path.write_bytes(text.encode("utf-8", "surrogateescape"))
            names.append(str(path))
        command = ["git", "merge-file", "-p", *(["--diff3"] if diff3 else []),
                   "-L", LABELS[0], "-L", LABELS[1], "-L", LABELS[2], *names]
        try:
            proc = subprocess.run(command, capture_output=True, cwd=tmp, env=env, check=False,
                                  timeout=120)
        except FileNotFoundError:
            raise RuntimeError("the merge operator needs git on PATH") from None
    if not 0 <= proc.returncode <= 127:
        message = proc.stderr.decode("utf-8", "replace").replace(tmp + os.sep, "").strip()
        message = message.removeprefix("error: ") or f"exit {proc.returncode}"
        raise PatchError(f"git merge-file failed: {message}")
    return proc.stdout.decode("utf-8", "surrogateescape"), proc.returncode


def resolve_request(path: str, text: str, problem: str) -> str:
    return (f"Two versions of {path} were merged, and some of their changes conflict. Each "
            "conflict is marked:\n"
            "<<<<<<< parent\n(the lines of the version being improved)\n=======\n"
            "(the lines of another good version)\n>>>>>>> donor\n\n"
            f"## Task\n{problem.strip()}\n\n"
            f"## {path} with conflicts\n{show_file(path, text).split(chr(10), 1)[1]}\n\n"
            "## Answer format\n"
            "Resolve every conflict so that the program keeps the best ideas of both versions, "
            "and remove all conflict markers. Answer with the whole resolved file in one "
            f"```{language(path)} code block, and nothing else.")


@dataclass(frozen=True, kw_only=True)
class Merge(CodeOperator):
    """Three-way merge with a fitness-proportionally drawn donor; the LLM resolves conflicts."""

    name: ClassVar[str] = "merge"

    resolve_conflicts: bool = doc(
        "Ask the mutator to resolve conflicted files; off, a conflict makes the child "
        "invalid.", True)
    max_conflicted_files: int = doc(
        "Most conflicted files given to the mutator; a merge with more is invalid.", 3)
    diff3: bool = doc(
        "Show the common ancestor's lines in each conflict too (git's diff3 style).", False)
    constrained: bool = doc(
        "Constrain each conflict resolution, while the model writes it, to one fenced file "
        "that keeps the parent's text outside the EVOLVE-BLOCK regions exactly and holds no "
        "conflict-marker line. Servers that take no grammar are asked unconstrained.", True)

    def __post_init__(self) -> None:
        if self.max_conflicted_files < 1:
            raise ValueError("max_conflicted_files must be at least 1")

    async def mutate(self, ctx: CodeMutationContext) -> CodeMutation:
        donor = self._donor(ctx)
        donor_files = ctx.files_of(donor)
        base = ctx.merge_base_files(ctx.parent.id, donor)
        base_files = ctx.parent_files if base is None else base
        transcript = code_transcript(ctx, constrained=self.constrained)
        files, conflicted = await self._merge(ctx, donor_files, base_files, donor)
        if conflicted and not self.resolve_conflicts:
            raise InvalidChild(f"the merge with #{donor} has conflicts in "
                               f"{', '.join(conflicted)} (resolve_conflicts is off)")
        if len(conflicted) > self.max_conflicted_files:
            raise InvalidChild(f"the merge with #{donor} has conflicts in {len(conflicted)} "
                               f"files (at most {self.max_conflicted_files} are resolved)")
        if not conflicted and files != ctx.parent_files and all(
                files.get(p) == donor_files.get(p) for p in ctx.evolve_paths):
            raise InvalidChild(f"the merge with #{donor} is a copy of the donor (the parent "
                               "holds nothing the donor lacks)", failure=Failure.DUPLICATE)
        for path, text in conflicted.items():
            files[path] = await self._resolve(ctx, transcript, path, text)
        resolved = f", {len(conflicted)} conflicted file{'s' if len(conflicted) != 1 else ''} " \
                   "resolved by the LLM" if conflicted else ""
        merged = sorted(p for p in set(files) | set(ctx.parent_files)
                        if files.get(p) != ctx.parent_files.get(p))
        return finish(transcript, ctx, files, who=f"the merge with #{donor}",
                      mutation_prompt=parent_mutation_prompt(ctx), extra_parents=(donor,),
                      message=f"{self.name}: #{ctx.parent.id} with #{donor} "
                              f"({', '.join(merged) or 'no change'}{resolved})")

    def _donor(self, ctx: CodeMutationContext) -> int:
        """A population member other than the parent (and not of its commit), by fitness."""
        own = ctx.parent.genome.get("commit")
        donor = draw_member(ctx.view, ctx.rng, lambda cid: cid != ctx.parent.id and (
            ctx.view.get(cid).genome.get("commit") != own))
        if donor is None:
            raise NotApplicable("merge: no other population member (with a different commit) "
                                "to merge with")
        return donor

    async def _merge(self, ctx: CodeMutationContext, donor: Mapping[str, str],
                     base: Mapping[str, str], donor_id: int
                     ) -> tuple[dict[str, str], dict[str, str]]:
        """The merged tree (conflicted files still the parent's) and the conflicted texts."""
        files = dict(ctx.parent_files)
        conflicted: dict[str, str] = {}
        for path in ctx.evolve_paths:
            ours, theirs, old = ctx.parent_files.get(path), donor.get(path), base.get(path)
            if theirs == ours or theirs == old:
                continue
            if ours == old:  # only the donor changed it
                if theirs is None:
                    files.pop(path, None)
                else:
                    files[path] = theirs
                continue
            if ours is None or theirs is None:
                continue  # deleted on one side, changed on the other: keep the parent's
            try:
                text, conflicts = await asyncio.to_thread(
                    merge_file, ours, old or "", theirs, diff3=self.diff3)
            except PatchError as exc:
                raise InvalidChild(f"the merge with #{donor_id} failed for {path}: "
                                   f"{exc.reason}") from None
            if conflicts:
                conflicted[path] = text
            else:
                files[path] = text
        return files, conflicted

    async def _resolve(self, ctx: CodeMutationContext, transcript: Transcript, path: str,
                       text: str) -> str:
        grammar = (resolution_grammar(path, ctx.parent_files[path], language(path))
                   if self.constrained else None)
        answer = await transcript.ask(resolve_request(path, text, ctx.problem), grammar=grammar)
        try:
            code = code_from_answer(answer)
        except PatchError as exc:
            raise transcript.reject(f"the resolution of {path}: {exc.reason}",
                                    exc.failure) from None
        line = conflict_line(code)
        if line is not None:
            raise transcript.reject(f"the resolution of {path} still holds a conflict marker "
                                    f"(line {line})")
        return code
