"""The sandbox image: recipe hash and tag, apt sources, atomic builds, and the real image."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sandboxes import SandboxError
from sandboxes._aptsources import mirror_for, parse_deb822, parse_list, system_suite
from sandboxes._images import (
    Recipe,
    atomic_dir,
    build_image,
    default_image,
    default_recipe,
    ensure_rootfs,
    remove_stale_tmp,
    rootfs_path,
    trim_rootfs,
)
from tests.sandboxes._docker_available import require_docker

# -- recipe -----------------------------------------------------------------------------


def test_recipe_hash_names_the_tag_and_changes_with_the_recipe() -> None:
    base = Recipe(suite="bookworm", packages=("python3", "python3-numpy"), dockerfile="FROM x")
    assert base.tag == f"cladeforge-sandbox:{base.digest[:12]}"
    assert Recipe("bookworm", ("python3-numpy", "python3"), "FROM x").tag == base.tag
    others = [Recipe("trixie", base.packages, base.dockerfile),
              Recipe("bookworm", ("python3",), base.dockerfile),
              Recipe("bookworm", base.packages, "FROM y"),
              Recipe("bookworm", base.packages, base.dockerfile, arch="aarch64")]
    assert len({base.tag, *(other.tag for other in others)}) == 5


def test_default_recipe_uses_the_shipped_dockerfile_and_host_suite() -> None:
    recipe = default_recipe()
    dockerfile = (Path(__file__).parents[2] / "sandboxes" / "Dockerfile").read_text()
    assert recipe.dockerfile == dockerfile
    assert "python3-numpy" in recipe.packages
    assert recipe.suite == system_suite()
    assert default_image() == recipe.tag


def test_rootfs_path_follows_the_cache_override(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = Recipe("bookworm")
    assert rootfs_path(recipe, tmp_path) == tmp_path / f"rootfs-{recipe.digest[:12]}"
    monkeypatch.setenv("CLADEFORGE_CACHE", str(tmp_path / "c"))
    assert rootfs_path(recipe).parent == tmp_path / "c" / "sandbox"


# -- apt sources ------------------------------------------------------------------------


def test_deb822_and_one_line_sources_give_the_mirror(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(textwrap.dedent("""\
        # a comment
        deb-src http://src.example.invalid/debian bookworm main
        deb [arch=amd64 signed-by=/k.gpg] http://one.example.invalid/debian bookworm-updates main
        """))
    (tmp_path / "sources.list.d" / "a.sources").write_text(textwrap.dedent("""\
        Types: deb
        URIs: http://off.example.invalid/debian
        Suites: bookworm
        Enabled: no

        Types: deb deb-src
        URIs: http://two.example.invalid/debian
        Suites: bookworm bookworm-updates
        Components: main contrib
        Signed-By: /usr/share/keyrings/x.gpg
        """))
    source = mirror_for("bookworm", tmp_path)
    assert source.uri == "http://two.example.invalid/debian"
    assert source.signed_by == "/usr/share/keyrings/x.gpg"
    assert source.components == ("main", "contrib")
    assert mirror_for("bookworm-updates", tmp_path).signed_by == "/k.gpg"
    with pytest.raises(SandboxError, match="no apt source for suite 'sid'"):
        mirror_for("sid", tmp_path)


def test_parsers_skip_what_is_not_a_binary_source() -> None:
    assert parse_list("deb-src http://x/ bookworm main\n#deb http://y/ bookworm main") == []
    assert parse_deb822("Types: deb-src\nURIs: http://x/\nSuites: bookworm\n") == []
    inline_key = "Types: deb\nURIs: http://x/\nSuites: s\nSigned-By:\n -----BEGIN PGP\n .\n"
    assert parse_deb822(inline_key)[0].signed_by is None


def test_system_suite_reads_os_release(tmp_path: Path) -> None:
    release = tmp_path / "os-release"
    release.write_text('ID=debian\nVERSION_CODENAME="trixie"\n')
    assert system_suite(release, tmp_path) == "trixie"
    release.write_text("ID=debian\n")
    (tmp_path / "sources.list").write_text("deb http://x.invalid/debian sid main\n")
    assert system_suite(release, tmp_path) == "sid"


# -- atomic builds ----------------------------------------------------------------------


def test_atomic_dir_renames_on_success_and_leaves_nothing_on_failure(tmp_path: Path) -> None:
    final = tmp_path / "rootfs-x"
    with pytest.raises(RuntimeError):
        with atomic_dir(final) as tmp:
            (tmp / "half").write_text("made")
            raise RuntimeError("build failed")
    assert list(tmp_path.iterdir()) == []
    with atomic_dir(final) as tmp:
        (tmp / "file").write_text("done")
        assert not final.exists()
    assert (final / "file").read_text() == "done"
    with atomic_dir(final, replace=True) as tmp:
        (tmp / "file").write_text("again")
    assert (final / "file").read_text() == "again"
    assert [p.name for p in tmp_path.iterdir()] == ["rootfs-x"]


def test_a_killed_build_is_never_taken_as_done_and_is_cleaned_up(tmp_path: Path) -> None:
    final = tmp_path / "rootfs-x"
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from sandboxes._images import atomic_dir
        with atomic_dir(Path({str(final)!r})) as tmp:
            (tmp / "half").write_text("made")
            print("building", flush=True)
            time.sleep(60)
        """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            cwd=Path(__file__).parents[2])
    assert proc.stdout is not None and proc.stdout.readline() == b"building\n"
    live = remove_stale_tmp(tmp_path)
    assert live == []  # the builder is alive: its temp dir stays
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    leftovers = list(tmp_path.iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".rootfs-x.tmp-")
    assert not final.exists()
    assert remove_stale_tmp(tmp_path) == leftovers
    assert list(tmp_path.iterdir()) == []


def test_ensure_rootfs_is_a_no_op_when_built(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = Recipe("bookworm")
    rootfs_path(recipe, tmp_path).mkdir(parents=True)
    monkeypatch.setattr("shutil.which", lambda name: None)  # debootstrap would be "missing"
    assert ensure_rootfs(recipe, cache=tmp_path) == rootfs_path(recipe, tmp_path)


def test_ensure_rootfs_explains_a_missing_debootstrap_or_root(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = Recipe("bookworm")
    monkeypatch.setattr("sandboxes._images.shutil.which", lambda name: None)
    with pytest.raises(SandboxError, match="debootstrap is not installed"):
        ensure_rootfs(recipe, cache=tmp_path)
    monkeypatch.setattr("sandboxes._images.shutil.which", lambda name: f"/usr/sbin/{name}")
    monkeypatch.setattr("sandboxes._images.os.geteuid", lambda: 1000)
    with pytest.raises(SandboxError, match="needs root"):
        ensure_rootfs(recipe, cache=tmp_path)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("rootfs")] == []


def test_trim_rootfs_empties_docs_and_caches_and_makes_mount_points(tmp_path: Path) -> None:
    for rel in ("usr/share/doc/pkg/README", "var/lib/apt/lists/index", "usr/bin/python3"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    trim_rootfs(tmp_path)
    assert not any((tmp_path / "usr/share/doc").iterdir())
    assert not any((tmp_path / "var/lib/apt/lists").iterdir())
    assert (tmp_path / "usr/bin/python3").exists()
    assert (tmp_path / "work").is_dir() and (tmp_path / "run/cladeforge").is_dir()


def test_build_image_rejects_an_unknown_method() -> None:
    with pytest.raises(SandboxError, match="unknown sandbox image build method"):
        build_image(method="magic")


def test_no_daemon_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/missing.sock")
    with pytest.raises(SandboxError, match="cannot reach the Docker daemon at unix://.*bwrap"):
        build_image()


# -- the real image ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def sandbox_image() -> str:
    require_docker()
    return build_image(progress=lambda line: print(line, file=sys.stderr))


def test_the_image_is_built_once_and_has_python_with_numpy(sandbox_image: str) -> None:
    import docker

    client = docker.from_env()
    image = client.images.get(sandbox_image)
    assert sandbox_image == default_image()
    assert build_image() == sandbox_image  # a no-op: the tag exists
    assert client.images.get(sandbox_image).id == image.id
    out = client.containers.run(sandbox_image, ["python3", "-c",
                                "import numpy, os; print(numpy.arange(3).sum(), os.getuid())"],
                                remove=True, network_mode="none")
    assert out.split() == [b"3", b"65534"]


def test_the_rootfs_matches_the_image(sandbox_image: str) -> None:
    rootfs = rootfs_path()
    if not rootfs.is_dir():
        pytest.skip("the image was built from the Dockerfile; no debootstrap rootfs here")
    assert (rootfs / "usr/bin/python3").exists()
    assert any((rootfs / "usr/lib/python3/dist-packages").glob("numpy"))
    assert not any((rootfs / "usr/share/doc").iterdir())
    assert os.stat(rootfs).st_uid == 0
