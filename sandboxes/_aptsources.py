"""The system's Debian suite and apt mirror, read from its own configuration.

No mirror host name is written into Cladeforge: the offline image build takes
the mirror from ``/etc/apt/sources.list`` and ``/etc/apt/sources.list.d``
(one-line ``*.list`` files and deb822 ``*.sources`` files).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ._base import SandboxError

APT_DIR = Path("/etc/apt")
OS_RELEASE = Path("/etc/os-release")


@dataclass(frozen=True)
class AptSource:
    """One ``deb`` source: its URI, suites and components, and its keyring (``Signed-By``)."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...] = ()
    signed_by: str | None = None


def system_suite(os_release: Path = OS_RELEASE, apt_dir: Path = APT_DIR) -> str:
    """The host's suite: ``VERSION_CODENAME`` of /etc/os-release, else the first apt source's."""
    if os_release.is_file():
        for line in os_release.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "VERSION_CODENAME" and value.strip().strip("\"'"):
                return value.strip().strip("\"'")
    for source in apt_sources(apt_dir):
        if source.suites:
            return source.suites[0]
    raise SandboxError(f"cannot tell this system's Debian suite: no VERSION_CODENAME in "
                       f"{os_release} and no apt source in {apt_dir}")


def apt_sources(apt_dir: Path = APT_DIR) -> list[AptSource]:
    """Every enabled ``deb`` (binary) source of the system, in apt's reading order."""
    sources: list[AptSource] = []
    main = apt_dir / "sources.list"
    if main.is_file():
        sources += parse_list(main.read_text())
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".list":
                sources += parse_list(path.read_text())
            elif path.suffix == ".sources":
                sources += parse_deb822(path.read_text())
    return sources


def mirror_for(suite: str, apt_dir: Path = APT_DIR) -> AptSource:
    """The first configured source that serves ``suite`` itself (not ``-updates``/``-security``)."""
    for source in apt_sources(apt_dir):
        if suite in source.suites and not source.uri.startswith("cdrom:"):
            return source
    raise SandboxError(f"no apt source for suite {suite!r} in {apt_dir}/sources.list or "
                       f"{apt_dir}/sources.list.d: add one (the offline sandbox image build "
                       "uses the system's own mirror)")


def parse_list(text: str) -> list[AptSource]:
    """Parse one-line-style sources: ``deb [options] URI SUITE [COMPONENT...]``."""
    sources = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb ") and not line.startswith("deb\t"):
            continue
        rest = line[3:].strip()
        options: dict[str, str] = {}
        match = re.match(r"\[([^\]]*)\]\s*", rest)
        if match:
            for option in match.group(1).split():
                key, _, value = option.partition("=")
                options[key.lower()] = value
            rest = rest[match.end():]
        fields = rest.split()
        if len(fields) >= 2:
            sources.append(AptSource(uri=fields[0], suites=(fields[1],),
                                     components=tuple(fields[2:]),
                                     signed_by=options.get("signed-by")))
    return sources


def parse_deb822(text: str) -> list[AptSource]:
    """Parse deb822-style sources (stanzas of ``Types:``, ``URIs:``, ``Suites:``, ...)."""
    sources = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and key:
                fields[key] += "\n" + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        signed_by = fields.get("signed-by", "").strip() or None
        if signed_by and "\n" in signed_by:
            signed_by = None  # an inline key block: debootstrap cannot take it as a path
        for uri in fields.get("uris", "").split():
            sources.append(AptSource(uri=uri, suites=tuple(fields.get("suites", "").split()),
                                     components=tuple(fields.get("components", "").split()),
                                     signed_by=signed_by))
    return sources
