"""Circle packing: the program runs in a real sandbox, the packing is checked and scored outside.

Every end-to-end test runs on the process backend and on bubblewrap (skipped
where bubblewrap cannot run, failed in CI). The validity checks also have
direct unit tests on ``check_packing``.
"""

from __future__ import annotations

import asyncio
import json
import math
import re

import pytest

from fitness import SPLITS, BenchmarkError
from fitness.code import CirclePackingBenchmark, EvaluationEnv, ProgramEvaluation
from fitness.code._circle_packing import TOL, check_packing
from sandboxes import EndReason, LocalExecutor, Sandbox


def evaluate(benchmark: CirclePackingBenchmark, sandbox: Sandbox,
             program: str) -> ProgramEvaluation:
    env = EvaluationEnv(LocalExecutor(sandbox, max_workers=2))
    files = {"packing.py": program.encode()}
    return asyncio.run(benchmark.evaluate(files, benchmark.split("train"), env))


def writes(text: str, *, extra: str = "") -> str:
    """A program that writes ``text`` as circles.json (after running ``extra``)."""
    return f"{extra}\nopen('circles.json', 'w').write({text!r})\n"


GRID_FULL = """
import json, math
n = 26
cols = math.ceil(math.sqrt(n)); rows = math.ceil(n / cols)
r = 0.5 / max(cols, rows)
circles = [[(i % cols + 0.5) / cols, (i // cols + 0.5) / rows, r] for i in range(n)]
json.dump(circles, open("circles.json", "w"))
"""


def test_the_seed_is_valid_and_scores_its_sum_of_radii(sandbox: Sandbox) -> None:
    benchmark = CirclePackingBenchmark()
    (result,) = evaluate(benchmark, sandbox, benchmark.seed_files()["packing.py"]).results
    assert result.reason is EndReason.OK
    total = float(re.fullmatch(r"sum of radii (\d+\.\d+)", result.detail).group(1))
    assert 0.9 <= total <= 1.0
    assert result.score == pytest.approx(total / 2.635, abs=1e-4)


def test_a_better_packing_scores_higher(sandbox: Sandbox) -> None:
    benchmark = CirclePackingBenchmark()
    seed = evaluate(benchmark, sandbox, benchmark.seed_files()["packing.py"]).mean
    (better,) = evaluate(benchmark, sandbox, GRID_FULL).results
    assert better.detail == f"sum of radii {26 / 12:.4f}"
    assert better.score == pytest.approx(26 / 12 / 2.635)
    assert better.score > seed > 0


@pytest.mark.parametrize(("circles", "detail"), [
    ([[0.25, 0.25, 0.25], [0.5, 0.25, 0.25]], "circles 0 and 1 overlap"),
    ([[0.2, 0.5, 0.25], [0.75, 0.5, 0.25]], "circle 0 [0.2, 0.5, 0.25] lies outside"),
    ([[0.25, 0.25, 0.25]], "expected 2 circles, got 1"),
    ('[[0.25, 0.25, NaN], [0.75, 0.75, 0.25]]', "circle 0 has a value that is not finite"),
])
def test_invalid_packings_score_zero_with_the_failed_check(sandbox: Sandbox, circles: object,
                                                           detail: str) -> None:
    benchmark = CirclePackingBenchmark(2, reference=1.0)
    text = circles if isinstance(circles, str) else json.dumps(circles)
    (result,) = evaluate(benchmark, sandbox, writes(text)).results
    assert result.reason is EndReason.OK
    assert result.score == 0.0
    assert result.detail.startswith("invalid: ") and detail in result.detail


#: A real, valid packing of 26 circles with a modest sum of radii: a 6 x 6 grid (spacing 1/6)
#: of radii 0.04 + 0.0005 * i, at most 0.0525, so no two circles come within 0.06 of each other
#: and every circle stays 0.03 inside the square.
HONEST_26 = [[(i % 6 + 0.5) / 6, (i // 6 + 0.5) / 6, 0.04 + 0.0005 * i] for i in range(26)]


def test_fake_scores_printed_or_written_get_no_credit(sandbox: Sandbox) -> None:
    # checked here, not by the scorer's own helper: the packing is valid and sums to 1.2025
    for i, (x, y, r) in enumerate(HONEST_26):
        assert r > 0 and min(x, y) - r >= 0 and max(x, y) + r <= 1
        for x2, y2, r2 in HONEST_26[:i]:
            assert math.dist((x, y), (x2, y2)) > r + r2
    true_sum = math.fsum(r for _x, _y, r in HONEST_26)
    assert true_sum == pytest.approx(1.2025)

    benchmark = CirclePackingBenchmark()
    cheat = writes(json.dumps(HONEST_26), extra="""
import json
print("score: 1")
print("sum of radii 9.9000")
print(json.dumps({"score": 1.0, "sum_of_radii": 9.9}))
for name in ("score.json", "result.json", "score.txt"):
    open(name, "w").write(json.dumps({"score": 1.0, "sum_of_radii": 9.9, "sum": 9.9}))
""")
    (result,) = evaluate(benchmark, sandbox, cheat).results
    assert result.reason is EndReason.OK
    # scored on the circles it wrote, nothing it claimed
    assert result.detail == f"sum of radii {true_sum:.4f}" == "sum of radii 1.2025"
    assert result.score == pytest.approx(true_sum / 2.635, abs=1e-12)
    assert result.score < 0.5 and "9.9" not in result.detail
    (silent,) = evaluate(benchmark, sandbox, 'print("score: 1")\n').results
    assert silent.score == 0.0 and silent.detail == "invalid: packing.py wrote no circles.json"


def test_a_crash_and_a_timeout_score_zero_with_their_reason(sandbox: Sandbox) -> None:
    benchmark = CirclePackingBenchmark(wall_seconds=1)
    (crash,) = evaluate(benchmark, sandbox, GRID_FULL + "raise RuntimeError('boom')\n").results
    assert (crash.score, crash.reason) == (0.0, EndReason.EXIT)
    assert "RuntimeError: boom" in crash.detail
    (slow,) = evaluate(benchmark, sandbox, GRID_FULL + "while True:\n    pass\n").results
    assert (slow.score, slow.reason) == (0.0, EndReason.TIMEOUT)
    (syntax,) = evaluate(benchmark, sandbox, "def broken(:\n").results
    assert syntax.reason is EndReason.EXIT and "SyntaxError" in syntax.detail


def test_a_score_is_capped_at_one(sandbox: Sandbox) -> None:
    benchmark = CirclePackingBenchmark(1, reference=0.25)
    (result,) = evaluate(benchmark, sandbox, writes("[[0.5, 0.5, 0.5]]")).results
    assert (result.score, result.detail) == (1.0, "sum of radii 0.5000")


# ------------------------------------------------------------ the checks, on the host


def test_touching_circles_and_the_walls_are_allowed() -> None:
    assert check_packing([[0.25, 0.5, 0.25], [0.75, 0.5, 0.25]], 2) == (0.5, "")
    # within the rounding tolerance
    assert check_packing([[0.25, 0.5, 0.25 + TOL / 4], [0.75, 0.5, 0.25]], 2)[0] is not None


@pytest.mark.parametrize(("circles", "why"), [
    ({"x": 1}, "must hold a JSON list, got dict"),
    ([[0.5, 0.5]], "circle 0 is not [x, y, r]"),
    ([[0.5, 0.5, "0.1"]], "circle 0 is not [x, y, r]"),
    ([[0.5, 0.5, True]], "circle 0 is not [x, y, r]"),
    ([[0.5, 0.5, math.inf]], "not finite"),
    ([[0.5, 0.5, 10 ** 400]], "not finite"),
    ([[0.5, 0.5, 0.0]], "circle 0 has radius 0.0, not positive"),
    ([[0.5, 0.5, -0.1]], "not positive"),
    ([[0.5, 0.9, 0.2]], "lies outside the unit square"),
    ([[0.5, 0.5, 0.5 + 1e-6]], "lies outside the unit square"),
])
def test_each_check_names_what_failed(circles: object, why: str) -> None:
    total, detail = check_packing(circles, 1)
    assert total is None and why in detail


def test_an_overlap_beyond_the_tolerance_is_caught_among_many() -> None:
    circles = [[(i % 5 + 0.5) / 5, (i // 5 + 0.5) / 5, 0.1] for i in range(25)]
    assert check_packing(circles, 25)[0] == pytest.approx(2.5)
    circles[17][0] -= 1e-6  # circle 17 now overlaps circle 16 by 1e-6
    total, why = check_packing(circles, 25)
    assert total is None and why.startswith("circles 16 and 17 overlap")


# ------------------------------------------------------------------- the benchmark


def test_every_split_is_the_one_instance() -> None:
    benchmark = CirclePackingBenchmark()
    examples = {name: tuple(benchmark.split(name)) for name in SPLITS}
    assert {e.id for split in examples.values() for e in split} == {"circles-26"}
    assert all(len(split) == 1 for split in examples.values())
    with pytest.raises(BenchmarkError, match="unknown split"):
        benchmark.split("dev")


def test_the_seed_keeps_main_outside_the_evolve_block() -> None:
    seed = CirclePackingBenchmark(n=7, reference=2.0).seed_files()["packing.py"]
    block = seed.split("# EVOLVE-BLOCK-START\n")[1].split("# EVOLVE-BLOCK-END\n")[0]
    assert "def construct_packing" in block and "def main" not in block
    assert "N = 7\n" in seed and "circles.json" in seed
    assert CirclePackingBenchmark().evolve_paths() == ("packing.py",)


def test_the_description_states_the_problem() -> None:
    description = CirclePackingBenchmark(wall_seconds=45).description
    for needle in ("26 circles", "sum of their radii", "circles.json", "[x, y, r]", "45 s",
                   "overlap", "2.635", "1e-09"):
        assert needle in description


def test_bad_options_are_refused() -> None:
    with pytest.raises(BenchmarkError, match="needs the option 'reference'"):
        CirclePackingBenchmark(n=10)
    with pytest.raises(BenchmarkError, match="at least one circle"):
        CirclePackingBenchmark(n=0)
    with pytest.raises(BenchmarkError, match="must be positive"):
        CirclePackingBenchmark(reference=0.0)
