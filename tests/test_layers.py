"""The house stands: every import in the four packages runs with the layers (``evolve`` →
``fitness`` → ``sandboxes``; ``evolve`` → ``archive``), no package imports another's private
module, and no modules import each other, directly or round a longer cycle. The scripts in
``benchmarks/`` use the packages as a user would: through their public faces only.

Imports are read from the source with ``ast``, so an import inside a function or under
``TYPE_CHECKING`` counts too. The checker itself is tested on a planted tree.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("evolve", "fitness", "sandboxes", "archive")
#: The other packages each package may import (benchmarks: scripts, not a package).
ALLOWED = {"evolve": {"fitness", "sandboxes", "archive"}, "fitness": {"sandboxes"},
           "sandboxes": set(), "archive": set(), "benchmarks": set(PACKAGES)}


def modules(root: Path) -> dict[str, Path]:
    """Every module of the four packages and every benchmark script below ``root``: dotted
    name → file."""
    found = {}
    for package in (*PACKAGES, "benchmarks"):
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[int, str]]:
    """(line, absolute module) of each import in module ``name``; ``from x import y`` gives
    ``x.y`` when that is a module, else ``x``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((node.lineno, sub if sub in known else target))
    return found


def layer_violations(root: Path) -> list[str]:
    known = modules(root)
    bad = []
    for name, path in known.items():
        own = name.split(".")[0]
        for line, target in imports(name, path, known):
            top = target.split(".")[0]
            if top not in PACKAGES or top == own:
                continue
            where = f"{path.relative_to(root)}:{line} imports {target}"
            if top not in ALLOWED[own]:
                bad.append(f"{where}: {own} may not import {top} (the layers run "
                           "evolve -> fitness -> sandboxes, evolve -> archive)")
            elif any(part.startswith("_") for part in target.split(".")[1:]):
                bad.append(f"{where}: a private module of {top}; import from {top} itself")
    return bad


def import_cycles(root: Path) -> list[list[str]]:
    known = modules(root)
    graph = nx.DiGraph()
    for name, path in known.items():
        for _, target in imports(name, path, known):
            while target and target not in known:
                target = target.rpartition(".")[0]
            # a package's own __init__ importing its modules is how a face is made
            if target and target != name and not target.startswith(name + "."):
                if not name.startswith(target + "."):  # a module reading its package's face
                    graph.add_edge(name, target)
    return sorted(sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1)


def test_imports_run_with_the_layers_and_through_public_faces() -> None:
    assert layer_violations(ROOT) == []


def test_no_modules_import_each_other() -> None:
    assert import_cycles(ROOT) == []


def test_the_checker_finds_planted_violations(tmp_path: Path) -> None:
    files = {
        "archive/__init__.py": "from ._store import Store\n",
        "archive/_store.py": "from ._index import Index\n",
        "archive/_index.py": "def get():\n    from ._store import Store\n",
        "sandboxes/__init__.py": "",
        "sandboxes/_run.py": "import fitness\n",
        "fitness/__init__.py": "from sandboxes._run import run\n",
        "evolve/__init__.py": "from archive import Store\nfrom evolve import _loop\n",
        "evolve/_loop.py": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                            "    from archive._index import Index\n"),
        "benchmarks/speed.py": "import archive\nfrom evolve._loop import Loop\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(textwrap.dedent(text))
    found = layer_violations(tmp_path)
    assert len(found) == 4, found
    assert any("benchmarks/speed.py:2" in v and "private module of evolve" in v for v in found)
    assert any("sandboxes/_run.py:1" in v and "may not import fitness" in v for v in found)
    assert any("fitness/__init__.py:1" in v and "private module of sandboxes" in v
               for v in found)
    assert any("evolve/_loop.py:3" in v and "archive._index" in v for v in found)
    assert import_cycles(tmp_path) == [["archive._index", "archive._store"],
                                       ["fitness", "sandboxes._run"]]
