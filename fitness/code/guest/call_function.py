"""Runs inside a sandbox: call a candidate's function on given inputs and write the outputs.

Reads ``calls.json`` (a list of argument lists), imports the candidate's module
file named by argv[1], calls the function named by argv[2] once per argument
list, and writes ``outputs.json``: one ``{"value": ...}`` or ``{"error": "..."}``
per call. It never sees the expected answers: the trusted scorer outside the
sandbox compares these outputs with them. A value nested deeper than
``MAX_DEPTH`` is an error of that call: the scorer refuses JSON nested deeper
than ``sandboxes.MAX_JSON_DEPTH`` (64) as a whole. Standard library only.
"""

import importlib.util
import json
import sys

#: Deepest value a call may return; the list of outputs and ``{"value": ...}`` add two levels.
MAX_DEPTH = 60


def too_deep(value, limit=MAX_DEPTH):
    """Whether ``value`` nests lists/dicts more than ``limit`` levels (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, list | tuple | dict):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def main() -> int:
    module_file, entry_point = sys.argv[1], sys.argv[2]
    with open("calls.json") as handle:
        calls = json.load(handle)
    outputs = []
    try:
        spec = importlib.util.spec_from_file_location("candidate", module_file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        function = getattr(module, entry_point)
    except BaseException as exc:  # the candidate's own failure: recorded, not fatal
        outputs = [{"error": f"import failed: {type(exc).__name__}: {exc}"[:500]}] * len(calls)
    else:
        for args in calls:
            try:
                value = function(*args)
                json.dumps(value)
                if too_deep(value):
                    raise ValueError(f"the value is nested more than {MAX_DEPTH} levels deep")
                outputs.append({"value": value})
            except BaseException as exc:
                outputs.append({"error": f"{type(exc).__name__}: {exc}"[:500]})
    with open("outputs.json", "w") as handle:
        json.dump(outputs, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
