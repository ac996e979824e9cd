"""The Huxley–Gödel Machine's parent selection: Thompson sampling on clade productivity.

The HGM (Wang et al. 2025, arXiv 2510.21614; metauto-ai/HGM, ``hgm.py``: ``expand``
and ``TS_sample``) chooses the node to expand by its *clade-metaproductivity*: the
results of the node and of all its descendants are pooled, each clade gets the
posterior ``Beta(1 + successes, 1 + failures)``, one sample is drawn from every node's
posterior and the node with the largest sample is expanded (Thompson sampling).

Here a node is a candidate and its **clade** is the candidate itself plus every
descendant through *first* parents: HGM's lineage is a tree, and so are these clades.
A merge child belongs to the clade of its first parent (the candidate it was made
from, the base of a code merge), not to its donor's (second parent). Following every
parent edge was tried and dropped: donors come from anywhere in the archive, so an
ancestry through every edge grows far past a lineage's depth, and updates and recounts
with it. Through first parents, an update moves one line and a recount is one pass.
(``live_clades`` of the diversity report follows both parents: it asks which lineages
are alive, not which were productive.)

HGM's results are per-task solves of agents it evaluates repeatedly; in a Cladeforge
archive each candidate is evaluated once, so the result counted is each candidate's
**outcome** as a child:

- *success*: it is evaluated with a training score at least its first parent's (or its
  first parent has no training score);
- *failure*: it is ``failed`` or ``invalid``, or evaluated below its first parent;
- no outcome: it is ``pending``, a founder (no parents), or evaluated without a
  training score.

A candidate's clade counts are the successes and failures among the outcomes of its
clade, its own outcome included (HGM pools a node's own results with its
descendants'). Its posterior is ``Beta((prior_successes + successes) / temperature,
(prior_failures + failures) / temperature)``: the defaults (1, 1, 1) are HGM's; a
temperature below 1 narrows every posterior, as HGM's optional cool-down does by
multiplying both parameters by a factor above 1. Each selection is one Thompson sample:
the parent is the evaluated candidate (alive or retired: HGM keeps the whole tree; HGM
expands only nodes that solved something, here any evaluated candidate may be a parent)
whose draw from its posterior is the largest (ties have probability 0). Parents are
drawn with replacement, nothing is retired, busy candidates may be parents. Only
statuses, training scores and lineage are read, so it works for every genome kind.

How the sample is drawn. When both parameters are whole numbers for every candidate
(temperature 1 and whole priors, the defaults), the parent follows exactly the
distribution of one draw per candidate, without making them. Beta(a, b) is the law of
the b-th largest of n = a + b - 1 independent uniforms (the candidate's n *slots*):

1. The candidates with b = 1 (no failure in the clade, with prior 1) each draw the
   largest of their a uniforms, so the largest of these draws is the largest of
   A = sum of their a uniforms: M = U**(1/A), in a slot drawn uniformly among the A
   (its candidate drawn with probability a / A).
2. Another candidate beats M only if at least b of its slots lie above M. The slots
   above M of a group of candidates with S slots in all number Binomial(S, 1 - M);
   fewer than the group's least b, and none of them can. Otherwise the hits go to
   distinct slots drawn uniformly, and a candidate with c >= b hits draws
   M + (1 - M) * Beta(c - b + 1, b) (the b-th largest of c uniforms above M). The
   largest draw wins.

Candidates are grouped by (floor(log2 a), floor(log2 b)), so a selection costs about
as much as there are groups (a few dozen), whatever the size of the archive; a slot is
drawn by rejection (a member drawn uniformly in id order, a slot below the group's
largest n, kept when below the member's n). The candidates concerned each get one Beta
draw instead (in id order) when the parameters are not whole numbers, when no candidate
has b = 1 (all of them), and when dealing would cost more (M < 1/2, or more hits
expected than one per ``_DEALS`` candidates with b > 1, plus ``_DEAL_MIN``; decided from
M alone: the candidates with b > 1, against M). Measurements: docs/performance.md, "Selectors at
scale (issue 15)".

The counts are kept in step with the archive's change log: a candidate whose outcome
changes moves one count in itself and each of its first-parent ancestors, and a
candidate whose training score changes has its children judged again. The ancestors
are read from jump tables (each candidate's 2**k-th first-parent ancestor), so a line
of thousands is gathered in a dozen array steps. The counts, the groups and their
slot totals are exactly a recount's (ids within a group in ascending order), so a
selection is a function of the archive and the generator only.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from archive import ArchiveIndex, Candidate, Status

from .._errors import SelectionError
from .._schema import doc
from ._base import Selection, Selector

SUCCESS, NONE, FAILURE = 1, 0, -1
_SAMPLES_PER_CHUNK = 1 << 20  # Beta samples drawn at once (selections × candidates)
_SIDE = 64  # a group's code: floor(log2 a) * _SIDE + floor(log2 b)
# more hits expected than one per _DEALS candidates with b > 1, plus _DEAL_MIN: drawing
# them one by one costs less than dealing the hits (a few microseconds each)
_DEALS, _DEAL_MIN = 32, 16
_REST = np.arange(_SIDE * _SIDE) % _SIDE > 0  # the groups with b > 1
_LEAST = 1 << np.arange(_SIDE * _SIDE) % _SIDE  # the least b in each group


def outcome(view: ArchiveIndex, candidate: Candidate) -> int:
    """``SUCCESS``, ``FAILURE`` or ``NONE``: the candidate's result as a child (see the
    module docstring)."""
    if not candidate.parent_ids or candidate.status is Status.PENDING:
        return NONE
    if candidate.status is not Status.EVALUATED:
        return FAILURE
    fit = candidate.fitness
    if fit is None or math.isnan(fit):
        return NONE
    first = candidate.parent_ids[0]
    parent_fit = view.get(first).fitness if first in view else None
    if parent_fit is None or math.isnan(parent_fit) or fit >= parent_fit:
        return SUCCESS
    return FAILURE


@dataclass(frozen=True)
class CladeSelector(Selector):
    """Thompson sampling on each candidate's clade record: Beta(a + successes, b + failures)."""

    name: ClassVar[str] = "clade"
    prior_successes: float = doc(
        "Pseudo-successes a of every clade's Beta(a + successes, b + failures) (HGM: 1).", 1.0)
    prior_failures: float = doc(
        "Pseudo-failures b of every clade's Beta(a + successes, b + failures) (HGM: 1).", 1.0)
    temperature: float = doc(
        "Both Beta parameters are divided by it: below 1 the posteriors narrow and the "
        "most productive clades win more often (HGM's cool-down), above 1 they widen.", 1.0)
    #: the clade counts kept in step with the archive (a cache, not an option)
    _kept: _KeptCounts = field(default_factory=lambda: _KeptCounts(), init=False,
                               repr=False, compare=False)

    def __post_init__(self) -> None:
        for option in ("prior_successes", "prior_failures", "temperature"):
            value = getattr(self, option)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{option} must be a finite number > 0")
        priors = (self.prior_successes, self.prior_failures)
        if self.temperature == 1 and all(float(p).is_integer() for p in priors):
            self._kept.priors = (int(priors[0]), int(priors[1]))  # whole parameters

    def clade_counts(self, view: ArchiveIndex) -> dict[int, tuple[int, int]]:
        """{id: (successes, failures) in its clade} for every candidate in ``view``."""
        succ, fail = self._kept.current(view)
        return {c.id: (int(succ[c.id]), int(fail[c.id])) for c in view.candidates()}

    def select(self, view: ArchiveIndex, rng: np.random.Generator, n: int,
               busy: AbstractSet[int] = frozenset()) -> list[Selection]:
        """``n`` parents, each the argmax of one Thompson sample over every evaluated
        candidate; busy candidates may be parents (nothing is retired)."""
        if n <= 0:
            return []
        kept = self._kept
        succ, fail = kept.current(view)
        if kept.priors is not None and kept.slots.any():
            picks = [kept.draw(rng) for _ in range(n)]
            return [Selection(parent=i) for i in picks]
        ids = np.flatnonzero(~np.isnan(kept.fitness[:len(succ)]))
        if not len(ids):
            raise SelectionError("no evaluated candidate to select a parent from (every "
                                 "candidate is pending, failed or invalid)")
        a = (self.prior_successes + succ[ids]) / self.temperature
        b = (self.prior_failures + fail[ids]) / self.temperature
        rows = max(1, _SAMPLES_PER_CHUNK // len(ids))
        picks = []
        for start in range(0, n, rows):
            samples = rng.beta(a, b, size=(min(rows, n - start), len(ids)))
            picks.extend(ids[np.argmax(samples, axis=1)].tolist())
        return [Selection(parent=int(i)) for i in picks]


class _KeptCounts:
    """Every candidate's outcome and clade counts, kept in step with one index through
    its change log (see the module docstring). Gives exactly a recount's counts. With
    whole-number parameters (``priors`` set) it also keeps the groups of the evaluated
    candidates and draws Thompson samples from them (``draw``)."""

    def __init__(self) -> None:
        self.view: ArchiveIndex | None = None
        self.mark = -1
        self.priors: tuple[int, int] | None = None  # whole (prior successes, failures)
        self._reset()

    def _reset(self) -> None:
        self.known: set[int] = set()
        self.succ = np.zeros(0, dtype=np.int64)
        self.fail = np.zeros(0, dtype=np.int64)
        self.outcome = np.zeros(0, dtype=np.int8)
        self.fitness = np.zeros(0)  # training score as last seen (NaN: none)
        # up[k][i]: the 2**k-th first-parent ancestor of i; none: len(self.succ), the last
        # entry of every row, which points to itself
        self.up: list[np.ndarray] = []
        self.code = np.zeros(0, dtype=np.int64)  # an evaluated candidate's group, else -1
        self.slots = np.zeros(_SIDE * _SIDE, dtype=np.int64)  # slots (a + b - 1) per group
        self.members: dict[int, list[int]] = {}  # group -> its ids, ascending

    def current(self, view: ArchiveIndex) -> tuple[np.ndarray, np.ndarray]:
        """(successes, failures) per id from 0 to ``view.max_id()``."""
        mark, changed = view.changed_since(self.mark if self.view is view else -1)
        self.view, self.mark = view, mark
        n = view.max_id() + 1
        if changed is None or len(changed) > n // 16 + 64 or not self._update(view, changed):
            self._recount(view)
        return self.succ[:n], self.fail[:n]

    # -- incremental ------------------------------------------------------------------
    def _update(self, view: ArchiveIndex, changed: list[int]) -> bool:
        """Apply the changes of ``changed`` ids; False when a recount is needed."""
        self._grow(view.max_id() + 1)
        for cid in dict.fromkeys(changed):
            candidate = view.get(cid)
            if cid not in self.known:
                if view.children(cid):  # it arrived after its children: rare, recount
                    return False
                self.known.add(cid)
                self._link(view, candidate)
            fit = _fitness(candidate)
            kept = self.fitness[cid]
            if fit != kept and not (math.isnan(fit) and math.isnan(kept)):
                self.fitness[cid] = fit  # its children's outcomes compare with it
                if math.isnan(fit) != math.isnan(kept) and self.priors is not None:
                    joins = math.isnan(kept)  # now evaluated: joins its group, else leaves
                    self._move(cid, -1 if joins else int(self.code[cid]),
                               self._code_of(cid) if joins else -1)
                for child in view.children(cid):
                    if child in self.known and view.get(child).parent_ids[0] == cid:
                        self._judge(view, child)
            self._judge(view, cid)
        return True

    def _link(self, view: ArchiveIndex, candidate: Candidate) -> None:
        """Fill a new candidate's row of the jump tables (its ancestors' are filled)."""
        parents = candidate.parent_ids
        above = parents[0] if parents and parents[0] in view else len(self.succ)
        for row in self.up:
            row[candidate.id] = above
            above = int(row[above])

    def _line(self, cid: int) -> np.ndarray:
        """``cid`` and its first-parent ancestors, as ``view.descent`` gives them (as a
        set): doubling, each step adds the 2**k-th ancestors of the line so far."""
        none, line = len(self.succ), np.array([cid], dtype=np.int64)
        for k in range(63):
            if k == len(self.up):
                self.up.append(self.up[-1][self.up[-1]])
            above = self.up[k][line]
            if above.item(0) == none:  # cid has no 2**k-th ancestor: the line is complete
                break
            line = np.concatenate([line, above])
            if len(line) > none:  # a cycle (no archive makes one): each once
                return np.unique(line[line != none])
        return line[line != none]

    def _judge(self, view: ArchiveIndex, cid: int) -> None:
        """Move the candidate's outcome in every clade it belongs to, if it changed."""
        new = outcome(view, view.get(cid))
        old = int(self.outcome[cid])
        if new == old:
            return
        self.outcome[cid] = new
        members = self._line(cid)  # it and its ancestors
        ds = (new == SUCCESS) - (old == SUCCESS)
        df = (new == FAILURE) - (old == FAILURE)
        if ds:
            self.succ[members] += ds
        if df:
            self.fail[members] += df
        if self.priors is None:
            return
        members = members[self.code[members] >= 0]  # the evaluated ones: in groups
        if not len(members):
            return
        before = self.code[members]
        if ds + df:
            np.add.at(self.slots, before, ds + df)  # each one's n = a + b - 1 moved so
        crossed = np.zeros(len(members), dtype=bool)  # floor(log2) of a or b changed
        for counts, prior, delta in ((self.succ, self.priors[0], ds),
                                     (self.fail, self.priors[1], df)):
            if delta:
                larger = counts[members] + (prior + (delta < 0))  # the old or new a (b)
                crossed |= (larger & (larger - 1)) == 0  # a power of 2
        for i in np.flatnonzero(crossed).tolist():
            member, old_code = int(members[i]), int(before[i])
            self._move(member, old_code, self._code_of(member))

    def _code_of(self, cid: int) -> int:
        """A candidate's group from its counts: (floor(log2 a), floor(log2 b))."""
        prior_s, prior_f = self.priors  # type: ignore[misc]
        return ((prior_s + self.succ.item(cid)).bit_length() - 1) * _SIDE + (
            prior_f + self.fail.item(cid)).bit_length() - 1

    def _move(self, cid: int, old: int, new: int) -> None:
        """A candidate leaves group ``old`` (-1: none) for group ``new`` (-1: none)."""
        slots = int(self._slots(cid))  # type: ignore[arg-type]
        if old >= 0:
            self.slots[old] -= slots
            group = self.members[old]
            del group[bisect.bisect_left(group, cid)]
        if new >= 0:
            self.slots[new] += slots
            bisect.insort(self.members.setdefault(new, []), cid)
        self.code[cid] = new

    def _slots(self, ids: np.ndarray) -> np.ndarray:
        """The slots of ``ids``: a + b - 1."""
        return sum(self.priors) - 1 + self.succ[ids] + self.fail[ids]  # type: ignore[arg-type]

    def _code(self, ids: np.ndarray) -> np.ndarray:
        """The groups of ``ids`` from their counts: (floor(log2 a), floor(log2 b))."""
        a = (self.priors[0] + self.succ[ids]).astype(float)  # type: ignore[index]
        b = (self.priors[1] + self.fail[ids]).astype(float)  # type: ignore[index]
        return (np.frexp(a)[1] - 1) * _SIDE + (np.frexp(b)[1] - 1)

    def _grow(self, n: int) -> None:
        if n <= len(self.succ):
            return
        size = max(n, 2 * len(self.succ), 1024)
        pad = size - len(self.succ)
        self.succ = np.concatenate([self.succ, np.zeros(pad, dtype=np.int64)])
        self.fail = np.concatenate([self.fail, np.zeros(pad, dtype=np.int64)])
        self.outcome = np.concatenate([self.outcome, np.zeros(pad, dtype=np.int8)])
        self.fitness = np.concatenate([self.fitness, np.full(pad, math.nan)])
        self.code = np.concatenate([self.code, np.full(pad, -1, dtype=np.int64)])
        self.up = [np.concatenate([row[:-1], np.full(pad + 1, size, dtype=np.int64)])
                   for row in self.up] or [np.full(size + 1, size, dtype=np.int64)]
        for row in self.up:
            row[row == size - pad] = size  # "none" moves to the new last entry

    # -- from scratch -----------------------------------------------------------------
    def _recount(self, view: ArchiveIndex) -> None:
        """Every count again: each candidate's outcome, summed up the first-parent forest
        from the leaves (children before parents); then the jump tables and groups."""
        self._reset()
        self._grow(view.max_id() + 1)
        candidates = view.candidates()
        first: dict[int, int] = {}
        for c in candidates:
            self.known.add(c.id)
            self.fitness[c.id] = _fitness(c)
            self.outcome[c.id] = result = outcome(view, c)
            if result == SUCCESS:
                self.succ[c.id] = 1
            elif result == FAILURE:
                self.fail[c.id] = 1
            if c.parent_ids and c.parent_ids[0] in view:  # as ``descent`` walks
                first[c.id] = c.parent_ids[0]
        if all(p < cid for cid, p in first.items()):  # ids are created parents first
            order = [c.id for c in reversed(candidates)]
        else:
            order = sorted((c.id for c in candidates),
                           key=lambda i: len(view.descent(i)), reverse=True)
        succ, fail = self.succ.tolist(), self.fail.tolist()  # lists: faster one by one
        for cid in order:
            parent = first.get(cid)
            if parent is not None:
                succ[parent] += succ[cid]
                fail[parent] += fail[cid]
        self.succ[:] = succ
        self.fail[:] = fail
        if first:
            self.up[0][np.fromiter(first, np.int64, len(first))] = list(first.values())
        ids = np.flatnonzero(~np.isnan(self.fitness))
        if self.priors is not None and len(ids):
            codes = self._code(ids)
            self.code[ids] = codes
            np.add.at(self.slots, codes, self._slots(ids))
            order = np.argsort(codes, kind="stable")  # ids ascending within a group
            groups, starts = np.unique(codes[order], return_index=True)
            for code, part in zip(groups.tolist(), np.split(ids[order], starts[1:]),
                                  strict=True):
                self.members[code] = part.tolist()

    # -- Thompson samples (whole-number parameters) -------------------------------------
    def draw(self, rng: np.random.Generator) -> int:
        """The candidate with the largest of one draw from every evaluated candidate's
        Beta(a, b) (see the module docstring for how it is made without them)."""
        slots = self.slots
        lead_slots = slots[::_SIDE].tolist()  # per floor(log2 a), of the b = 1 groups
        total = sum(lead_slots)  # A
        if not total:
            return self._one_by_one(rng, self.code >= 0, -math.inf, -1)
        log_m = math.log1p(-rng.random()) / total  # the largest value M of their slots
        tail = -math.expm1(log_m)  # 1 - M
        below = _Below(rng)
        lead = self._lead(below, lead_slots, total)
        codes = np.flatnonzero(slots * _REST)
        rest, least = slots[codes], _LEAST[codes]  # least: a lower bound of the group's b
        expected = rest * tail
        many = sum(len(self.members[code]) for code in codes.tolist()) // _DEALS + _DEAL_MIN
        if tail > 0.5 or expected[2 * expected >= least].sum() > many:
            # decided from M alone, before any of the others' randomness is drawn
            others = (self.code >= 0) & (self.code % _SIDE > 0)
            return self._one_by_one(rng, others, math.exp(log_m), lead)
        hits = rng.binomial(rest, tail)
        best, best_id = 0.0, lead
        for j in np.flatnonzero(hits >= least).tolist():  # some member's b may be reached
            won = self._deal(below, int(codes[j]), int(hits[j]))
            if won:
                ids, got, b = (np.array(column) for column in zip(*won, strict=True))
                values = rng.beta(got - b + 1, b)  # above M, scaled to (0, 1)
                i = int(np.argmax(values))
                if values[i] > best or (values[i] == best and ids[i] < best_id):
                    best, best_id = float(values[i]), int(ids[i])
        return best_id

    def _lead(self, below: _Below, slots: list[int], total: int) -> int:
        """The candidate holding a slot drawn uniformly among the b = 1 slots."""
        target, ka = below(total), 0
        while target >= slots[ka]:
            target -= slots[ka]
            ka += 1
        group, most = self.members[ka * _SIDE], (2 << ka) - 1  # a < 2**(ka + 1)
        prior_s, succ = self.priors[0], self.succ  # type: ignore[index]
        while True:  # a member, kept with probability a / most
            cid = group[below(len(group))]
            if below(most) < prior_s + succ.item(cid):
                return cid

    def _deal(self, below: _Below, code: int, count: int) -> list[tuple[int, int, int]]:
        """``count`` distinct slots drawn uniformly among the group's: the members that got
        at least their b of them, as (id, hits, b)."""
        group = self.members[code]
        ka, kb = divmod(code, _SIDE)
        most = (2 << ka) + (2 << kb) - 3  # the largest a + b - 1 in the group
        prior_s, prior_f = self.priors  # type: ignore[misc]
        succ, fail = self.succ, self.fail
        taken: set[tuple[int, int]] = set()
        hits: dict[int, int] = {}
        while len(taken) < count:
            cid, slot = group[below(len(group))], below(most)
            if slot < prior_s + prior_f - 1 + succ.item(cid) + fail.item(cid) and (
                    cid, slot) not in taken:
                taken.add((cid, slot))
                hits[cid] = hits.get(cid, 0) + 1
        won = ((cid, got, prior_f + fail.item(cid)) for cid, got in hits.items())
        return [(cid, got, b) for cid, got, b in won if got >= b]

    def _one_by_one(self, rng: np.random.Generator, chosen: np.ndarray, value: float,
                    lead: int) -> int:
        """One Beta draw per ``chosen`` candidate (a mask); the largest, if above
        ``value`` (the lead's), else ``lead``."""
        assert self.priors is not None
        ids = np.flatnonzero(chosen[:len(self.succ)])
        if not len(ids):
            return lead
        a, b = self.priors[0] + self.succ[ids], self.priors[1] + self.fail[ids]
        values = rng.beta(a, b)
        i = int(np.argmax(values))
        if values[i] > value or (values[i] == value and ids[i] < lead):
            return int(ids[i])
        return lead


class _Below:
    """Uniform whole numbers below a bound, exactly, by rejection on the generator's raw
    64-bit words: as many top bits as the bound needs, kept when below it (far cheaper
    than one ``Generator.integers`` call each, and a sample may take hundreds)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.source, self.words = rng.bit_generator, []

    def __call__(self, bound: int) -> int:
        shift = 64 - (bound - 1).bit_length()
        while True:
            if not self.words:
                self.words = self.source.random_raw(16).tolist()
            value = self.words.pop() >> shift
            if value < bound:
                return value


def _fitness(candidate: Candidate) -> float:
    fit = candidate.fitness
    return math.nan if fit is None else fit
