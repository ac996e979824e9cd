"""The run's own git repository: a code candidate is a commit, its parents are the commit's.

``RunRepo`` wraps a *bare* repository at ``<run_dir>/repo`` (candidates never need a
work tree). Commits are written with gitpython's object database (blobs, trees and
commits hashed and stored as loose objects, no subprocess, no index), with a fixed
author and committer and the caller's timestamp, so the same files, parents, message
and timestamp always give the same commit sha: a replayed generation makes the same
commits.

Every candidate's commit is kept reachable by the ref ``refs/candidates/<id>``. The
archive is the truth and is written *after* the git objects, so a crash in between
leaves a commit (and perhaps a ref) with no candidate; ``reconcile`` makes the refs
agree with the archive again on resume.

A ``RunRepo`` is not safe for concurrent use from several threads at once (gitpython
keeps one ``git cat-file`` process per repository); its methods take an internal
lock, so calls from ``asyncio.to_thread`` workers are serialised rather than mixed.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import git
from gitdb import IStream

from sandboxes import job_files_problem, write_files

from .._errors import CladeforgeError

logger = logging.getLogger(__name__)

#: the repository's directory inside a run directory
REPO_DIR = "repo"
#: author and committer of every candidate commit
IDENTITY = b"Cladeforge <cladeforge@localhost>"
REF_PREFIX = "refs/candidates/"
#: most directory levels of a committed file (``_write_tree`` recurses once per level)
MAX_PATH_PARTS = 256

_SHA = re.compile(r"[0-9a-f]{40}")
_NULL_SHA = "0" * 40
_FILE_MODE = b"100644"
_TREE_MODE = b"40000"
# git's own settings would change diff output (prefixes, colours, renames): ignore them
_GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0"}


class RepoError(CladeforgeError):
    """The run's git repository is missing, broken, or lacks an object it should have."""


@dataclass(frozen=True)
class Reconciled:
    """What ``RunRepo.reconcile`` changed, by candidate id (each sorted ascending).

    ``created``: refs re-created for candidates whose commit exists but whose ref was
    missing. ``repointed``: refs that pointed at another commit than the archive's and
    now point at the archive's. ``removed``: refs of ids the archive has no candidate
    for (a crash between the git commit and the archive write), or of candidates whose
    commit is missing. ``missing``: candidates whose commit object is not in the
    repository (the caller marks them failed).
    """

    created: tuple[int, ...] = ()
    repointed: tuple[int, ...] = ()
    removed: tuple[int, ...] = ()
    missing: tuple[int, ...] = ()

    @property
    def changed(self) -> bool:
        """True if any ref was written or deleted."""
        return bool(self.created or self.repointed or self.removed)


class RunRepo:
    """A run's bare git repository of candidate commits. Open it with ``RunRepo.open``."""

    def __init__(self, path: Path, repo: git.Repo) -> None:
        self.path = path
        self._repo = repo
        self._lock = threading.RLock()

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, create: bool = False) -> RunRepo:
        """Open the repository at ``path``.

        ``create=True`` initialises a bare repository there if ``path`` does not exist
        or is an empty directory; an existing repository is opened as it is. Raises
        ``RepoError`` if ``path`` is missing (and ``create`` is false) or is not a git
        repository.
        """
        path = Path(path)
        fresh = create and (not path.exists() or (path.is_dir() and not any(path.iterdir())))
        try:
            repo = git.Repo.init(path, bare=True) if fresh else git.Repo(path)
        except git.NoSuchPathError:
            raise RepoError(f"{path} does not exist: the run has no git repository for code "
                            f"candidates (it is created by a code run)") from None
        except git.InvalidGitRepositoryError:
            raise RepoError(f"{path} is not a git repository; move it away so that the run's "
                            f"repository can live there") from None
        repo.git.update_environment(**_GIT_ENV)
        if fresh:
            with repo.config_writer() as config:
                config.set_value("gc", "auto", 0)  # never prune behind the archive's back
            logger.debug("created the run repository %s", path)
        return cls(path, repo)

    @classmethod
    def for_run(cls, run_dir: str | Path, create: bool = False) -> RunRepo:
        """The repository of the run in ``run_dir`` (``<run_dir>/repo``)."""
        return cls.open(Path(run_dir) / REPO_DIR, create=create)

    def copy_to(self, path: str | Path) -> RunRepo:
        """A copy of this repository (objects and refs) at ``path``, which must not exist;
        for forks: copy, then ``reconcile`` with the fork's archive."""
        path = Path(path)
        if path.exists():
            raise RepoError(f"cannot copy the repository to {path}: it already exists")
        with self._lock:
            shutil.copytree(self.path, path, symlinks=True)
        return RunRepo.open(path)

    def close(self) -> None:
        """Stop the git processes gitpython keeps running for this repository."""
        self._repo.close()

    def __enter__(self) -> RunRepo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunRepo({str(self.path)!r})"

    # -- writing ---------------------------------------------------------------------------
    def commit(self, files: Mapping[str, str | bytes], parents: Sequence[str], message: str,
               timestamp: int) -> str:
        """Commit ``files`` as the child's whole tree; returns the commit's sha.

        ``files`` maps relative paths ("pkg/mod.py"; "/" separates directories) to
        contents (``str`` is stored as UTF-8); every file gets mode 100644. A path must
        be relative, without empty, ".", ".." or ".git" parts, backslashes or NUL.
        ``parents`` are the parents' commit shas (none for a founder, two for a merge),
        ``timestamp`` the author and committer time in seconds since the epoch (UTC).
        The same arguments always give the same sha.
        """
        tree = _nest(files)
        if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
            raise RepoError(f"commit timestamp must be a non-negative int, not {timestamp!r}")
        with self._lock:
            parent_shas = [self._commit(p).hexsha for p in parents]
            tree_sha = self._write_tree(tree)
            lines = [b"tree " + tree_sha.encode()]
            lines += [b"parent " + p.encode() for p in parent_shas]
            stamp = b" %d +0000" % timestamp
            lines += [b"author " + IDENTITY + stamp, b"committer " + IDENTITY + stamp]
            text = message if message.endswith("\n") else message + "\n"
            raw = b"\n".join(lines) + b"\n\n" + text.encode("utf-8")
            sha = self._store(b"commit", raw)
        logger.debug("commit %s (parents %s)", sha, parent_shas)
        return sha

    def _store(self, kind: bytes, data: bytes) -> str:
        stream = self._repo.odb.store(IStream(kind, len(data), io.BytesIO(data)))
        return stream.hexsha.decode()

    def _write_tree(self, node: Mapping[str, object]) -> str:
        entries: list[tuple[bytes, bytes, bytes]] = []  # (sort key, mode, name), sha below
        shas: dict[bytes, str] = {}
        for name, value in node.items():
            raw_name = name.encode("utf-8")
            if isinstance(value, dict):
                shas[raw_name] = self._write_tree(value)
                entries.append((raw_name + b"/", _TREE_MODE, raw_name))
            else:
                assert isinstance(value, bytes)
                shas[raw_name] = self._store(b"blob", value)
                entries.append((raw_name, _FILE_MODE, raw_name))
        entries.sort()  # git orders entries by name, a directory as if it ended in "/"
        raw = b"".join(mode + b" " + name + b"\0" + bytes.fromhex(shas[name])
                       for _key, mode, name in entries)
        return self._store(b"tree", raw)

    # -- reading ---------------------------------------------------------------------------
    def _commit(self, sha: str) -> git.Commit:
        """The commit object named by ``sha`` (a full sha, or any name git resolves)."""
        if str(sha) == _NULL_SHA:  # gitpython resolves it to a commit without looking
            raise RepoError(f"unknown commit {sha!r}: the null sha names no object")
        try:
            obj = self._repo.rev_parse(str(sha))
        except (git.BadName, git.BadObject, ValueError, git.GitCommandError):
            raise RepoError(f"unknown commit {sha!r} in {self.path} (the object is not in the "
                            f"run's repository)") from None
        if not isinstance(obj, git.Commit):
            raise RepoError(f"{sha!r} in {self.path} is a {obj.type}, not a commit")
        return obj

    def tree(self, sha: str) -> str:
        """The sha of commit ``sha``'s tree: equal for equal files, whatever the history."""
        with self._lock:
            return self._commit(sha).tree.hexsha

    def has_commit(self, sha: str) -> bool:
        """True if ``sha`` names a commit in this repository."""
        try:
            with self._lock:
                self._commit(sha)
        except RepoError:
            return False
        return True

    def files(self, sha: str) -> dict[str, bytes]:
        """The files of commit ``sha``: relative path -> contents, sorted by path."""
        with self._lock:
            tree = self._commit(sha).tree
            blobs = [item for item in tree.traverse() if item.type == "blob"]
            out = {blob.path: blob.data_stream.read() for blob in blobs}
        return dict(sorted(out.items()))

    def text_files(self, sha: str) -> dict[str, str]:
        """The files of commit ``sha`` that are valid UTF-8, decoded; other (binary) files
        are left out (``files`` has them all)."""
        return text_only(self.files(sha), sha)

    def diff(self, sha: str, parent_sha: str) -> str:
        """git's unified diff from ``parent_sha`` to ``sha`` (renames detected, binary
        files reported as "Binary files ... differ"); empty if the trees are equal."""
        with self._lock:
            child, parent = self._commit(sha).hexsha, self._commit(parent_sha).hexsha
            return self._repo.git.diff("--no-color", "--no-ext-diff", "--no-textconv",
                                       "--find-renames", parent, child,
                                       strip_newline_in_stdout=False)

    def checkout(self, sha: str, directory: str | Path) -> list[str]:
        """Write the tree of commit ``sha`` into ``directory`` (created if missing, refused
        if it is not empty); returns the relative paths written."""
        directory = Path(directory)
        files = self.files(sha)
        problem = job_files_problem(files)
        if problem:
            raise RepoError(f"cannot check out {sha} into {directory}: {problem}")
        if directory.exists():
            if not directory.is_dir():
                raise RepoError(f"cannot check out into {directory}: it is not a directory")
            if any(directory.iterdir()):
                raise RepoError(f"cannot check out into {directory}: it is not empty; "
                                f"choose a new or empty directory")
        try:
            directory.mkdir(parents=True, exist_ok=True)
            write_files(directory, files)  # fd by fd, never through a symlink
        except OSError as exc:
            raise RepoError(f"cannot check out {sha} into {directory}: {exc}") from None
        return list(files)

    def merge_base(self, a: str, b: str) -> str | None:
        """The best common ancestor of commits ``a`` and ``b``, or None if they share none."""
        with self._lock:
            first, second = self._commit(a).hexsha, self._commit(b).hexsha
            try:
                out = self._repo.git.merge_base(first, second)
            except git.GitCommandError as exc:
                if exc.status == 1:  # git's answer for "no common ancestor"
                    return None
                raise RepoError(f"git merge-base failed in {self.path}: {exc}") from None
        return out.strip() or None

    # -- refs ------------------------------------------------------------------------------
    def set_ref(self, candidate_id: int, sha: str) -> None:
        """Point ``refs/candidates/<candidate_id>`` at commit ``sha`` (keeps it alive)."""
        with self._lock:
            commit = self._commit(sha).hexsha
            self._repo.git.update_ref(_ref(candidate_id), commit)

    def delete_ref(self, candidate_id: int) -> None:
        """Remove ``refs/candidates/<candidate_id>``; nothing happens if there is none."""
        with self._lock:
            self._update_refs([f"delete {_ref(candidate_id)}"])

    def refs(self) -> dict[int, str]:
        """Candidate id -> commit sha of every ``refs/candidates/<id>`` ref, by id."""
        with self._lock:
            out = self._repo.git.for_each_ref("--format=%(objectname) %(refname)", REF_PREFIX)
        refs: dict[int, str] = {}
        for line in out.splitlines():
            sha, _, name = line.partition(" ")
            suffix = name.removeprefix(REF_PREFIX)
            if suffix.isdigit():
                refs[int(suffix)] = sha
            else:
                logger.warning("ignoring %s in %s: not a candidate id", name, self.path)
        return dict(sorted(refs.items()))

    def _update_refs(self, commands: Sequence[str]) -> None:
        if commands:
            self._git_with_input(["update-ref", "--stdin"], "\n".join(commands) + "\n")

    def _git_with_input(self, args: Sequence[str], data: str) -> str:
        with tempfile.TemporaryFile() as stdin:
            stdin.write(data.encode("utf-8"))
            stdin.seek(0)
            try:
                return self._repo.git.execute(["git", *args], istream=stdin)
            except git.GitCommandError as exc:
                raise RepoError(f"git {args[0]} failed in {self.path}: "
                                f"{exc.stderr.strip() or exc}") from None

    def _commit_shas(self, shas: Sequence[str]) -> set[str]:
        """Those of ``shas`` that name commits present in the repository (one git call)."""
        wanted = sorted({s for s in shas if _SHA.fullmatch(s)})
        if not wanted:
            return set()
        out = self._git_with_input(["cat-file", "--batch-check"], "\n".join(wanted) + "\n")
        found = set()
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] == "commit":
                found.add(parts[0])
        return found

    def reconcile(self, candidates: Mapping[int, str]) -> Reconciled:
        """Make the refs agree with the archive: ``candidates`` maps every code
        candidate's id to its commit sha, as the archive records them.

        - a ref whose id is not in ``candidates`` is removed (a crash came between the
          commit and the archive write; the commit becomes unreachable);
        - a candidate whose commit exists gets its ref back if it was missing, or
          pointed at the archive's commit if it pointed elsewhere;
        - a candidate whose commit object is missing is reported in ``missing`` (and
          any ref it had is removed); the caller marks it failed.
        """
        with self._lock:
            current = self.refs()
            present = self._commit_shas(list(candidates.values()))
            created, repointed, removed, missing, commands = [], [], [], [], []
            for cid in sorted(set(current) - set(candidates)):
                removed.append(cid)
                commands.append(f"delete {_ref(cid)}")
            for cid, sha in sorted(candidates.items()):
                old = current.get(cid)
                if sha not in present:
                    missing.append(cid)
                    # also drops a broken ref to the lost object, which refs() cannot see
                    commands.append(f"delete {_ref(cid)}")
                    if old is not None:
                        removed.append(cid)
                elif old != sha:
                    (created if old is None else repointed).append(cid)
                    commands.append(f"update {_ref(cid)} {sha}")
            self._update_refs(commands)
        result = Reconciled(tuple(created), tuple(repointed), tuple(sorted(removed)),
                            tuple(missing))
        if result.changed or result.missing:
            logger.warning("reconciled %s with the archive: %s", self.path, result)
        return result


def _ref(candidate_id: int) -> str:
    if isinstance(candidate_id, bool) or not isinstance(candidate_id, int) or candidate_id < 0:
        raise RepoError(f"candidate id must be a non-negative int, not {candidate_id!r}")
    return f"{REF_PREFIX}{candidate_id}"


def _check_path(path: object) -> list[str]:
    """The parts of a valid relative file path, or a ``RepoError`` saying what is wrong."""
    if not isinstance(path, str) or not path:
        raise RepoError(f"file path {path!r} must be a non-empty string")
    if path.startswith("/") or "\\" in path or "\0" in path:
        raise RepoError(f"file path {path!r} must be relative, with '/' between directories "
                        f"and no backslash or NUL")
    parts = path.split("/")
    if len(parts) > MAX_PATH_PARTS:
        raise RepoError(f"file path {path[:80]!r}... is {len(parts)} levels deep, more than "
                        f"{MAX_PATH_PARTS}")
    for part in parts:
        if part in ("", ".", "..") or part.lower() == ".git":
            raise RepoError(f"file path {path!r} has a forbidden part {part!r} (empty, '.', "
                            f"'..' or '.git')")
    return parts


def _nest(files: Mapping[str, str | bytes]) -> dict[str, object]:
    """``{"a/b.py": data}`` as nested dicts ``{"a": {"b.py": bytes}}``."""
    root: dict[str, object] = {}
    for path, content in files.items():
        parts = _check_path(path)
        if isinstance(content, str):
            content = content.encode("utf-8")
        elif not isinstance(content, bytes):
            raise RepoError(f"contents of {path!r} must be str or bytes, not "
                            f"{type(content).__name__}")
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise RepoError(f"{path!r}: {part!r} is both a file and a directory")
            node = child
        if parts[-1] in node:
            raise RepoError(f"{path!r} is both a file and a directory")
        node[parts[-1]] = content
    return root


def text_only(files: Mapping[str, bytes], sha: str) -> dict[str, str]:
    """``files`` (of commit ``sha``) that are valid UTF-8, decoded; binary ones left out."""
    out: dict[str, str] = {}
    for path, data in files.items():
        try:
            out[path] = data.decode("utf-8")
        except UnicodeDecodeError:
            logger.debug("%s in %s is not UTF-8 text; left out", path, sha)
    return out
