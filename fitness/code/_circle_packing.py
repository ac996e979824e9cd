"""Circle packing: place ``n`` circles in the unit square, maximising the sum of their radii.

The candidate is a program, ``packing.py``, run in a sandbox as ``python3
packing.py``. It must write ``circles.json``: a JSON list of ``n`` triples
``[x, y, r]``. Trusted code on the host (never in the sandbox) checks the
packing itself, in this order, and names the first check that fails:

1. ``circles.json`` exists and is JSON: a list of exactly ``n`` entries;
2. each entry is a list of three numbers, all finite;
3. each radius is positive;
4. each circle lies inside the unit square: ``x - r >= -TOL``,
   ``x + r <= 1 + TOL`` and the same for ``y``;
5. no two circles overlap: ``distance(c1, c2) >= r1 + r2 - TOL``.

``TOL`` is 1e-9, an allowance for rounding, not for overlap. An invalid
packing scores 0. A valid one scores ``min(1, sum_of_radii / reference)``,
where ``reference`` is the best sum known: about 2.635 for 26 circles
(AlphaEvolve, 2025; the earlier record was 2.634). The raw sum is in the
result's detail. What the program prints or writes besides ``circles.json``
is never read.

There is one instance (``n`` circles), so each split holds the same single
example, ``circles-<n>``: a program's score does not depend on the split.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from sandboxes import Job, Limits, Result

from .._benchmark import Example
from .._errors import BenchmarkError
from .._procedural import check_split_name
from ._benchmark import CodeBenchmark, EvaluationEnv
from ._program_eval import ProgramEvaluation, ProgramEvaluator, ProgramTask, json_output

#: slack allowed in the containment and overlap checks (rounding only)
TOL = 1e-9
#: best known sum of radii for 26 circles in the unit square
BEST_KNOWN_26 = 2.635

PROGRAM = "packing.py"
OUTPUT = "circles.json"

_SEED = '''"""Pack N circles into the unit square, maximising the sum of their radii.

Writes circles.json: a list of N [x, y, r] (centre and radius). The circles must
lie inside the square [0, 1] x [0, 1] and must not overlap.
"""

import json
import math

N = {n}


# EVOLVE-BLOCK-START
def construct_packing(n):
    """Return n circles (x, y, r): centres on a grid, equal cautious radii."""
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    # a safe start: under half the largest radius the grid allows
    r = 0.225 / max(cols, rows)
    circles = []
    for i in range(n):
        row, col = divmod(i, cols)
        circles.append(((col + 0.5) / cols, (row + 0.5) / rows, r))
    return circles
# EVOLVE-BLOCK-END


def main():
    circles = construct_packing(N)
    with open("circles.json", "w") as handle:
        json.dump([[float(x), float(y), float(r)] for x, y, r in circles], handle)


if __name__ == "__main__":
    main()
'''


def check_packing(circles: Any, n: int, tol: float = TOL) -> tuple[float | None, str]:
    """``(sum of radii, "")`` for a valid packing of ``n`` circles, else ``(None, why)``."""
    if not isinstance(circles, list):
        return None, f"{OUTPUT} must hold a JSON list, got {type(circles).__name__}"
    if len(circles) != n:
        return None, f"expected {n} circles, got {len(circles)}"
    for i, circle in enumerate(circles):
        if (not isinstance(circle, list) or len(circle) != 3
                or not all(isinstance(v, int | float) and not isinstance(v, bool)
                           for v in circle)):
            return None, f"circle {i} is not [x, y, r] (three numbers): {_short(circle)}"
        x, y, r = _floats(circle)
        if not all(math.isfinite(v) for v in (x, y, r)):
            return None, f"circle {i} has a value that is not finite: {_short(circle)}"
        if r <= 0:
            return None, f"circle {i} has radius {r!r}, not positive"
        if x - r < -tol or x + r > 1 + tol or y - r < -tol or y + r > 1 + tol:
            return None, f"circle {i} {_short(circle)} lies outside the unit square"
    array = np.asarray(circles, dtype=float)
    centres, radii = array[:, :2], array[:, 2]
    distances = np.sqrt(((centres[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2))
    overlap = distances < radii[:, None] + radii[None, :] - tol
    np.fill_diagonal(overlap, False)
    if overlap.any():
        i, j = (int(k) for k in np.argwhere(overlap)[0])
        return None, (f"circles {i} and {j} overlap: centres {distances[i, j]:.6g} apart, "
                      f"radii sum {radii[i] + radii[j]:.6g}")
    return math.fsum(float(r) for r in radii), ""


def _floats(values: list[int | float]) -> list[float]:
    """The values as floats; an int too large for a float becomes infinity."""
    return [float(v) if abs(v) < 1e308 else math.inf for v in values]


def _short(value: Any) -> str:
    text = json.dumps(value) if _jsonable(value) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class CirclePackingTask(ProgramTask):
    """Trusted: run ``packing.py``, read ``circles.json``, check it and score the sum of radii."""

    n: int
    reference: float
    limits: Limits
    python: str = "python3"

    def job(self, program: Mapping[str, bytes], example: Example) -> Job:
        return Job((self.python, PROGRAM), files=program, limits=self.limits, collect=(OUTPUT,))

    def score(self, example: Example, result: Result) -> float:
        return self.assess(example, result)[0]

    def assess(self, example: Example, result: Result) -> tuple[float, str]:
        circles, unreadable = json_output(result, OUTPUT, PROGRAM)
        if unreadable:
            return 0.0, unreadable
        total, why = check_packing(circles, self.n)
        if total is None:
            return 0.0, f"invalid: {why}"
        return min(1.0, total / self.reference), f"sum of radii {total:.4f}"


class CirclePackingBenchmark(CodeBenchmark):
    """Pack ``n`` circles in the unit square, maximising the sum of radii (see the module doc).

    ``reference`` is the sum that scores 1 (default: the best known, 2.635,
    for ``n=26``; it must be given for other ``n``). The program runs with
    ``wall_seconds`` of wall time, ``memory_mb`` of memory and one CPU.
    """

    OPTION_DOCS = MappingProxyType(
        {
            "n": "number of circles",
            "reference": "sum of radii that scores 1 (default: best known, 2.635, for n=26)",
            "wall_seconds": "wall-time limit of one run of the program",
            "memory_mb": "memory limit of one run of the program",
            "name": "short name used in reports",
        }
    )

    def __init__(self, n: int = 26, *, reference: float | None = None,
                 wall_seconds: float = 60.0, memory_mb: int = 512,
                 name: str = "circle_packing") -> None:
        if n < 1:
            raise BenchmarkError(f"circle packing needs at least one circle, got n={n}")
        if reference is None:
            if n != 26:
                raise BenchmarkError(
                    f"circle packing with n={n} needs the option 'reference' (the sum of "
                    "radii that scores 1); only n=26 has a built-in one")
            reference = BEST_KNOWN_26
        if not reference > 0:
            raise BenchmarkError(f"option 'reference' must be positive, got {reference}")
        self.n = n
        self.reference = float(reference)
        self.limits = Limits(wall_seconds=wall_seconds, memory_mb=memory_mb, cpus=1.0)
        self.name = name
        self.description = _description(n, self.reference, wall_seconds, memory_mb)
        self.task = CirclePackingTask(n, self.reference, self.limits)

    def seed_files(self) -> Mapping[str, str]:
        return {PROGRAM: _SEED.replace("{n}", str(self.n))}

    def split(self, name: str) -> Sequence[Example]:
        check_split_name(name)
        return (Example(f"circles-{self.n}", self.description, "", {"n": self.n}),)

    async def evaluate(self, files: Mapping[str, bytes], examples: Sequence[Example],
                       env: EvaluationEnv) -> ProgramEvaluation:
        return await ProgramEvaluator(env.executor, self.task).evaluate(files, examples)


def _description(n: int, reference: float, wall_seconds: float, memory_mb: int) -> str:
    return (
        f"Circle packing. Place {n} circles inside the unit square [0, 1] x [0, 1] so that "
        f"the sum of their radii is as large as possible.\n"
        f"The program {PROGRAM} is run as `python3 {PROGRAM}` (Python 3.11 with numpy; no "
        f"network; {wall_seconds:g} s wall time, {memory_mb} MB memory, one CPU). It must "
        f"write {OUTPUT}: a JSON list of exactly {n} entries [x, y, r] (centre x, centre y, "
        f"radius), all finite numbers.\n"
        f"Constraints, checked by the evaluator with a tolerance of {TOL:g}: every radius is "
        f"positive; every circle lies inside the square (x - r >= 0, x + r <= 1, y - r >= 0, "
        f"y + r <= 1); no two circles overlap (the distance between centres is at least the "
        f"sum of their radii).\n"
        f"Score: 0 if any constraint is broken, else min(1, sum of radii / {reference:g}) "
        f"({reference:g} is the best sum known). Only {OUTPUT} is read; printed output does "
        f"not count. Change the code between the EVOLVE-BLOCK markers."
    )
