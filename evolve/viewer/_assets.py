"""Fetch the page's JavaScript libraries from the npm registry into ``static/vendor``:

    python -m evolve.viewer._assets        (make viewer-assets)

``npm pack`` downloads each pinned package (checking the registry's integrity hash);
its browser bundle and licence are copied out, and ``static/vendor/VERSIONS.txt`` records
what came from where. The files are committed and ship as package data, so installing
Cladeforge needs no npm and the page never loads anything from another host.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VENDOR = Path(__file__).parent / "static" / "vendor"
#: package, version, the bundle in its tarball, the licence in its tarball
PACKAGES = (
    ("graphology", "0.26.0", "package/dist/graphology.umd.min.js", "package/LICENSE.txt"),
    ("sigma", "3.0.2", "package/dist/sigma.min.js", "package/LICENSE.txt"),
)


def fetch(vendor: Path = VENDOR) -> list[Path]:
    """Download and unpack every package of ``PACKAGES`` into ``vendor``."""
    if shutil.which("npm") is None:
        raise SystemExit("npm is needed to fetch the viewer's libraries (apt-get install npm)")
    vendor.mkdir(parents=True, exist_ok=True)
    written, lines = [], ["# the viewer's JavaScript libraries, from the npm registry "
                          "(python -m evolve.viewer._assets)"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, version, bundle, licence in PACKAGES:
            done = subprocess.run(["npm", "pack", f"{name}@{version}", "--json"], cwd=tmp,
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"npm pack {name}@{version} failed:\n{done.stderr}")
            tarball = next(Path(tmp).glob(f"{name}-{version}.tgz"))
            with tarfile.open(tarball) as archive:
                for member, target in ((bundle, f"{name}.min.js"),
                                       (licence, f"{name}.LICENSE.txt")):
                    source = archive.extractfile(member)
                    if source is None:
                        raise SystemExit(f"{name}@{version} has no {member}")
                    path = vendor / target
                    path.write_bytes(source.read())
                    written.append(path)
            lines.append(f"{name} {version}: {bundle} -> {name}.min.js, "
                         f"{licence} -> {name}.LICENSE.txt")
    (vendor / "VERSIONS.txt").write_text("\n".join(lines) + "\n")
    return written


if __name__ == "__main__":
    for path in fetch():
        print(path, file=sys.stderr)
