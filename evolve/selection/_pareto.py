"""GEPA's per-example Pareto selection: parents that are best on some training example.

The scheme is GEPA's (Agrawal et al. 2025, gepa-ai/gepa, ``gepa_utils.py``:
``select_program_candidate_from_pareto_front`` and ``remove_dominated_programs``),
applied to the training scores the archive holds:

1. **Leaders.** For each training example, the *leaders* are the eligible candidates
   with the highest score on it, among those scored on it (candidates are usually
   scored on different random batches; a candidate not scored on an example neither
   leads it nor is beaten on it). A candidate scored on an example several times
   counts with the mean of those scores; NaN scores count as not scored.
2. **Counted examples.** An example counts only when its best score is above
   ``min_score`` (default 0: an example nobody scored above 0 on, unsolved or seen only
   by weak candidates, gives nobody a lead). When no example counts at all (a run whose
   seed solves nothing), every example counts, as in GEPA.
3. **Domination** (GEPA's ``remove_dominated_programs``). The candidates that lead at
   least one counted example are taken in ascending order of their mean training score
   (ties: lower id first); each is *dominated*, and dropped, when every counted example
   it leads is also led by another candidate not dropped so far. (GEPA restarts its scan
   after each drop; a drop only makes later drops harder, so one pass is the same.)
   Every counted example keeps at least one leader.
4. **Draw.** The survivors form the *front*; a parent is drawn with probability
   proportional to the number of counted examples it leads. Parents are drawn with
   replacement, nothing is retired, busy candidates may be parents.

Eligible candidates are the evaluated ones with a training score (alive or retired
unless ``retired`` is false: GEPA, like the DGM, keeps every candidate). A candidate
whose training score has no per-example scores (an evaluator that reports only a mean)
is scored on one pseudo-example of its own kind, "mean train score", with its mean:
such candidates compete with each other there, and only there. The selector looks
only at scores, so it works for every genome kind.

The per-example scores and leaders are kept in step with the archive's change log
(only changed candidates are looked at again); the domination pass runs again only
after the best score or the leaders of an example that counts changed (a candidate
below the best on all its examples leaves the front as it is), and looks at one
candidate per counted example (see ``_KeptFront``). The front is exactly the one
computed from scratch.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from archive import ArchiveIndex, Candidate

from .._errors import SelectionError
from .._schema import doc
from ._base import Selection, Selector, weighted_draw

#: the pseudo-example of candidates without per-example training scores (no example id,
#: which is a str, can equal it)
MEAN_EXAMPLE = ("mean train score",)


@dataclass(frozen=True)
class ParetoSelector(Selector):
    """Parents drawn ∝ the training examples they lead on GEPA's per-example Pareto front."""

    name: ClassVar[str] = "pareto"
    min_score: float = doc(
        "An example counts only when its best score is above this (default 0: examples "
        "nobody scored above 0 on lead to nobody; if no example counts, all do).", 0.0)
    retired: bool = doc(
        "Whether retired candidates (tournament losers) may lead examples and be parents "
        "(GEPA and the DGM keep every candidate).", True)
    #: the leaders kept in step with the archive (a cache, not an option)
    _kept: _KeptFront = field(default_factory=lambda: _KeptFront(), init=False,
                              repr=False, compare=False)

    def __post_init__(self) -> None:
        if not math.isfinite(self.min_score):
            raise ValueError("min_score must be a finite number")

    def entries(self, candidate: Candidate) -> dict[Hashable, float]:
        """The per-example training scores through which ``candidate`` takes part
        ({} when it is not eligible)."""
        fit = candidate.fitness
        if (fit is None or math.isnan(fit)
                or (not self.retired and not candidate.alive)):
            return {}
        sums: dict[Hashable, list[float]] = {}
        for e in candidate.scores["train"].examples:
            if not math.isnan(e.score):
                sums.setdefault(e.example_id, []).append(e.score)
        if not sums:
            return {MEAN_EXAMPLE: fit}
        return {k: v[0] if len(v) == 1 else _mean(v) for k, v in sums.items()}

    def front(self, view: ArchiveIndex) -> dict[int, int]:
        """{id: number of counted examples it leads} for every candidate on the front
        (after domination), in ascending id order; {} when nobody is eligible."""
        return dict(self._kept.current(self, view))

    def select(self, view: ArchiveIndex, rng: np.random.Generator, n: int,
               busy: AbstractSet[int] = frozenset()) -> list[Selection]:
        """``n`` parents drawn with replacement ∝ their lead counts; busy candidates may be
        parents (nothing is retired)."""
        if n <= 0:
            return []
        front = self._kept.current(self, view)
        if not front:
            which = "evaluated" if self.retired else "alive evaluated"
            raise SelectionError(
                f"no {which} candidate with a training score to select a parent from "
                "(every candidate is pending, failed or invalid"
                + ("" if self.retired else ", or retired") + ")")
        ids = np.fromiter(front.keys(), dtype=np.int64, count=len(front))
        weights = np.fromiter(front.values(), dtype=float, count=len(front))
        picks = weighted_draw(weights, rng.random(n))
        return [Selection(parent=int(i)) for i in ids[picks].tolist()]


def _mean(values: list[float]) -> float:
    total = 0.0
    for v in values:  # not sum(): from Python 3.12 it compensates, other bits
        total += v
    return total / len(values)


class _KeptFront:
    """Every example's scores, best score and leaders, kept in step with one index
    through its change log, and the front computed from them (again only after the best
    score or leaders of a counted example changed). Gives exactly what a fresh
    computation gives.

    The domination pass needs only each example's *last* leader in the pass's order
    (highest mean, then highest id), also kept: a candidate that is no example's last
    leader always finds another undropped leader on each of its examples (at least the
    last one), so it is dropped; an example's last leader survives when no surviving
    candidate before it leads that example. So the pass looks at one candidate per
    example, not at every leader (with many ties, e.g. easy examples that thousands of
    candidates solve, that is the difference between milliseconds and a second)."""

    def __init__(self) -> None:
        self.view: ArchiveIndex | None = None
        self.mark = -1
        self._reset()

    def _reset(self) -> None:
        self.entries: dict[int, dict[Hashable, float]] = {}  # id -> its example scores
        self.fitness: dict[int, float] = {}  # id -> mean train score, eligible ids only
        self.scores: dict[Hashable, dict[int, float]] = {}  # example -> {id: score}
        self.best: dict[Hashable, float] = {}
        self.leaders: dict[Hashable, set[int]] = {}
        self.last: dict[Hashable, int] = {}  # example -> its last leader in pass order
        self.stale: set[Hashable] = set()  # examples whose last leader must be found again
        self.counted = 0  # examples whose best score is above min_score
        self.front: dict[int, int] | None = None  # None: to be computed

    def _key(self, cid: int) -> tuple[float, int]:
        """A candidate's place in the domination pass."""
        return self.fitness[cid], cid

    def current(self, selector: ParetoSelector, view: ArchiveIndex) -> dict[int, int]:
        """The front of ``view`` as ``selector`` defines it."""
        mark, changed = view.changed_since(self.mark if self.view is view else -1)
        if changed is None:  # a new index, or the log no longer reaches back: start over
            self._reset()
            changed = [c.id for c in view.candidates()]
        self.view, self.mark = view, mark
        for cid in dict.fromkeys(changed):
            self._update(selector, view, cid)
        if self.front is None:
            self.front = self._compute(selector)
        return self.front

    def _update(self, selector: ParetoSelector, view: ArchiveIndex, cid: int) -> None:
        new = selector.entries(view.get(cid)) if cid in view else {}
        old = self.entries.get(cid, {})
        fit = view.get(cid).fitness if new else None
        old_fit = self.fitness.get(cid)
        if new == old and fit == old_fit:
            return  # e.g. a parent that only gained a child
        if new:
            self.entries[cid] = new
            self.fitness[cid] = fit  # type: ignore[assignment]
        else:
            self.entries.pop(cid, None)
            self.fitness.pop(cid, None)
        floor = selector.min_score
        for example in old.keys() | new.keys():
            before = self.best.get(example)
            if self._rescore(example, cid, old.get(example), new.get(example)):
                after = self.best.get(example)
                was, now = before is not None and before > floor, after is not None and (
                    after > floor)
                self.counted += now - was
                if was or now or not self.counted:  # the example counts (or all do)
                    self.front = None
        if old and new and fit != old_fit:  # its place in the pass moved
            moved = [e for e in new if cid in self.leaders.get(e, ())]
            if moved:
                self.stale.update(moved)
                self.front = None

    def _rescore(self, example: Hashable, cid: int, old: float | None,
                 new: float | None) -> bool:
        """Update one example's scores, best score and leaders for one candidate; whether
        its best score or leaders changed (otherwise the front cannot have)."""
        scores = self.scores.setdefault(example, {})
        if new is None:
            scores.pop(cid, None)
        else:
            scores[cid] = new
        best = self.best.get(example)
        if old is not None and cid in self.leaders[example] and (new is None or new < best):
            if not scores:  # a leader fell back or left: look at everyone again
                del self.scores[example], self.best[example], self.leaders[example]
                self.last.pop(example, None)
                self.stale.discard(example)
                return True
            best = self.best[example] = max(scores.values())
            self.leaders[example] = {i for i, s in scores.items() if s == best}
            self.stale.add(example)
            return True
        if new is not None:
            if best is None or new > best:
                self.best[example] = new
                self.leaders[example] = {cid}
                self.last[example] = cid
                self.stale.discard(example)
                return True
            if new == best:
                self.leaders[example].add(cid)
                if example not in self.stale and self._key(cid) > self._key(
                        self.last[example]):
                    self.last[example] = cid
                return True
        return False

    def _compute(self, selector: ParetoSelector) -> dict[int, int]:
        """The front from the kept leaders: counted examples, domination, lead counts."""
        leaders, last, fitness = self.leaders, self.last, self.fitness
        for e in self.stale:
            last[e] = max(leaders[e], key=self._key)
        self.stale.clear()
        floor = selector.min_score
        counted = {e for e, b in self.best.items() if b > floor} or set(self.best)
        lasts: dict[int, list[Hashable]] = {}  # candidate -> the examples it is last on
        for e in counted:
            lasts.setdefault(last[e], []).append(e)
        covered: set[Hashable] = set()  # examples a survivor leads
        front: dict[int, int] = {}
        for _, cid in sorted([(fitness[c], c) for c in lasts]):
            if not covered.issuperset(lasts[cid]):
                mine = [e for e in self.entries[cid] if e in counted and cid in leaders[e]]
                front[cid] = len(mine)
                covered.update(mine)
        return dict(sorted(front.items()))
