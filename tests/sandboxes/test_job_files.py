"""sandboxes._job_files: the check of a job's file names; writing and collecting past PATH_MAX."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandboxes import (
    EndReason,
    Job,
    ProcessSandbox,
    SandboxError,
    check_relpath,
    collect_files,
    job_files_problem,
    write_files,
)
from sandboxes._job_files import MAX_FILE_DEPTH, MAX_NAME_BYTES, MAX_PATH_BYTES, path_problem

LONG_NAME = "n" * (MAX_NAME_BYTES + 1)


@pytest.mark.parametrize(("files", "words"), [
    ({LONG_NAME: b""}, "256 bytes"),
    ({f"dir/{LONG_NAME}/x.py": b""}, "256 bytes"),
    ({"é" * 128: b""}, "256 bytes"),  # 128 characters, 256 bytes in UTF-8
    ({"/".join(["d" * 200] * 21): b""}, "more than 4095"),
    ({"/".join(["d"] * (MAX_FILE_DEPTH + 1)): b""}, "levels deep"),
    ({"a\0b": b""}, "NUL"),
    ({"../escape": b""}, "relative path"),
    ({"/etc/passwd": b""}, "relative path"),
    ({"": b""}, "non-empty"),
    ({".": b""}, "relative path"),
    ({"bad\udcff\ud800": b""}, "encoded"),
    ({"a": b"", "a/b": b""}, "both a file and a directory"),
])
def test_names_no_file_system_takes_are_a_problem(files: dict[str, bytes], words: str) -> None:
    problem = job_files_problem(files)
    assert problem is not None and words in problem
    assert len(problem) < 300  # a 4 KB name is not copied whole into the reason


def test_names_at_the_limits_are_fine(tmp_path: Path) -> None:
    names = {"n" * MAX_NAME_BYTES: b"a",
             "/".join(["d" * 254] * 16): b"b",  # 16 * 255 - 1 = 4079 bytes
             "/".join(["e"] * MAX_FILE_DEPTH): b"c",
             "sub/./x.py": b"d"}
    assert len(os.fsencode(max(names, key=len))) <= MAX_PATH_BYTES
    assert job_files_problem(names) is None
    deep = tmp_path / ("x" * 200) / ("y" * 200)  # the work dir's own path adds to no limit
    deep.mkdir(parents=True)
    write_files(deep, names)
    got = collect_files(deep, list(names), 1 << 20)
    assert got == names


def test_too_many_bytes_is_a_problem() -> None:
    assert "more than the work dir" in job_files_problem({"a": b"x" * 11}, max_bytes=10)
    assert job_files_problem({"a": b"x" * 10}, max_bytes=10) is None


@given(st.dictionaries(st.text(min_size=1, max_size=300), st.just(b""), max_size=5))
def test_the_check_never_raises(files: dict[str, bytes]) -> None:
    problem = job_files_problem(files)
    assert problem is None or isinstance(problem, str)
    for name in files:
        assert path_problem(name) is None or isinstance(path_problem(name), str)


def test_writing_never_follows_a_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    (work / "sub").symlink_to(outside)
    with pytest.raises(OSError):
        write_files(work, {"sub/x": b"evil"})
    assert list(outside.iterdir()) == []


def test_collecting_a_deep_path_opens_one_directory_at_a_time(tmp_path: Path) -> None:
    rel = "/".join(["d"] * 1500) + "/f"  # 1500 levels: more than a process's descriptors
    fd = os.open(tmp_path, os.O_RDONLY)
    for part in rel.split("/")[:-1]:
        os.mkdir(part, dir_fd=fd)
        child = os.open(part, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = child
    file = os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
    os.write(file, b"deep")
    os.close(file)
    os.close(fd)
    before = len(os.listdir("/proc/self/fd"))
    assert collect_files(tmp_path, [rel], 100) == {rel: b"deep"}
    assert len(os.listdir("/proc/self/fd")) == before


def test_the_process_backend_ends_a_job_with_unwritable_names_with_a_reason() -> None:
    sandbox = ProcessSandbox()
    for files in ({LONG_NAME: b"x"}, {"/".join(["d" * 250] * 17): b"x"},
                  {"a": b"", "a/b": b""}):
        result = sandbox.run(Job(["python3", "-c", "open('ran', 'w')"], files=files,
                                 collect=("ran",)))
        assert result.reason is EndReason.ERROR and result.exit_code is None
        assert result.detail.startswith("the job's files could not be written: ")
        assert result.files == {}
    ok = sandbox.run(Job(["python3", "-c", "print(open('x').read())"], files={"x": b"fine"}))
    assert ok.reason is EndReason.OK and ok.stdout.strip() == b"fine"


def test_check_relpath_still_raises_for_trusted_callers() -> None:
    with pytest.raises(SandboxError):
        check_relpath("../x")
