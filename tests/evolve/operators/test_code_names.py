"""Names a child program reads and never defines are found before the sandbox."""

from __future__ import annotations

import pytest

from archive import Failure
from evolve.code.operators._base import REPAIRABLE, tree_violation
from evolve.code.operators._names import name_error, undefined_names

PARENT = """import math

def area(r):
    return math.pi * r * r

def run(n):
    return [area(i / n) for i in range(n)]
"""


def test_a_call_to_a_helper_never_written_is_reported_with_its_line() -> None:
    child = PARENT.replace("area(i / n)", "square(i * r / n)")
    assert undefined_names(child) == {"square": 7, "r": 7}
    assert name_error("a.py", PARENT, child) == (
        "a.py uses 'square' (line 7), 'r' (line 7), which are never defined or imported: "
        "define it in the program or use an existing name")


@pytest.mark.parametrize("program", [
    PARENT,
    "def f():\n    global g\n    g = 1\n\ndef h():\n    return g\n",  # defined through global
    "class A:\n    x = 1\n    y = [x]\n",  # class-level names
    "def f(a: Missing) -> Other:\n    return a\n",  # annotations only
    "def outer():\n    v = 1\n    def inner():\n        return v\n    return inner\n",
    "from os.path import *\nprint(join('a', 'b'))\n",  # a star import defines unknown names
    "try:\n    import numpy as np\nexcept ImportError:\n    np = None\nprint(np, len, __name__)\n",
    "def f(*args, **kw):\n    return [x for x in args if kw.get(x)]\n",
    "x = y = 1\nfor i in range(3):\n    z = i\nprint(x, y, z)\n",
])
def test_programs_that_define_what_they_read_pass(program: str) -> None:
    assert undefined_names(program) == {}


@pytest.mark.parametrize("program, name", [
    ("print(missing)\n", "missing"),  # module level
    ("def f():\n    return helper(1)\n", "helper"),  # in a function
    ("class A:\n    def m(self):\n        return x\n    x = 1\n", "x"),  # class attr, bare
    ("def f():\n    return [q for _ in range(2)]\n", "q"),  # in a comprehension
    ("def f():\n    def g():\n        return w\n    return g\n", "w"),  # nested function
    ("lambda: nope\n", "nope"),
])
def test_each_kind_of_scope_reports_a_name_it_lacks(program: str, name: str) -> None:
    assert name in undefined_names(program)


def test_names_the_parent_already_lacked_are_not_blamed_on_the_child() -> None:
    parent = "def run():\n    return injected_by_harness()\n"
    child = "def run():\n    return injected_by_harness() + 1\n"
    assert name_error("a.py", parent, child) is None
    assert "'other'" in name_error("a.py", parent, child.replace("+ 1", "+ other"))
    assert name_error("notes.txt", None, "print(missing)") is None  # only Python files


def test_a_child_reading_an_undefined_name_is_an_invalid_runtime_error_that_is_repaired(
) -> None:
    child = {"a.py": PARENT.replace("area(i / n)", "square(i / n)")}
    error = tree_violation({"a.py": PARENT}, child, ["a.py"], "the edit")
    assert error is not None and error.failure is Failure.RUNTIME_ERROR
    assert "'square' (line 7)" in error.reason
    assert Failure.RUNTIME_ERROR in REPAIRABLE
    # a syntax error is reported first (it hides every name)
    broken = {"a.py": PARENT.replace("return math.pi", "return (math.pi")}
    assert tree_violation({"a.py": PARENT}, broken, ["a.py"], "the edit").failure is (
        Failure.SYNTAX_ERROR)


def test_a_local_whose_name_the_module_also_binds_is_not_a_global_read() -> None:
    # before Python 3.12, symtable calls such a parameter "global"
    assert undefined_names("k = 1\n\ndef f(k):\n    return k\n") == {}
    assert undefined_names("def f(k):\n    return k\n\nfor k in range(2):\n    f(k)\n") == {}
