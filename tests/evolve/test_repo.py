"""RunRepo against real git: commits, reading, diffs, checkout, merge bases, refs, reconcile."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evolve._errors import CladeforgeError
from evolve.code._repo import IDENTITY, REPO_DIR, Reconciled, RepoError, RunRepo

SEED = {"main.py": "print('hello')\n", "pkg/__init__.py": "", "pkg/sub/data.txt": b"1 2 3\n"}


@pytest.fixture
def repo(tmp_path: Path):
    with RunRepo.open(tmp_path / "repo", create=True) as r:
        yield r


def git(repo: RunRepo, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(repo.path), *args], check=True,
                          capture_output=True, text=True).stdout


def test_open_creates_a_bare_repository_and_reopens_it(tmp_path: Path) -> None:
    path = tmp_path / "run" / REPO_DIR
    with pytest.raises(RepoError, match="does not exist"):
        RunRepo.open(path)
    with RunRepo.for_run(tmp_path / "run", create=True) as r:
        sha = r.commit(SEED, [], "seed", 1)
    assert git(r, "rev-parse", "--is-bare-repository").strip() == "true"
    with RunRepo.open(path) as again:
        assert again.files(sha)["main.py"] == b"print('hello')\n"


def test_open_refuses_a_directory_that_is_not_a_repository(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "notes.txt").write_text("mine")
    with pytest.raises(RepoError, match="not a git repository") as info:
        RunRepo.open(tmp_path / "repo", create=True)
    assert isinstance(info.value, CladeforgeError)
    assert (tmp_path / "repo" / "notes.txt").read_text() == "mine"


def test_commit_is_deterministic_across_repositories(tmp_path: Path) -> None:
    shas = []
    for name in ("a", "b"):
        with RunRepo.open(tmp_path / name, create=True) as r:
            seed = r.commit(SEED, [], "seed", 1_700_000_000)
            child = r.commit({**SEED, "main.py": "print('bye')\n"}, [seed], "child", 1_700_000_001)
            shas.append((seed, child))
    assert shas[0] == shas[1]
    with RunRepo.open(tmp_path / "a") as r:
        # a different timestamp, message or parent set is a different commit
        assert r.commit(SEED, [], "seed", 1_700_000_002) != shas[0][0]
        assert r.commit(SEED, [], "seed!", 1_700_000_000) != shas[0][0]
        # str and bytes contents are the same file
        same = {k: v.encode() if isinstance(v, str) else v for k, v in SEED.items()}
        assert r.commit(same, [], "seed", 1_700_000_000) == shas[0][0]


def test_commit_matches_what_git_itself_writes(repo: RunRepo, tmp_path: Path) -> None:
    sha = repo.commit(SEED, [], "seed", 1234)
    work = tmp_path / "work"
    work.mkdir()
    for path, data in SEED.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_bytes(data.encode() if isinstance(data, str) else data)
    name, email = IDENTITY.decode().rstrip(">").split(" <")
    env = {**os.environ, "GIT_DIR": str(repo.path), "GIT_WORK_TREE": str(work),
           "GIT_INDEX_FILE": str(tmp_path / "index"), "GIT_AUTHOR_NAME": name,
           "GIT_AUTHOR_EMAIL": email, "GIT_COMMITTER_NAME": name,
           "GIT_COMMITTER_EMAIL": email, "GIT_AUTHOR_DATE": "@1234 +0000",
           "GIT_COMMITTER_DATE": "@1234 +0000"}
    subprocess.run(["git", "add", "-A"], env=env, check=True, cwd=work)
    tree = subprocess.run(["git", "write-tree"], env=env, check=True, cwd=work,
                          capture_output=True, text=True).stdout.strip()
    theirs = subprocess.run(["git", "commit-tree", tree, "-m", "seed"], env=env, check=True,
                            cwd=work, capture_output=True, text=True).stdout.strip()
    assert sha == theirs
    git(repo, "fsck", "--strict", "--no-dangling")


def test_tree_order_follows_git_for_names_sharing_a_prefix(repo: RunRepo) -> None:
    files = {"pkg-a": "1", "pkg/x": "2", "pkg.txt": "3", "pkg0": "4"}
    sha = repo.commit(files, [], "order", 0)
    git(repo, "fsck", "--strict", "--no-dangling")  # git rejects wrongly sorted trees
    assert repo.files(sha) == {k: v.encode() for k, v in sorted(files.items())}


def test_merge_commit_has_both_parents(repo: RunRepo) -> None:
    base = repo.commit(SEED, [], "seed", 1)
    left = repo.commit({**SEED, "left.py": "L"}, [base], "left", 2)
    right = repo.commit({**SEED, "right.py": "R"}, [base], "right", 3)
    merged = repo.commit({**SEED, "left.py": "L", "right.py": "R"}, [left, right], "merge", 4)
    assert git(repo, "log", "-1", "--format=%P", merged).split() == [left, right]
    assert git(repo, "log", "-1", "--format=%an <%ae> %at|%cn <%ce> %ct", merged).strip() == (
        "Cladeforge <cladeforge@localhost> 4|Cladeforge <cladeforge@localhost> 4")
    assert repo.merge_base(left, right) == base
    assert repo.merge_base(merged, left) == left
    assert "+R" in repo.diff(merged, left) and "right.py" not in repo.diff(merged, right)


def test_merge_base_of_unrelated_histories_is_none(repo: RunRepo) -> None:
    a = repo.commit({"a": "1"}, [], "a", 1)
    b = repo.commit({"b": "1"}, [], "b", 1)
    assert repo.merge_base(a, b) is None


def test_files_round_trip_with_nested_directories(repo: RunRepo) -> None:
    files = {"a/b/c/d.py": "deep\n", "a/b/e.py": "x", "top.bin": bytes(range(256)),
             "ünï/cödé.txt": "ü\n", "empty": ""}
    sha = repo.commit(files, [], "nested", 5)
    assert repo.files(sha) == {k: v.encode() if isinstance(v, str) else v
                               for k, v in sorted(files.items())}
    text = repo.text_files(sha)
    assert "top.bin" not in text  # not UTF-8: left out of text_files
    assert text["ünï/cödé.txt"] == "ü\n" and text["empty"] == ""


def test_empty_tree_is_a_valid_commit(repo: RunRepo) -> None:
    sha = repo.commit({}, [], "nothing", 0)
    assert repo.files(sha) == {}
    assert git(repo, "log", "-1", "--format=%T", sha).strip() == (
        "4b825dc642cb6eb9a060e54bf8d69288fbee4904")  # git's empty tree


@pytest.mark.parametrize("path", ["/abs.py", "a/../b.py", "../up.py", "./a.py", "a//b.py",
                                  "a/", "", ".git/config", "a/.GIT/x", "a\\b.py", "nul\0.py"])
def test_bad_paths_are_refused(repo: RunRepo, path: str) -> None:
    with pytest.raises(RepoError, match="file path"):
        repo.commit({path: "x"}, [], "bad", 0)


def test_file_and_directory_of_the_same_name_are_refused(repo: RunRepo) -> None:
    with pytest.raises(RepoError, match="both a file and a directory"):
        repo.commit({"a": "1", "a/b": "2"}, [], "clash", 0)
    with pytest.raises(RepoError, match="both a file and a directory"):
        repo.commit({"a/b": "2", "a": "1"}, [], "clash", 0)


def test_unknown_parent_and_unknown_commits_are_clear_errors(repo: RunRepo) -> None:
    sha = repo.commit(SEED, [], "seed", 1)
    blob = git(repo, "rev-parse", f"{sha}:main.py").strip()
    with pytest.raises(RepoError, match="unknown commit"):
        repo.commit(SEED, ["0" * 40], "orphan", 2)
    with pytest.raises(RepoError, match="not a commit"):
        repo.commit(SEED, [blob], "blob parent", 2)
    for call in (lambda: repo.files("f" * 40), lambda: repo.diff(sha, "f" * 40),
                 lambda: repo.merge_base(sha, "nonsense"), lambda: repo.set_ref(1, "e" * 40)):
        with pytest.raises(RepoError, match="unknown commit"):
            call()
    assert repo.has_commit(sha) and not repo.has_commit("f" * 40)


def test_diff_is_gits_unified_diff_from_parent_to_child(repo: RunRepo) -> None:
    parent = repo.commit(SEED, [], "seed", 1)
    child_files = {k: v for k, v in SEED.items() if k != "pkg/sub/data.txt"}
    child = repo.commit({**child_files, "main.py": "print('bye')\n", "new.py": "x = 1\n"},
                        [parent], "child", 2)
    diff = repo.diff(child, parent)
    assert diff == git(repo, "diff", parent, child)
    assert "--- a/main.py\n+++ b/main.py\n" in diff
    assert "-print('hello')\n+print('bye')\n" in diff
    assert "new file mode 100644" in diff and "+x = 1\n" in diff
    assert "deleted file mode 100644" in diff and "-1 2 3\n" in diff
    assert repo.diff(parent, parent) == ""


def test_checkout_writes_the_tree(repo: RunRepo, tmp_path: Path) -> None:
    sha = repo.commit(SEED, [], "seed", 1)
    target = tmp_path / "out" / "deeper"
    written = repo.checkout(sha, target)
    assert sorted(written) == sorted(SEED)
    assert (target / "pkg" / "sub" / "data.txt").read_bytes() == b"1 2 3\n"
    assert (target / "main.py").read_text() == "print('hello')\n"
    assert not (target / ".git").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    repo.checkout(sha, empty)  # an existing empty directory is fine
    assert (empty / "pkg" / "__init__.py").read_bytes() == b""


def test_checkout_refuses_a_non_empty_directory(repo: RunRepo, tmp_path: Path) -> None:
    sha = repo.commit(SEED, [], "seed", 1)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("keep")
    with pytest.raises(RepoError, match="not empty"):
        repo.checkout(sha, tmp_path / "busy")
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == ["keep.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(RepoError, match="not a directory"):
        repo.checkout(sha, tmp_path / "file")


def test_refs_set_list_delete(repo: RunRepo) -> None:
    a = repo.commit(SEED, [], "a", 1)
    b = repo.commit({"b": "b"}, [a], "b", 2)
    repo.set_ref(1, a)
    repo.set_ref(10, b)
    repo.set_ref(2, b)
    assert repo.refs() == {1: a, 2: b, 10: b}
    assert git(repo, "rev-parse", "refs/candidates/10").strip() == b
    repo.set_ref(2, a)
    repo.delete_ref(10)
    repo.delete_ref(99)  # no such ref: nothing happens
    assert repo.refs() == {1: a, 2: a}
    with pytest.raises(RepoError, match="non-negative int"):
        repo.set_ref(-1, a)


def _loose_path(repo: RunRepo, sha: str) -> Path:
    return repo.path / "objects" / sha[:2] / sha[2:]


def test_reconcile_when_archive_and_refs_agree_changes_nothing(repo: RunRepo) -> None:
    a = repo.commit(SEED, [], "a", 1)
    repo.set_ref(1, a)
    assert repo.reconcile({1: a}) == Reconciled()
    assert not repo.reconcile({1: a}).changed


def test_reconcile_removes_the_ref_of_a_commit_the_archive_never_got(repo: RunRepo) -> None:
    seed = repo.commit(SEED, [], "seed", 1)
    repo.set_ref(1, seed)
    # crash: child committed (and its ref written) but the archive write never happened
    orphan = repo.commit({**SEED, "x.py": "x"}, [seed], "child", 2)
    repo.set_ref(2, orphan)
    result = repo.reconcile({1: seed})
    assert result == Reconciled(removed=(2,))
    assert result.changed
    assert repo.refs() == {1: seed}
    assert orphan in git(repo, "fsck", "--unreachable", "--no-reflogs")


def test_reconcile_restores_a_deleted_ref_and_repoints_a_wrong_one(repo: RunRepo) -> None:
    a = repo.commit(SEED, [], "a", 1)
    b = repo.commit({"b": "b"}, [a], "b", 2)
    c = repo.commit({"c": "c"}, [a], "c", 3)
    for cid, sha in ((1, a), (2, b), (3, c)):
        repo.set_ref(cid, sha)
    git(repo, "update-ref", "-d", "refs/candidates/2")  # deleted by hand
    git(repo, "update-ref", "refs/candidates/3", b)  # points at the wrong commit
    result = repo.reconcile({1: a, 2: b, 3: c})
    assert result == Reconciled(created=(2,), repointed=(3,))
    assert repo.refs() == {1: a, 2: b, 3: c}


def test_reconcile_reports_candidates_whose_commit_is_missing(repo: RunRepo) -> None:
    a = repo.commit(SEED, [], "a", 1)
    b = repo.commit({"only-b.txt": "unique content of b"}, [a], "b", 2)
    repo.set_ref(1, a)
    repo.set_ref(2, b)
    _loose_path(repo, b).unlink()  # the object is gone (e.g. a copied repo lost it)
    assert not repo.has_commit(b)
    result = repo.reconcile({1: a, 2: b, 3: "not a sha", 4: "0" * 40})
    assert result == Reconciled(removed=(2,), missing=(2, 3, 4))
    assert repo.refs() == {1: a}
    assert not (repo.path / "refs" / "candidates" / "2").exists()  # the broken ref is gone


def test_reconcile_all_cases_at_once_after_a_fork_copy(repo: RunRepo, tmp_path: Path) -> None:
    a = repo.commit(SEED, [], "a", 1)
    b = repo.commit({"b": "b"}, [a], "b", 2)
    c = repo.commit({"c": "c"}, [b], "c", 3)
    for cid, sha in ((1, a), (2, b), (3, c)):
        repo.set_ref(cid, sha)
    with repo.copy_to(tmp_path / "fork") as fork:
        assert fork.refs() == repo.refs()
        git(fork, "update-ref", "-d", "refs/candidates/1")
        # the fork keeps candidates 1..2 (and candidate 5 lost its object)
        result = fork.reconcile({1: a, 2: b, 5: "1" * 40})
        assert result == Reconciled(created=(1,), removed=(3,), missing=(5,))
        assert fork.refs() == {1: a, 2: b}
    assert repo.refs() == {1: a, 2: b, 3: c}  # the source is untouched
    with pytest.raises(RepoError, match="already exists"):
        repo.copy_to(tmp_path / "fork")


_NAME = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\\\0"),
                min_size=1, max_size=8).filter(lambda s: s not in (".", "..")
                                               and s.lower() != ".git")
_PATH = st.lists(_NAME, min_size=1, max_size=3).map("/".join)


def _no_file_dir_clash(files: dict[str, bytes]) -> bool:
    dirs = {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}
    return not dirs & set(files)


# one repository serves every example: commits are content-addressed, so they cannot interfere
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.dictionaries(_PATH, st.binary(max_size=64), max_size=8).filter(_no_file_dir_clash))
def test_any_relative_paths_round_trip(repo: RunRepo, files: dict[str, bytes]) -> None:
    sha = repo.commit(files, [], "property", 7)
    assert repo.files(sha) == files
    assert repo.commit(files, [], "property", 7) == sha
