"""``evolve status`` counts the children by failure kind and by operator, with the
valid-child rate (issue 14, point 5)."""

from __future__ import annotations

import json
from dataclasses import replace

from archive import Failure, Status
from evolve._report import children_report, format_children, format_show, show
from tests.evolve.selection.sel_support import candidate, index_of


def child(cid: int, operator: str, failure: Failure | None = None, *,
          status: Status | None = None, parents: tuple[int, ...] = (1,)):
    if status is None:
        status = Status.EVALUATED if failure is None else Status.INVALID
    c = candidate(cid, 0.5, status=status, parents=parents)
    return replace(c, operator=operator, failure=failure,
                   reason=None if status is Status.EVALUATED else f"why {cid}")


def test_counts_by_kind_and_operator_and_the_valid_rate():
    index = index_of(
        candidate(1, 0.2),  # the seed: no parent, not a child
        candidate(2, 0.3),  # an initial unit: no parent either
        replace(child(3, "diff_edit"), mutation={"repairs": 1}),
        child(4, "diff_edit", Failure.NO_MATCH),
        child(5, "diff_edit", Failure.NO_MATCH),
        child(6, "diff_edit", Failure.TRUNCATED),
        child(7, "full_rewrite", Failure.DUPLICATE),
        child(8, "full_rewrite", Failure.TIMEOUT, status=Status.FAILED),
        child(9, "full_rewrite"),
        child(10, "merge", None, status=Status.FAILED),  # from an older archive: no kind
        child(11, "diff_edit", None, status=Status.PENDING),  # not finished: not counted
    )
    report = children_report(index)
    json.dumps(report)  # ``evolve status --json`` prints it
    assert (report["made"], report["valid"], report["valid_rate"]) == (8, 2, 0.25)
    assert report["by_reason"] == {"no_match": 2, "duplicate": 1, "timeout": 1,
                                   "truncated": 1, "unclassified": 1}
    assert list(report["by_reason"]) == ["no_match", "duplicate", "timeout", "truncated",
                                         "unclassified"]  # most frequent first, then by name
    ops = report["by_operator"]
    assert ops["diff_edit"] == {"made": 4, "valid": 1, "valid_rate": 0.25, "repaired": 1,
                                "by_reason": {"no_match": 2, "truncated": 1}}
    assert ops["full_rewrite"]["made"] == 3 and ops["full_rewrite"]["valid"] == 1
    assert ops["merge"] == {"made": 1, "valid": 0, "valid_rate": 0.0, "repaired": 0,
                            "by_reason": {"unclassified": 1}}
    lines = format_children(report)
    assert lines[0] == ("children: 8 made, 2 valid (25%) (1 after a repair); not valid: "
                        "no_match 2, duplicate 1, timeout 1, truncated 1, unclassified 1")
    assert ("  diff_edit: 4 made, 1 valid (25%) (1 after a repair); not valid: no_match 2, "
            "truncated 1") in lines


def test_a_run_with_no_children_yet():
    report = children_report(index_of(candidate(1, 0.2)))
    assert (report["made"], report["valid_rate"], report["by_operator"]) == (0, None, {})
    assert format_children(report) == ["children: none finished yet"]


def test_show_names_the_failure_kind():
    data = show(child(4, "diff_edit", Failure.NO_MATCH))
    assert data["failure"] == "no_match"
    assert format_show(data).splitlines()[0].endswith("invalid (no_match) - why 4")
