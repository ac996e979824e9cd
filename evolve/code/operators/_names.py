"""Names a Python program uses but never defines: a NameError found before the sandbox.

A small model's edit often calls a helper it never wrote (``square(i * r / n)``);
the program then compiles and dies at run time, after a sandbox evaluation. The
scopes come from :mod:`symtable` (the compiler's own analysis), so a name is
undefined exactly when the compiler would look it up among the module's globals
and builtins and the module defines no such global anywhere. The check is
conservative: a star import defines unknown names (nothing is reported), the
order of definitions is not followed, and names used only in annotations are
ignored (they may never be evaluated).
"""

from __future__ import annotations

import ast
import builtins
import symtable

#: names every module has without defining them
_MODULE_NAMES = frozenset({"__name__", "__file__", "__doc__", "__builtins__", "__spec__",
                           "__loader__", "__package__", "__path__", "__cached__",
                           "__annotations__", "__dict__"})
_KNOWN = frozenset(dir(builtins)) | _MODULE_NAMES


def undefined_names(text: str, path: str = "<program>") -> dict[str, int]:
    """``{name: first line it is read on}`` for the globals ``text`` reads and never
    defines ({} when it does not parse, or has a star import)."""
    try:
        tree = ast.parse(text, path)
        table = symtable.symtable(text, path, "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return {}
    if any(isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names)
           for node in ast.walk(tree)):
        return {}
    defined: set[str] = set()
    _definitions(table, defined, module=True)
    reads = _GlobalReads(table, {id(n) for node in ast.walk(tree)
                                 for n in _annotation_nodes(node)})
    reads.walk(tree, table)
    missing = sorted((at, name) for name, at in reads.first.items()
                     if name not in defined and name not in _KNOWN)
    return {name: line for (line, _), name in missing}


def _definitions(table: symtable.SymbolTable, defined: set[str], *, module: bool) -> None:
    """The names ``table`` (and its nested scopes, through ``global``) define globally."""
    for symbol in table.get_symbols():
        if ((module or symbol.is_declared_global())
                and (symbol.is_assigned() or symbol.is_imported() or symbol.is_namespace())):
            defined.add(symbol.get_name())
    for child in table.get_children():
        _definitions(child, defined, module=False)


#: the symbol-table name of each kind of scope-making node
_SCOPES = {ast.Lambda: "lambda", ast.ListComp: "listcomp", ast.SetComp: "setcomp",
           ast.DictComp: "dictcomp", ast.GeneratorExp: "genexpr"}


class _GlobalReads:
    """The first line of each global lookup, walking the syntax tree in step with the
    symbol tables (each scope-making node is matched to its table by name and line, in
    source order)."""

    def __init__(self, table: symtable.SymbolTable, skip: set[int]) -> None:
        self.tables: dict[tuple[str, int], list[symtable.SymbolTable]] = {}
        self._index(table)
        self.skip = skip  # annotation nodes
        self.first: dict[str, tuple[int, int]] = {}  # name -> (line, column) of first read

    def _index(self, table: symtable.SymbolTable) -> None:
        for child in table.get_children():
            self.tables.setdefault((child.get_name(), child.get_lineno()), []).append(child)
            self._index(child)

    def walk(self, node: ast.AST, table: symtable.SymbolTable) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Name):
                if (isinstance(child.ctx, ast.Load) and id(child) not in self.skip
                        and _reads_global(table, child.id)):
                    at = (child.lineno, child.col_offset)
                    self.first[child.id] = min(self.first.get(child.id, at), at)
            self.walk(child, self._scope_of(child) or table)

    def _scope_of(self, node: ast.AST) -> symtable.SymbolTable | None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = node.name
        else:
            name = _SCOPES.get(type(node), "")
        queue = self.tables.get((name, getattr(node, "lineno", -1))) if name else None
        return queue.pop(0) if queue else None


def _reads_global(table: symtable.SymbolTable, name: str) -> bool:
    try:
        symbol = table.lookup(name)
    except KeyError:
        return False
    if not symbol.is_referenced():
        return False
    if table.get_type() == "module" or symbol.is_declared_global():
        return True
    # not is_global(): before Python 3.12 it also holds for a local whose name the module
    # binds too
    return not (symbol.is_parameter() or symbol.is_assigned() or symbol.is_imported()
                or symbol.is_namespace() or symbol.is_free() or symbol.is_nonlocal()
                or symbol.is_annotated())


def _annotation_nodes(node: ast.AST) -> list[ast.AST]:
    annotations: list[ast.AST | None] = []
    if isinstance(node, ast.arg):
        annotations.append(node.annotation)
    elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        annotations.append(node.returns)
    elif isinstance(node, ast.AnnAssign):
        annotations.append(node.annotation)
    return [n for a in annotations if a is not None for n in ast.walk(a)]


def name_error(path: str, parent_text: str | None, child_text: str) -> str | None:
    """Why ``child_text`` would raise a NameError (None: it reads no name it lacks).

    Names the parent already read without defining them are not counted: the
    program may be given them (e.g. by the harness that runs it)."""
    if not path.endswith(".py"):
        return None
    missing = undefined_names(child_text, path)
    if parent_text is not None and missing:
        inherited = undefined_names(parent_text, path)
        missing = {k: v for k, v in missing.items() if k not in inherited}
    if not missing:
        return None
    shown = ", ".join(f"'{name}' (line {line})" for name, line in list(missing.items())[:5])
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    return (f"{path} uses {shown}{more}, which {'is' if len(missing) == 1 else 'are'} "
            "never defined or imported: define it in the program or use an existing name")
