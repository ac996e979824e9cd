"""File names git takes but no sandbox can write: an invalid child, a refused checkout."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from evolve.code._repo import RepoError, RunRepo
from evolve.code._species import CodeSpecies
from evolve.operators import InvalidChild

LONG = "n" * 300 + ".py"


def test_a_child_naming_a_file_no_sandbox_can_write_is_invalid_with_the_reason() -> None:
    species = CodeSpecies(None, None, None, None, None, None, gateway=None,  # type: ignore[arg-type]
                          token_budget=None, mutator_max_tokens=1)
    mutation = SimpleNamespace(files={"main.py": "x = 1\n", LONG: "y = 2\n"},
                               exchanges=({"kind": "chat"},), extra_parents=(), message="m",
                               mutation_prompt="p")
    with pytest.raises(InvalidChild) as caught:
        species.genome(mutation, None, 3)  # type: ignore[arg-type]
    assert "the child's files cannot be run" in str(caught.value)
    assert "more than the 255" in str(caught.value)
    assert caught.value.exchanges == ({"kind": "chat"},)


def test_checkout_of_a_commit_with_such_a_name_is_refused_with_a_reason(tmp_path: Path) -> None:
    with RunRepo.open(tmp_path / "repo", create=True) as repo:
        sha = repo.commit({LONG: "x\n", "ok.py": "y\n"}, (), "m", 0)  # git takes it
        assert LONG in repo.files(sha)
        with pytest.raises(RepoError, match="more than the 255"):
            repo.checkout(sha, tmp_path / "out")
        assert not (tmp_path / "out").exists()
        fine = repo.commit({"a/b.py": "z\n"}, (), "m", 1)
        assert repo.checkout(fine, tmp_path / "fine") == ["a/b.py"]
        assert (tmp_path / "fine" / "a" / "b.py").read_text() == "z\n"
