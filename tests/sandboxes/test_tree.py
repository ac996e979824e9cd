"""sandboxes._tree: walks of candidate-made trees are iterative, bounded and never follow links."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandboxes._tree import Walk, chown_tree, remove_contents, remove_tree, tree_size

AS_ROOT = os.geteuid() == 0


def deep_tree(top: Path, depth: int, every: int = 1000) -> None:
    """``top/d/d/.../d`` ``depth`` levels deep (made fd by fd: no path is ever that long),
    with a file every ``every`` levels and at the bottom."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for level in range(depth):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
            if level % every == 0 or level == depth - 1:
                file = os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
                os.write(file, b"x" * 4096)
                os.close(file)
    finally:
        os.close(fd)


def test_removes_a_tree_5000_levels_deep(tmp_path: Path) -> None:
    deep_tree(tmp_path, 5000)
    assert remove_contents(tmp_path) is True
    assert os.listdir(tmp_path) == []


def test_size_and_chown_walk_a_tree_5000_levels_deep(tmp_path: Path) -> None:
    top = tmp_path / "top"
    top.mkdir()
    deep_tree(top, 5000)
    size, complete = tree_size(top)
    assert complete and size >= 6 * 4096  # the files, at least
    if AS_ROOT:
        assert chown_tree(top, 65534, 65534) is True
        fd = os.open(top, os.O_RDONLY)
        for _ in range(5000):  # the bottom's owner changed too
            child = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = child
        assert os.stat("f", dir_fd=fd).st_uid == 65534
        os.close(fd)
    assert remove_tree(top) is True and not top.exists()


def test_symlinks_to_outside_are_removed_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("precious")
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "to_dir").symlink_to(outside)
    (work / "sub" / "to_file").symlink_to(outside / "keep")
    (work / "dangling").symlink_to(tmp_path / "nowhere")
    owner = os.stat(outside / "keep")
    if AS_ROOT:
        assert chown_tree(work, 65534, 65534)
    size, complete = tree_size(work)
    assert complete and size < 64 * 1024
    assert remove_contents(work) is True
    assert (outside / "keep").read_text() == "precious"
    assert os.stat(outside / "keep").st_uid == owner.st_uid  # the target kept its owner
    assert os.listdir(work) == []


def test_a_symlink_as_the_tree_itself_is_removed_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("precious")
    (tmp_path / "link").symlink_to(outside)
    assert remove_tree(tmp_path / "link") is True
    assert (outside / "keep").exists()
    assert remove_contents(tmp_path / "link") is False  # not a directory: O_NOFOLLOW


def test_unreadable_directories_are_opened_and_removed(tmp_path: Path) -> None:
    locked = tmp_path / "a" / "locked"
    (locked / "inner").mkdir(parents=True)
    (locked / "inner" / "f").write_text("x")
    (locked / "g").write_text("y")
    (locked / "inner").chmod(0)
    locked.chmod(0)
    (tmp_path / "a").chmod(0o500)  # not writable: its entries cannot be removed as they are
    assert remove_contents(tmp_path) is True
    assert os.listdir(tmp_path) == []


def test_an_unreadable_top_directory_is_opened(tmp_path: Path) -> None:
    top = tmp_path / "top"
    (top / "x").mkdir(parents=True)
    top.chmod(0)
    assert remove_contents(top) is True
    assert remove_tree(top) is True


def test_many_files(tmp_path: Path) -> None:
    for i in range(20_000):
        (tmp_path / f"f{i}").touch()
    assert remove_contents(tmp_path) is True
    assert os.listdir(tmp_path) == []


def test_bounds_stop_a_walk_and_say_so(tmp_path: Path) -> None:
    for i in range(50):
        (tmp_path / f"f{i}").touch()
    deep_tree(tmp_path, 30)
    _, complete = tree_size(tmp_path, max_entries=10)
    assert not complete
    _, complete = tree_size(tmp_path, max_depth=5)
    assert not complete
    assert remove_contents(tmp_path, max_depth=5) is False  # stopped: not empty
    assert remove_contents(tmp_path) is True


def test_a_walk_holds_one_directory_open_besides_the_top(tmp_path: Path) -> None:
    deep_tree(tmp_path, 300)
    before = len(os.listdir("/proc/self/fd"))
    top = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    most = 0
    for _ in Walk(top):
        most = max(most, len(os.listdir("/proc/self/fd")) - before)
    os.close(top)
    assert most <= 3  # the top, the current level, and listdir's own descriptor
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_directory_moved_during_a_walk_stops_it(tmp_path: Path) -> None:
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    top = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    walk = Walk(top)
    for kind, _fd, name in walk:
        if kind == "dir" and name == "c":
            os.rename(tmp_path / "a" / "b", tmp_path / "elsewhere" / "b")
    os.close(top)
    assert not walk.complete


names = st.text(st.characters(codec="utf-8", exclude_characters="/\0"), min_size=1,
                max_size=20).filter(lambda n: n not in (".", ".."))
trees = st.recursive(st.binary(max_size=64),
                     lambda kids: st.dictionaries(names, kids, max_size=4), max_leaves=30)


def build(at: Path, node: bytes | dict) -> int:
    """Make ``node`` at ``at``; return how many entries it holds below ``at``."""
    if isinstance(node, bytes):
        at.write_bytes(node)
        return 0
    at.mkdir()
    return sum(1 + build(at / name, child) for name, child in node.items())


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=trees)
def test_any_tree_is_walked_once_and_removed(tmp_path: Path, tree: bytes | dict) -> None:
    top = tmp_path / "t"
    if top.exists():
        remove_tree(top)
    if isinstance(tree, bytes):
        tree = {"only": tree}
    count = build(top, tree)
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    walk = Walk(fd)
    seen = [kind for kind, _, _ in walk]
    os.close(fd)
    assert walk.complete and walk.entries == count
    assert seen.count("dir") == seen.count("left")
    assert seen.count("file") + seen.count("dir") == count
    assert remove_tree(top) is True and not top.exists()


@pytest.mark.skipif(not AS_ROOT, reason="needs root to chown to another user")
def test_chown_tree_gives_everything_to_the_user(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_text("x")
    assert chown_tree(tmp_path, 65534, 65534)
    for path in (tmp_path, tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "f"):
        assert os.lstat(path).st_uid == 65534


@pytest.mark.skipif(not AS_ROOT, reason="needs root to run the walk as another, ordinary user")
def test_an_ordinary_user_empties_directories_it_made_unreadable() -> None:
    """Without root's override of permissions (bwrap as an ordinary user: the candidate's
    files are that user's), chmod 000 directories are opened by chmod-ing them first."""
    from .user_sandbox import ORDINARY_UID, _python_for_everyone

    top = Path(tempfile.mkdtemp(prefix="cladeforge-tree-test-"))
    try:
        (top / "a" / "b").mkdir(parents=True)
        (top / "a" / "b" / "f").write_text("x")
        (top / "c").mkdir()
        deep_tree(top / "c", 1500)
        subprocess.run(["chown", "-R", f"{ORDINARY_UID}:{ORDINARY_UID}", str(top)], check=True)
        (top / "a" / "b").chmod(0)
        (top / "a").chmod(0o100)  # search only: not listable
        (top / "c" / "d").chmod(0o500)
        code = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location("
                "'t', sys.argv[1]); t = importlib.util.module_from_spec(spec); "
                "spec.loader.exec_module(t); print(t.remove_contents(sys.argv[2]))")
        tree_py = str(Path(__file__).resolve().parents[2] / "sandboxes" / "_tree.py")
        done = subprocess.run([_python_for_everyone(), "-c", code, tree_py, str(top)],
                              user=ORDINARY_UID, group=ORDINARY_UID, extra_groups=[],
                              capture_output=True, text=True, timeout=120)
        assert done.stdout.strip() == "True", done.stderr
        assert os.listdir(top) == []
    finally:
        remove_tree(top)
