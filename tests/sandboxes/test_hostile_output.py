"""Hostile candidates whose output defeats host-side walks and names: each ends with a
reason, the host is unaffected, and the next job in the same sandbox is clean.

Attacks: a directory tree thousands of levels deep left in the work dir and in
/tmp (``os.walk``/``shutil.rmtree`` would recurse past Python's limit), names
of 255 bytes and paths near PATH_MAX, collecting a deeply nested path, and job
input files with names no file system takes.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from sandboxes import EndReason, Job, Sandbox

from .hostile_helpers import LIMITS, assert_contained, attack

DEEP = 5200

DEEP_TREE = r"""
import os, sys
top = sys.argv[1]
fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
for level in range(int(sys.argv[2])):
    os.mkdir("d", dir_fd=fd)
    child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    os.close(fd)
    fd = child
out = os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
os.write(out, b"bottom")
os.close(out)
os.chmod(os.path.join(top, "d"), 0)  # and the top of it unreadable
print("built")
"""


@pytest.mark.parametrize("where", [".", "/tmp"])
def test_a_tree_5000_levels_deep_is_wiped(isolating_sandbox: Sandbox, token: str,
                                          where: str) -> None:
    name = f"attack_{token}.py"
    result = isolating_sandbox.run(Job(  # a work dir with the inodes for 5,000 directories
        ["python3", name, where, str(DEEP)], files={name: DEEP_TREE.encode()},
        limits=replace(LIMITS, workdir_mb=64)))
    # a plain work dir (bwrap as an ordinary user) that cannot be sized whole counts as full
    assert result.reason in (EndReason.OK, EndReason.OUTPUT_LIMIT), result
    assert result.stdout.strip() == b"built" or result.reason is EndReason.OUTPUT_LIMIT
    assert_contained(isolating_sandbox, token, result=result)


def test_collecting_a_deeply_nested_path(isolating_sandbox: Sandbox, token: str) -> None:
    rel = "/".join(["d"] * 1500) + "/f"
    result = attack(isolating_sandbox, token, DEEP_TREE, args=(".", "1500"), collect=(rel,))
    assert result.reason in (EndReason.OK, EndReason.OUTPUT_LIMIT), result
    if result.reason is EndReason.OK:  # (a plain work dir counts 1,500 directories as full)
        assert result.files.get(rel) == b"bottom"  # read one directory at a time
    assert_contained(isolating_sandbox, token, result=result)


LONG_NAMES = r"""
import os
name = "n" * 255
open(name, "w").write("x")
os.mkdir("m" * 255)
fd = os.open(".", os.O_RDONLY)
for _ in range(17):  # 17 * 256 bytes: past PATH_MAX, only reachable fd by fd
    os.mkdir("p" * 255, dir_fd=fd)
    child = os.open("p" * 255, os.O_RDONLY, dir_fd=fd)
    os.close(fd)
    fd = child
os.symlink("/etc/passwd", "l" * 255, dir_fd=fd)
print("named")
"""


def test_names_of_255_bytes_and_paths_past_path_max(isolating_sandbox: Sandbox,
                                                     token: str) -> None:
    result = attack(isolating_sandbox, token, LONG_NAMES, collect=("n" * 255,))
    assert result.reason is EndReason.OK, result
    assert result.files.get("n" * 255) == b"x"
    assert_contained(isolating_sandbox, token, result=result)


@pytest.mark.parametrize("name", ["n" * 256, "/".join(["p" * 255] * 17) + "/x",
                                  "/".join(["d"] * 100) + "/x"])
def test_input_files_with_names_no_file_system_takes(isolating_sandbox: Sandbox, token: str,
                                                     name: str) -> None:
    job = Job(["python3", "-c", f"print('ran {token}')"], files={name: b"x"}, limits=LIMITS)
    result = isolating_sandbox.run(job)
    assert result.reason is EndReason.ERROR, result
    assert "files could not be written" in result.detail
    assert token.encode() not in result.stdout
    assert_contained(isolating_sandbox, token, result=result)
