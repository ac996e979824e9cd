"""The default sandbox image (Debian minbase + python3 + python3-numpy) and its root filesystem.

A ``Recipe`` (suite, packages, architecture and the Dockerfile text) has a
content hash; the image is tagged ``cladeforge-sandbox:<hash12>`` and is
rebuilt only when the recipe changes. Two ways to build it:

- ``dockerfile``: ``docker build`` of ``sandboxes/Dockerfile`` (needs a
  reachable container registry, or the ``debian:<suite>-slim`` base locally);
- ``debootstrap``: offline, from the system's own apt sources: a minbase root
  filesystem made by ``debootstrap``, trimmed, then ``docker import``-ed.

The debootstrap root filesystem is kept in the cache dir
(``~/.cache/cladeforge/sandbox/rootfs-<hash12>``, or ``$CLADEFORGE_CACHE``)
because the bubblewrap backend uses it as its read-only root: both backends
then give the candidate the same Python with numpy. Every build happens in a
temporary sibling that is renamed into place at the end, so a killed build
leaves nothing that is later taken as done.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ._aptsources import mirror_for, system_suite
from ._base import SandboxError
from ._host_dirs import pid_alive

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]
REPOSITORY = "cladeforge-sandbox"
PACKAGES = ("python3", "python3-numpy")
METHODS = ("auto", "dockerfile", "debootstrap")
DOCKERFILE = Path(__file__).with_name("Dockerfile")
# What the debootstrap root filesystem does not need at run time.
_TRIM = ("var/lib/apt/lists", "var/cache/apt", "var/cache/debconf", "usr/share/doc",
         "usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian",
         "var/log", "tmp", "var/tmp")
_IMPORT_CHANGES = ("USER 65534:65534", "WORKDIR /work", "ENV LANG=C.UTF-8", "ENV HOME=/work",
                   "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
_TMP_MARK = ".tmp-"
#: How to build a missing image or root filesystem, in this package's own terms; a caller
#: with its own command for it (a CLI) passes its sentence instead.
DEFAULT_BUILD_HINT = ("build it with sandboxes.build_image(), or sandboxes.ensure_rootfs() "
                      "for bwrap's root filesystem")


def _quiet(_line: str) -> None:
    pass


@dataclass(frozen=True)
class Recipe:
    """What the sandbox image is made of; its hash names the image and the rootfs.

    ``suite`` is the Debian suite (default: the host's), ``packages`` what is
    installed on top of minbase, ``dockerfile`` the Dockerfile text (part of
    the hash so that editing it rebuilds), ``arch`` the machine architecture.
    """

    suite: str
    packages: tuple[str, ...] = PACKAGES
    dockerfile: str = ""
    arch: str = ""

    @property
    def digest(self) -> str:
        text = json.dumps([self.suite, sorted(self.packages), self.dockerfile, self.arch])
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def tag(self) -> str:
        return f"{REPOSITORY}:{self.digest[:12]}"


def default_recipe(suite: str | None = None) -> Recipe:
    """The default recipe: the host's Debian suite, python3 and numpy, ``sandboxes/Dockerfile``."""
    return Recipe(suite=suite or system_suite(), packages=PACKAGES,
                  dockerfile=DOCKERFILE.read_text(), arch=platform.machine())


def default_image(recipe: Recipe | None = None) -> str:
    """The tag of the default image (built or not): ``cladeforge-sandbox:<hash12>``."""
    return (recipe or default_recipe()).tag


def cache_dir(cache: str | os.PathLike[str] | None = None) -> Path:
    """Where root filesystems are kept: ``cache``, else ``$CLADEFORGE_CACHE/sandbox``,
    else ``~/.cache/cladeforge/sandbox``."""
    if cache is not None:
        return Path(cache)
    env = os.environ.get("CLADEFORGE_CACHE")
    if env:
        return Path(env) / "sandbox"
    return Path.home() / ".cache" / "cladeforge" / "sandbox"


def rootfs_path(recipe: Recipe | None = None, cache: str | os.PathLike[str] | None = None) -> Path:
    """The path of the recipe's root filesystem (it exists only once built: ``ensure_rootfs``)."""
    return cache_dir(cache) / f"rootfs-{(recipe or default_recipe()).digest[:12]}"


def ensure_rootfs(recipe: Recipe | None = None, *, cache: str | os.PathLike[str] | None = None,
                  progress: Progress | None = None, force: bool = False) -> Path:
    """Return the recipe's debootstrap root filesystem, building it first if missing.

    ``force`` rebuilds it even when present. Needs root, ``debootstrap`` and
    an apt source for the suite in the system's apt configuration.
    """
    recipe = recipe or default_recipe()
    say = progress or _quiet
    final = rootfs_path(recipe, cache)
    if final.is_dir() and not force:
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with _build_lock(final.parent):
        if final.is_dir() and not force:
            return final  # another process built it while we waited
        remove_stale_tmp(final.parent)
        with atomic_dir(final, replace=force) as tmp:
            _debootstrap(recipe, tmp, cache_dir(cache) / "debs", say)
            say("trimming the root filesystem (apt lists, docs, man pages, caches)")
            trim_rootfs(tmp)
    say(f"root filesystem ready: {final}")
    return final


def build_image(force: bool = False, *, method: str = "auto", recipe: Recipe | None = None,
                cache: str | os.PathLike[str] | None = None, progress: Progress | None = None,
                client: object = None) -> str:
    """Build the sandbox image if its tag is missing and return the tag.

    ``force`` rebuilds even when the tag exists. ``method`` is ``dockerfile``
    (``docker build`` of ``sandboxes/Dockerfile``), ``debootstrap`` (offline,
    ``docker import`` of ``ensure_rootfs()``) or ``auto``: the Dockerfile
    where a registry is reachable (or the base image is present), else
    debootstrap. ``progress`` receives one line per build stage.
    """
    if method not in METHODS:
        raise SandboxError(f"unknown sandbox image build method {method!r}; "
                           f"choose one of {', '.join(METHODS)}")
    recipe = recipe or default_recipe()
    say = progress or _quiet
    client = docker_client(client)
    if not force and image_exists(client, recipe.tag):
        return recipe.tag
    if method == "auto":
        method = "dockerfile" if _can_use_dockerfile(client, recipe) else "debootstrap"
        say(f"build method: {method}")
    if method == "dockerfile":
        _build_dockerfile(client, recipe, say)
    else:
        _import_rootfs(client, ensure_rootfs(recipe, cache=cache, progress=say, force=force),
                       recipe, cache_dir(cache), say)
    say(f"image ready: {recipe.tag}")
    return recipe.tag


def docker_client(client: object = None):  # noqa: ANN201 - docker.DockerClient
    """``client``, or a client from the environment (``DOCKER_HOST``) that answers a ping."""
    import docker

    if client is not None:
        return client
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise SandboxError(f"cannot reach the Docker daemon at {where}: start dockerd or "
                           f"choose sandbox backend bwrap ({exc})") from exc
    return client


def image_exists(client: object, tag: str) -> bool:
    import docker

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.DockerException as exc:
        raise SandboxError(f"cannot query the Docker daemon for image {tag}: {exc}") from exc
    return True


def registry_reachable(client: object, timeout: float = 3.0) -> bool:
    """True if the daemon's configured registry (or a mirror) answers HTTP within ``timeout``."""
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit

    info = client.info()
    config = info.get("RegistryConfig") or {}
    endpoints = list(config.get("Mirrors") or []) + [info.get("IndexServerAddress") or ""]
    for endpoint in filter(None, endpoints):
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        try:
            urllib.request.urlopen(f"{parts.scheme}://{parts.netloc}/v2/", timeout=timeout)
        except urllib.error.HTTPError:
            return True  # 401 and friends: the registry is there
        except (OSError, ValueError):
            continue
        return True
    return False


def _can_use_dockerfile(client: object, recipe: Recipe) -> bool:
    return image_exists(client, f"debian:{recipe.suite}-slim") or registry_reachable(client)


def _build_dockerfile(client: object, recipe: Recipe, say: Progress) -> None:
    import io

    import docker

    say(f"docker build of sandboxes/Dockerfile (debian:{recipe.suite}-slim)")
    try:
        for chunk in client.api.build(
                fileobj=io.BytesIO(recipe.dockerfile.encode()), tag=recipe.tag, rm=True,
                forcerm=True, decode=True, labels={"cladeforge.recipe": recipe.digest},
                buildargs={"SUITE": recipe.suite, "PACKAGES": " ".join(recipe.packages)}):
            if "error" in chunk:
                raise SandboxError(f"docker build of the sandbox image failed: {chunk['error']}")
            line = str(chunk.get("stream", "")).strip()
            if line.startswith("Step "):
                say(line)
    except docker.errors.DockerException as exc:
        raise SandboxError(f"docker build of the sandbox image failed: {exc}") from exc


def _import_rootfs(client: object, rootfs: Path, recipe: Recipe, cache: Path,
                   say: Progress) -> None:
    import docker

    if shutil.which("tar") is None:
        raise SandboxError("tar is not installed: it is needed to import the root filesystem")
    tarball = cache / f".{rootfs.name}.tar{_TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        say(f"packing {rootfs} for docker import")
        subprocess.run(["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf",
                        str(tarball), "."], check=True, capture_output=True)
        say(f"docker import as {recipe.tag}")
        repository, tag = recipe.tag.split(":")
        client.api.import_image(src=str(tarball), repository=repository, tag=tag,
                                changes=[*_IMPORT_CHANGES,
                                         f"LABEL cladeforge.recipe={recipe.digest}"])
    except subprocess.CalledProcessError as exc:
        raise SandboxError(f"packing the root filesystem failed: {exc.stderr.decode()[-500:]}"
                           ) from exc
    except docker.errors.DockerException as exc:
        raise SandboxError(f"docker import of the sandbox image failed: {exc}") from exc
    finally:
        tarball.unlink(missing_ok=True)


def _debootstrap(recipe: Recipe, target: Path, debs: Path, say: Progress) -> None:
    binary = shutil.which("debootstrap")
    if binary is None:
        raise SandboxError("debootstrap is not installed: apt-get install debootstrap (or build "
                           "with --method dockerfile where a container registry is reachable)")
    if os.geteuid() != 0:
        raise SandboxError("building the sandbox root filesystem with debootstrap needs root: "
                           "run the build as root")
    source = mirror_for(recipe.suite)
    debs.mkdir(parents=True, exist_ok=True)
    cmd = [binary, "--variant=minbase", f"--include={','.join(recipe.packages)}",
           f"--cache-dir={debs.resolve()}"]
    if source.signed_by:
        cmd.append(f"--keyring={source.signed_by}")
    cmd += [recipe.suite, str(target), source.uri]
    say(f"debootstrap {recipe.suite} from {source.uri} (a few minutes the first time)")
    logger.info("running %s", " ".join(cmd))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    stages: set[str] = set()
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-20:]
        verb = line.split()[1] if line.startswith("I: ") and len(line.split()) > 1 else ""
        if verb and verb not in stages:  # one line per stage, not one per package
            stages.add(verb)
            say(f"debootstrap: {line[3:]}")
    if proc.wait() != 0:
        raise SandboxError(f"debootstrap failed (exit {proc.returncode}):\n" + "\n".join(tail))


def trim_rootfs(root: Path) -> None:
    """Empty what the sandbox never needs (apt lists, docs, man pages, caches, logs) and
    create the mount points the backends use (/work, /run/cladeforge, /tmp)."""
    for rel in _TRIM:
        directory = root / rel
        if directory.is_dir() and not directory.is_symlink():
            for child in directory.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
    for rel, mode in (("work", 0o755), ("run/cladeforge", 0o755), ("tmp", 0o1777)):
        (root / rel).mkdir(parents=True, exist_ok=True)
        (root / rel).chmod(mode)


@contextlib.contextmanager
def atomic_dir(final: Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary sibling of ``final``; rename it to ``final`` on success.

    On an exception the temporary dir is removed and ``final`` is untouched. A
    killed process leaves only a ``.<name>.tmp-<pid>-...`` dir, which is never
    taken as ``final`` and is removed by ``remove_stale_tmp``. With
    ``replace`` an existing ``final`` is swapped out and removed.
    """
    tmp = final.with_name(f".{final.name}{_TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if replace and final.exists():
            old = tmp.with_name(tmp.name + "-old")
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale_tmp(parent: Path) -> list[Path]:
    """Remove temporary build leftovers in ``parent`` whose building process is gone."""
    removed = []
    for path in parent.glob(f".*{_TMP_MARK}*"):
        pid_text = path.name.rsplit(_TMP_MARK, 1)[1].split("-", 1)[0]
        if pid_text.isdigit() and pid_alive(int(pid_text)):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed
    return True


@contextlib.contextmanager
def _build_lock(parent: Path) -> Iterator[None]:
    with open(parent / ".build.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
