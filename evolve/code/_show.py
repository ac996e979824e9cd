"""What ``evolve show`` adds for a code candidate: its commit, its program, and its files
or its diffs."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from archive import Candidate

from ._repo import RepoError, RunRepo, text_only

SHOWN_CHARS = 100_000  # of one file's text; `evolve checkout` writes the whole file


def show_candidate(candidate: Candidate, parents: Mapping[int, Candidate],
                   directory: Path) -> dict[str, Any]:
    """``show_code`` with the repository of the run in ``directory`` (a run without one
    still shows everything the archive knows, and says why the git side is missing)."""
    try:
        repo = RunRepo.for_run(directory)
    except RepoError as exc:
        return show_code(candidate, parents, None, str(exc))
    with repo:
        return show_code(candidate, parents, repo)


def show_code(candidate: Candidate, parents: Mapping[int, Candidate], repo: RunRepo | None,
              no_repo: str = "the run has no git repository") -> dict[str, Any]:
    """The git side of a code candidate, to merge into ``show``'s dict.

    ``program`` maps the path of each text (UTF-8) file of the candidate's commit to its
    text, cut after ``SHOWN_CHARS`` characters with a note; ``diffs`` maps each parent id
    to git's diff from the parent's commit to this one; a founder (no parents) lists its
    ``files`` (binary ones included) with their sizes in bytes instead. ``repo_errors``
    maps "commit", "files" (the commit's files, which the program is read from too) or
    "parent #<id>" to why that part could not be read (no repository, a commit missing
    from it, a parent without a commit), so that ``show`` still reports everything else.
    ``parents`` maps the parent ids to their candidates; ``no_repo`` is the reason given
    when ``repo`` is None.
    """
    commit = candidate.genome.get("commit")
    shown: dict[str, Any] = {"commit": commit, "program": {}, "files": None, "diffs": {},
                             "repo_errors": {}}
    errors = shown["repo_errors"]
    if not commit:
        errors["commit"] = "this candidate has no commit (it was not materialised)"
        return shown
    if repo is None:
        errors["commit"] = no_repo
        return shown
    try:
        files = repo.files(commit)
    except RepoError as exc:
        errors["files"] = str(exc)
    else:
        shown["program"] = {path: _cut(text) for path, text in text_only(files, commit).items()}
        if not candidate.parent_ids:
            shown["files"] = [{"path": path, "size": len(data)} for path, data in files.items()]
    for pid in candidate.parent_ids:
        parent_commit = parents[pid].genome.get("commit") if pid in parents else None
        if not parent_commit:
            errors[f"parent #{pid}"] = "it has no commit"
            continue
        try:
            shown["diffs"][pid] = repo.diff(commit, parent_commit)
        except RepoError as exc:
            errors[f"parent #{pid}"] = str(exc)
    return shown


def _cut(text: str) -> str:
    if len(text) <= SHOWN_CHARS:
        return text
    return (text[:SHOWN_CHARS] + f"\n... ({len(text) - SHOWN_CHARS} more characters; "
            "evolve checkout writes the whole file)\n")
