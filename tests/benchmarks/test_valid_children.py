"""``benchmarks/valid_children.py`` on a stub OpenAI server: the rows and rates its tables
show follow from the scripted answers (one child per operator and mode)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.stub_openai import Reply, StubOpenAI

ROOT = Path(__file__).resolve().parents[2]

#: a valid diff_edit answer for the circle-packing seed program (smaller circles: the child
#: runs, scores lower than its parent)
BLOCK = ("<<<<<<< SEARCH\n    r = 0.225 / max(cols, rows)\n=======\n"
         "    r = 0.2 / max(cols, rows)\n>>>>>>> REPLACE\n")
PROSE = "I would make the circles a little bigger so that they fill the square."


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "valid_children", ROOT / "benchmarks" / "valid_children.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def cut(text: str) -> Reply:
    """A completion cut at max_tokens."""
    return Reply.garbage(json.dumps({
        "object": "chat.completion", "model": "stub",
        "choices": [{"index": 0, "finish_reason": "length",
                     "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
    }).encode())


def rows(out: str) -> dict[str, list[str]]:
    """The table rows (label -> its columns), the label being operator and mode."""
    found = {}
    for line in out.splitlines():
        words = line.split()
        if len(words) > 2 and words[1] in ("constrained+repair", "constrained", "free"):
            found.setdefault(f"{words[0]} {words[1]}", words[2:])
    return found


def run_main(module: ModuleType, argv: list[str]) -> dict:
    return asyncio.run(module.main(module.parse(argv)))


def test_code_operator_rows(capsys: pytest.CaptureFixture[str]) -> None:
    vc = load()
    with StubOpenAI() as stub:
        stub.script(Reply.ok(PROSE), Reply.ok(BLOCK),  # constrained+repair: repaired
                    Reply.ok(PROSE),  # constrained: no block
                    cut(PROSE))  # free: cut at max_tokens
        tallies = run_main(vc, [
            "--benchmark", "circle_packing", "--sandbox", "process", "--operators",
            "diff_edit", "--n", "1", "--base-url", stub.base_url, "--grammar-field",
            "grammar", "--max-tokens", "64"])
        assert len(stub.requests) == 4
        assert "grammar" in stub.requests[0].body and "grammar" not in stub.requests[3].body
        repair = stub.requests[1].body["messages"]
        assert [m["role"] for m in repair] == ["system", "user", "assistant", "user"]
    out = capsys.readouterr().out
    table = rows(out)
    # apply compile valid changed better repair rep>ok cut tokens s/child s/eval
    assert table["diff_edit constrained+repair"][:8] == [
        "100%", "100%", "100%", "100%", "0%", "100%", "1/1", "0%"]
    assert table["diff_edit constrained"][:8] == [
        "0%", "0%", "0%", "0%", "0%", "0%", "0/0", "0%"]
    assert table["diff_edit free"][:8] == ["0%", "0%", "0%", "0%", "0%", "0%", "0/0", "100%"]
    assert tallies["diff_edit constrained"].failures == {"no_block": 1}
    assert tallies["diff_edit free"].failures == {"truncated": 1}
    why = [line.split() for line in out.split("by failure kind:")[1].splitlines()]
    assert ["diff_edit", "constrained", "no_block", "1"] in why
    assert ["diff_edit", "free", "truncated", "1"] in why
    assert ["diff_edit", "constrained+repair", "-"] in why


def test_prompt_operator_rows(capsys: pytest.CaptureFixture[str]) -> None:
    vc = load()
    wrong = Reply.ok("The value is unknown.\nAnswer: 1000001")
    with StubOpenAI(default=wrong) as stub:
        stub.script(wrong, wrong,  # the parent on the 2 examples
                    Reply.ok("Multiply before you add, then check each step."),
                    wrong, wrong,  # zero_order_direct constrained: a valid child, scored
                    Reply.ok("Solve the problem."))  # free: a copy of the parent
        tallies = run_main(vc, [
            "--benchmark", "arithmetic", "--operators", "zero_order_direct,crossover",
            "--n", "1", "--examples", "2", "--base-url", stub.base_url])
        assert len(stub.requests) == 6
    out = capsys.readouterr().out
    table = rows(out)
    assert "constrained+repair runs as constrained" in out
    assert "zero_order_direct constrained+repair" not in table
    # valid changed better cut tokens s/child s/eval
    assert table["zero_order_direct constrained"][:4] == ["100%", "0%", "0%", "0%"]
    assert table["zero_order_direct free"][:4] == ["0%", "0%", "0%", "0%"]
    assert tallies["zero_order_direct free"].failures == {"duplicate": 1}
    assert table["crossover constrained"][:2] == ["not", "applicable:"]
    assert tallies["crossover free"].made == 0
