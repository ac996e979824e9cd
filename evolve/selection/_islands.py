"""The island model: sub-populations evolving apart, each island's best migrating along a ring.

``islands`` sub-populations (numbered 0 .. K-1) each run their own instance of an inner
selector (``inner``: tournament, dgm or map_elites, with ``inner_options``) on a view of the
archive restricted to the island's members. Everything is derived from the archive, so a
run resumed after a crash, or forked from a checkpoint, selects exactly as one that ran on.

Home island. Every candidate has exactly one home island:

- the ``island`` entry of its own descriptors, modulo K: this selector records it on every
  child it selects (``Selection.descriptors = {"island": k}``, written by the engine);
- without one (a candidate written under another selector, e.g. before a fork changed it),
  its first parent's home island;
- a founder (no parents) without one: its slot modulo K. Founders take slots 0, 1, 2, ...
  so they are dealt round-robin in id order.

Migration (archive-derived, no migrant records). At each boundary g = m, 2m, 3m, ...
(m = ``migration_interval``) up to the generation being made (the archive's highest
``Candidate.generation`` + 1), the best evaluated home member of island i among the
generations < g (best training score, lowest id on ties, alive or retired) becomes a
*guest* of island i+1 (mod K) from then on: a member there as a parent candidate, never
copied. It keeps its home island, and one that is the best at several boundaries is one
guest, so no candidate is lost or counted twice. In generational mode the generations
before g are complete when generation g is made, so each boundary's migrant is fixed; in
steady-state mode a late candidate of an old generation may displace a boundary's migrant
(still a function of the archive). An island with no founder of its own (fewer founders
than islands, e.g. a code run from one seed) hosts founders as guests: the t-th such island
the founder t mod F in slot order, so every island starts at once. With one island,
nothing migrates.

Selection. Each of the ``n`` selections goes to an island drawn uniformly with the rng;
each island then runs its inner selector once for its share. An island whose inner
selector cannot select (``SelectionError``, e.g. fewer than two free members for a
tournament) hands its share on to the other islands in ring order. Ids an island used
(parents, retirees) are busy for the islands after it. A child is recorded in the island
it was selected in: it inherits its parent's island (a guest's child belongs to the island
that hosted it). Retirements are kept only of the island's home members: a guest that
loses a tournament stays alive at home, and the child is then added to the island rather
than replacing it. Child counts (DGM's 1/(1+children)) are the archive's, over all islands.

Homes, guests and each island's members are kept in step with the archive's change log
(each selection takes in only the changed ids), and equal what a fresh selector computes.

References: Whitley, Rana & Heckendorn 1999, "The island model genetic algorithm: on
separability, population size and convergence"; LLM-driven program search on islands:
FunSearch (Romera-Paredes et al. 2024, Nature; its weaker islands are reseeded from the
best of the others) and OpenEvolve (islands with periodic migration of their best).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, cast

import numpy as np

from archive import ArchiveIndex, Candidate, Status

from .._errors import SelectionError
from .._schema import doc
from ._base import Selection, Selector
from ._dgm import DGMSelector
from ._map_elites import MapElitesSelector
from ._tournament import TournamentSelector

ISLAND = "island"  # the descriptor key of a candidate's home island
INNER: Mapping[str, type[Selector]] = MappingProxyType({
    cls.name: cls for cls in (TournamentSelector, DGMSelector, MapElitesSelector)})
_LOG_KEPT = 1 << 16  # ids an island view's change log keeps


@dataclass(frozen=True)
class IslandsSelector(Selector):
    """An inner selector per island; each island's best migrates to the next on a ring."""

    name: ClassVar[str] = "islands"
    islands: int = doc("Number of islands (sub-populations).", 4)
    inner: str = doc("The selector inside each island: tournament, dgm or map_elites.",
                     "tournament")
    inner_options: Mapping[str, Any] | None = doc("Options of the inner selector.", None)
    migration_interval: int = doc(
        "Generations between migrations: at each multiple g, every island's best of the "
        "generations before g joins the next island on the ring.", 10)
    #: one inner selector per island (each keeps its own cache) and the kept islands
    _inners: tuple[Selector, ...] = field(default=(), init=False, repr=False, compare=False)
    _kept: _KeptIslands = field(default_factory=lambda: _KeptIslands(), init=False,
                                repr=False, compare=False)

    def __post_init__(self) -> None:
        for option in ("islands", "migration_interval"):
            value = getattr(self, option)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{option} must be an int >= 1")
        if self.inner not in INNER:
            raise ValueError(f"inner must be one of {', '.join(INNER)}, not {self.inner!r}")
        given = {} if self.inner_options is None else self.inner_options
        if not isinstance(given, Mapping):
            raise ValueError("inner_options must be a mapping of the inner selector's options")
        options = MappingProxyType(dict(given))
        try:
            inners = tuple(INNER[self.inner](**options) for _ in range(self.islands))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"inner_options: {exc}") from None
        object.__setattr__(self, "inner_options", options)
        object.__setattr__(self, "_inners", inners)

    def island_of(self, view: ArchiveIndex, candidate_id: int) -> int:
        """The home island of a candidate."""
        kept = self._kept.current(self, view)
        view.get(candidate_id)  # unknown ids raise
        return int(kept.home[candidate_id])

    def members(self, view: ArchiveIndex) -> list[tuple[frozenset[int], frozenset[int]]]:
        """Per island: (its evaluated home members, its evaluated guests)."""
        kept = self._kept.current(self, view)
        n = view.max_id() + 1
        out = []
        for k in range(self.islands):
            inside = np.flatnonzero(~np.isnan(kept.fit[k, :n])).tolist()
            home = frozenset(i for i in inside if kept.home[i] == k)
            out.append((home, frozenset(inside) - home))
        return out

    def select(self, view: ArchiveIndex, rng: np.random.Generator, n: int,
               busy: AbstractSet[int] = frozenset()) -> list[Selection]:
        """Up to ``n`` selections, each made by the inner selector of one island and
        recording that island on the child. Raises ``SelectionError`` when no island can
        select."""
        if n <= 0:
            return []
        kept = self._kept.current(self, view)
        k_all = self.islands
        picks = rng.integers(k_all, size=n)
        share = np.bincount(picks, minlength=k_all).tolist()
        taken = set(busy)
        out: list[Selection] = []
        failed: dict[int, str] = {}

        def run(k: int, count: int) -> int:
            try:
                island = cast(ArchiveIndex, kept.views[k])  # an IslandView stands in
                made = self._inners[k].select(island, rng, count, frozenset(taken))
            except SelectionError as exc:
                failed[k] = str(exc)
                return 0
            for s in made:
                retire = tuple(r for r in s.retire if kept.home[r] == k)
                out.append(Selection(s.parent, retire, {**s.descriptors, ISLAND: k}))
                taken.update((s.parent, *s.retire))
            return len(made)

        for k in range(k_all):
            if share[k]:
                run(k, share[k])
        first = int(picks[0])
        for step in range(1, k_all + 1):  # the shortfall, in ring order after the first
            k = (first + step) % k_all
            if len(out) >= n:
                break
            if k not in failed:
                run(k, n - len(out))
        if not out:
            raise SelectionError("no island can select a parent: " + "; ".join(
                f"island {k}: {reason}" for k, reason in sorted(failed.items())))
        return out


class IslandView:
    """One island's members (home and guests), shown through the ``ArchiveIndex`` methods
    the inner selectors call: a candidate outside the island reads as not evaluated.
    Candidate records and child counts are the archive's."""

    def __init__(self, kept: _KeptIslands, island: int, view: ArchiveIndex) -> None:
        self._kept, self._island, self._view = kept, island, view
        self._log: list[int] = []
        self._start = 0  # the mark of self._log[0]

    def log(self, ids: list[int], *, reset: bool = False) -> None:
        """Record ids whose fitness, child count or membership may have changed; ``reset``:
        forget the log (earlier marks then see every id changed)."""
        if reset:
            self._start += len(self._log) + 1
            self._log = []
        self._log.extend(ids)
        if len(self._log) > _LOG_KEPT:
            drop = len(self._log) - _LOG_KEPT // 2
            del self._log[:drop]
            self._start += drop

    def changed_since(self, mark: int) -> tuple[int, list[int] | None]:
        now = self._start + len(self._log)
        if mark < self._start or mark > now:
            return now, None
        return now, self._log[mark - self._start:]

    def max_id(self) -> int:
        return self._view.max_id()

    def get(self, candidate_id: int) -> Candidate:
        return self._view.get(candidate_id)

    def __contains__(self, candidate_id: object) -> bool:
        return candidate_id in self._view

    def fitness_of(self, ids: np.ndarray) -> np.ndarray:
        return self._kept.fit[self._island][ids]

    def fitness_array(self) -> np.ndarray:
        return self._kept.fit[self._island, : self._view.max_id() + 1].copy()

    def children_count_of(self, ids: np.ndarray) -> np.ndarray:
        return self._view.children_count_of(ids)

    def children_count_array(self) -> np.ndarray:
        return self._view.children_count_array()

    def population_ids(self) -> np.ndarray:
        population = self._view.population_ids()
        ids = population[~np.isnan(self.fitness_of(population))]
        ids.flags.writeable = False
        return ids

    def pending_count(self) -> int:
        """The pending candidates made by this island (their ``island`` descriptor)."""
        return sum(c.descriptors.get(ISLAND) == self._island
                   for c in self._view.candidates(status=Status.PENDING))

    def top(self, k: int) -> list[Candidate]:
        """The island's ``k`` best evaluated members (ties: lowest id first)."""
        return [self._view.get(cid) for _, cid in self._kept.ranked[self._island][:max(k, 0)]]


class _KeptIslands:
    """Home islands, guests and each island's members, kept in step with one archive
    through its change log; rebuilt from the archive when the log does not reach back or a
    candidate's training score changed after it was set (never in a normal run)."""

    def __init__(self) -> None:
        self.view: Any = None
        self.mark = -1
        self.views: list[IslandView] = []

    def current(self, selector: IslandsSelector, view: ArchiveIndex) -> _KeptIslands:
        same = self.view is view
        mark, changed = view.changed_since(self.mark if same else -1)
        if not same:
            self.views = [IslandView(self, k, view) for k in range(selector.islands)]
        self.view = view
        if changed is None or not self._update(selector, view, changed):
            self._rebuild(selector, view)
        self.mark = mark
        return self

    def _rebuild(self, selector: IslandsSelector, view: ArchiveIndex) -> None:
        k = selector.islands
        size = max(1024, view.max_id() + 1)
        self.home = np.full(size, -1, dtype=np.int64)
        self.fit = np.full((k, size), np.nan)
        self.ranked: list[list[tuple[float, int]]] = [[] for _ in range(k)]  # (-score, id)
        self.gen_best: list[dict[int, tuple[float, int]]] = [{} for _ in range(k)]
        # per island, the best home member of the generations before each boundary passed
        # (list index b - 1 for boundary b; None: no member yet), and how many boundaries
        # each of them is the best at (the island's migrants are its keys)
        self.prefix: list[list[tuple[float, int] | None]] = [[] for _ in range(k)]
        self.migrants: list[dict[int, int]] = [{} for _ in range(k)]
        self.guests: list[set[int]] = [set() for _ in range(k)]
        self.guest_in: dict[int, set[int]] = {}
        self.founders: dict[int, int] = {}  # id -> slot
        self.boundaries = 0
        for candidate in view.candidates():
            self._see(selector, view, candidate, bulk=True)
        for ranked in self.ranked:
            ranked.sort()
        self._regroup(selector, view, set(range(k)))
        for island_view in self.views:
            island_view.log([], reset=True)

    def _update(self, selector: IslandsSelector, view: ArchiveIndex, changed: list[int]) -> bool:
        self._grow(view.max_id() + 1)
        ids = list(dict.fromkeys(changed))
        dirty: set[int] = set()  # islands whose best per generation changed
        for cid in ids:
            seen = self._see(selector, view, view.get(cid))
            if seen is None:
                return False
            dirty |= seen
        moved = self._regroup(selector, view, dirty)
        for island_view in self.views:
            island_view.log(ids + moved)
        return True

    def _grow(self, n: int) -> None:
        size = self.home.shape[0]
        if n <= size:
            return
        new = max(n, 2 * size)
        self.home = np.concatenate([self.home, np.full(new - size, -1, dtype=np.int64)])
        self.fit = np.concatenate([self.fit, np.full((self.fit.shape[0], new - size), np.nan)],
                                  axis=1)

    def home_of(self, selector: IslandsSelector, view: ArchiveIndex,
                candidate: Candidate) -> int:
        """Its ``island`` descriptor, else its first parent's home, else its slot (mod K)."""
        seen: set[int] = set()
        while True:
            value = candidate.descriptors.get(ISLAND)
            if (isinstance(value, int | float) and not isinstance(value, bool)
                    and math.isfinite(value) and value == int(value)):
                return int(value) % selector.islands
            parents = candidate.parent_ids
            if not parents or parents[0] not in view or parents[0] in seen:
                return candidate.slot % selector.islands
            pid = parents[0]
            if pid < self.home.shape[0] and self.home[pid] >= 0:
                return int(self.home[pid])
            seen.add(candidate.id)
            candidate = view.get(pid)

    def _see(self, selector: IslandsSelector, view: ArchiveIndex, candidate: Candidate,
             *, bulk: bool = False) -> set[int] | None:
        """Take in a new or changed candidate: the islands whose guests may change (all
        of them for a new founder), or None when a training score changed (rebuild).
        ``bulk``: the islands' rankings are sorted by the caller."""
        cid = candidate.id
        dirty: set[int] = set()
        k = int(self.home[cid])
        if k < 0:
            k = self.home[cid] = self.home_of(selector, view, candidate)
            if not candidate.parent_ids:
                self.founders[cid] = candidate.slot
                dirty.update(range(selector.islands))
        score = candidate.fitness
        old = float(self.fit[k, cid])
        if not math.isnan(old):  # evaluated before: its score must be the same
            return dirty if score == old else None
        if score is None:
            return dirty
        for island in (k, *self.guest_in.get(cid, ())):
            self._set(island, cid, score, bulk=bulk)
        entry, generation = (score, cid), candidate.generation
        if _better(entry, self.gen_best[k].get(generation)):
            self.gen_best[k][generation] = entry
            # the boundaries after its generation: their best may now be this one
            prefix = self.prefix[k]
            for b in range(generation // selector.migration_interval + 1,
                           self.boundaries + 1):
                if not _better(entry, prefix[b - 1]):
                    break  # nor later ones: the best before a boundary only grows
                self._count(k, prefix[b - 1], entry)
                prefix[b - 1] = entry
                dirty.add(k)
        return dirty

    def _count(self, island: int, old: tuple[float, int] | None,
               new: tuple[float, int] | None) -> None:
        """One boundary's best changes from ``old`` to ``new``."""
        counts = self.migrants[island]
        if old is not None:
            counts[old[1]] -= 1
            if not counts[old[1]]:
                del counts[old[1]]
        if new is not None:
            counts[new[1]] = counts.get(new[1], 0) + 1

    def _extend(self, selector: IslandsSelector, boundaries: int) -> None:
        """The best before each boundary up to ``boundaries`` (more than before)."""
        m = selector.migration_interval
        for island, prefix in enumerate(self.prefix):
            by_generation = self.gen_best[island]
            for b in range(len(prefix) + 1, boundaries + 1):
                best = prefix[-1] if prefix else None
                for generation in range((b - 1) * m, b * m):
                    entry = by_generation.get(generation)
                    if _better(entry, best):
                        best = entry
                prefix.append(best)
                self._count(island, None, best)

    def _set(self, island: int, cid: int, score: float, *, bulk: bool = False) -> None:
        self.fit[island, cid] = score
        if bulk:
            self.ranked[island].append((-score, cid))
        else:
            bisect.insort(self.ranked[island], (-score, cid))

    def _unset(self, island: int, cid: int) -> None:
        score = float(self.fit[island, cid])
        if not math.isnan(score):
            ranked = self.ranked[island]
            del ranked[bisect.bisect_left(ranked, (-score, cid))]
            self.fit[island, cid] = np.nan

    def _boundaries(self, selector: IslandsSelector, view: ArchiveIndex) -> int:
        """How many migration boundaries the generation being made has passed."""
        return (view.max_generation() + 1) // selector.migration_interval

    def _migrants(self, island: int) -> set[int]:
        """The best home member of ``island`` before each boundary passed."""
        return set(self.migrants[island])

    def _regroup(self, selector: IslandsSelector, view: ArchiveIndex,
                 dirty: set[int]) -> list[int]:
        """Recompute the guests of the islands that may have changed; the ids moved."""
        k_all = selector.islands
        boundaries = self._boundaries(selector, view)
        if boundaries != self.boundaries:
            if boundaries < self.boundaries:  # never in a run (generations only grow)
                self.prefix, self.migrants = [[] for _ in range(k_all)], [{} for _ in
                                                                           range(k_all)]
            self._extend(selector, boundaries)
            self.boundaries = boundaries
            dirty = set(range(k_all))
        if not dirty:
            return []
        targets = {(i + 1) % k_all for i in dirty} if k_all > 1 else set()
        founded = {int(self.home[f]) for f in self.founders}
        empty = [j for j in range(k_all) if j not in founded]
        targets.update(empty)
        order = sorted(self.founders, key=lambda f: (self.founders[f], f))
        moved: list[int] = []
        for j in sorted(targets):
            new = self._migrants((j - 1) % k_all) if k_all > 1 else set()
            if order and j in empty:
                new.add(order[empty.index(j) % len(order)])
            old = self.guests[j]
            for cid in sorted(new - old):
                self.guest_in.setdefault(cid, set()).add(j)
                score = float(self.fit[int(self.home[cid]), cid])
                if not math.isnan(score):
                    self._set(j, cid, score)
                moved.append(cid)
            for cid in sorted(old - new):
                self.guest_in[cid].discard(j)
                self._unset(j, cid)
                moved.append(cid)
            self.guests[j] = new
        return moved


def _better(entry: tuple[float, int] | None, than: tuple[float, int] | None) -> bool:
    """Whether ``entry`` (score, id) beats ``than``: a higher score, or the lower id."""
    return entry is not None and (than is None or entry[0] > than[0]
                                  or (entry[0] == than[0] and entry[1] < than[1]))
