"""In-memory index of an archive: the read-only view strategies see.

Every storage keeps one index in step with its writes (``publish``). Reads are
dictionary lookups; the population's fitness and child counts are kept in
numpy arrays indexed by candidate id, so a selector can score the whole
population in one vectorised step however large the archive grows.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ._bounds import wilson_lower_bound
from ._errors import UnknownCandidateError
from ._leaderboard import Leaderboard
from ._records import Candidate, Status

_TOP_KEPT = 64  # entries per split's leaderboard: top(k) up to this is O(k)
_LOG_KEPT = 1 << 16  # entries of the change log kept (see changed_since)


#: how the training score ranks candidates (``ArchiveIndex.rank_train_by``)
TRAIN_RANKS = ("mean", "wilson")


class ArchiveIndex:
    """Read-only view of one run's candidates (kept current by the storage)."""

    def __init__(self) -> None:
        self._by_id: dict[int, Candidate] = {}
        self._by_slot: dict[int, int] = {}
        self._by_fingerprint: dict[str, int] = {}  # the first candidate with each one
        self._children: dict[int, list[int]] = {}
        self._retirees: dict[int, set[int]] = {}  # retired_by -> the ids it retired
        self._fitness = np.full(1024, np.nan)  # NaN: not evaluated
        self._member = np.zeros(1024, dtype=bool)  # alive and evaluated: in the population
        self._n_children = np.zeros(1024, dtype=np.int64)
        self._first_parent = np.full(1024, -1, dtype=np.int64)  # -1: a founder
        self._max_id = 0  # kept by publish so that id/slot allocation stays O(1)
        self._max_slot = -1
        self._max_generation = -1
        self._in_id_order = True  # ids arrived ascending, so dict order is id order
        self._scored: dict[str, set[int]] = {}  # split -> ids with a score on it
        # kept as candidates change, so that the questions asked after every candidate
        # (population, best, top k) do not scan the archive
        self._population: set[int] = set()  # alive and evaluated
        self._pending: set[int] = set()  # asked for at every start of a run
        self._population_ids: np.ndarray | None = None  # sorted, read-only; None: stale
        self._leaders: dict[str, Leaderboard] = {}  # split -> its best evaluated scores
        # ids whose fitness or child count may have changed, in order (see changed_since)
        self._log: list[int] = []
        self._log_start = 0  # the mark of self._log[0]
        self._train_rank = "mean"

    def rank_train_by(self, rule: str) -> None:
        """Rank candidates (``fitness_array``, ``top``, ``best("train")``) by their mean
        training score ("mean") or by its Wilson lower bound over the examples it was
        scored on ("wilson": a high score on a few examples ranks below the same score on
        many). Everything shown is ranked again."""
        if rule not in TRAIN_RANKS:
            raise ValueError(f"rank must be one of {', '.join(TRAIN_RANKS)}, not {rule!r}")
        if rule == self._train_rank:
            return
        self._train_rank = rule
        board = self._leaders.pop("train", None)
        for cid, candidate in self._by_id.items():
            fit = self.rank(candidate)
            self._fitness[cid] = np.nan if fit is None else fit
            self._log.append(cid)  # every fitness may have changed (see changed_since)
            self._trim_log()
        if board is not None:
            self._leaders["train"] = board = Leaderboard(board.size)
            board.rebuild([(self.rank(c), c.id) for c in self.scored("train")])

    def rank(self, candidate: Candidate, split: str = "train") -> float | None:
        """The value ``candidate`` is ranked by on ``split`` (None: not evaluated or not
        scored on it): its mean score, or on "train" what ``rank_train_by`` chose."""
        score = candidate.scores.get(split)
        if candidate.status is not Status.EVALUATED or score is None:
            return None
        if split == "train" and self._train_rank == "wilson":
            return wilson_lower_bound(score.mean, len(score.examples))
        return score.mean

    def _evaluated_scores(self, candidate: Candidate | None) -> dict[str, float]:
        """The ranked value per split of an evaluated candidate (none for any other)."""
        if candidate is None:
            return {}
        values = {split: self.rank(candidate, split) for split in candidate.scores}
        return {split: v for split, v in values.items() if v is not None}

    # -- writes (storage only) --------------------------------------------------------
    def publish(self, candidate: Candidate) -> None:
        """Show ``candidate`` (new, or a new version of one already shown) to readers.

        Only storages call this, with records they have validated and (if durable)
        committed: the index checks nothing, so readers see exactly what the storage
        holds. Strategies, operators and reports only read (tests may build an index
        by hand with it).
        """
        cid = candidate.id
        previous = self._by_id.get(cid)
        self._grow(cid)
        if previous is None and cid < self._max_id:
            self._in_id_order = False
        self._by_id[cid] = candidate
        self._by_slot[candidate.slot] = cid
        was_retired_by = None if previous is None else previous.retired_by
        if candidate.retired_by != was_retired_by:
            if was_retired_by is not None:
                self._retirees[was_retired_by].discard(cid)
            if candidate.retired_by is not None:
                self._retirees.setdefault(candidate.retired_by, set()).add(cid)
        if candidate.fingerprint is not None:
            first = self._by_fingerprint.setdefault(candidate.fingerprint, cid)
            if cid < first:
                self._by_fingerprint[candidate.fingerprint] = cid
        self._max_id = max(self._max_id, cid)
        self._max_slot = max(self._max_slot, candidate.slot)
        self._max_generation = max(self._max_generation, candidate.generation)
        for split in candidate.scores:
            self._scored.setdefault(split, set()).add(cid)
        log = self._log
        log.append(cid)
        if previous is None:
            if candidate.parent_ids:
                self._first_parent[cid] = candidate.parent_ids[0]
            for pid in dict.fromkeys(candidate.parent_ids):
                self._children.setdefault(pid, []).append(cid)
                self._grow(pid)
                self._n_children[pid] += 1
                log.append(pid)
        self._trim_log()
        fit = self.rank(candidate)
        self._fitness[cid] = np.nan if fit is None else fit
        member = fit is not None and candidate.alive
        if candidate.status is Status.PENDING:
            self._pending.add(cid)
        else:
            self._pending.discard(cid)
        if member != (cid in self._population):
            (self._population.add if member else self._population.discard)(cid)
            self._member[cid] = member
            self._population_ids = None
        self._update_leaders(previous, candidate)

    def _trim_log(self) -> None:
        log = self._log
        if len(log) > _LOG_KEPT:
            drop = len(log) - _LOG_KEPT // 2
            del log[:drop]
            self._log_start += drop

    def _update_leaders(self, previous: Candidate | None, candidate: Candidate) -> None:
        before = self._evaluated_scores(previous)
        after = self._evaluated_scores(candidate)
        for split in before.keys() | after.keys():
            old, new = before.get(split), after.get(split)
            if old == new:
                continue
            board = self._leaders.get(split)
            if board is None:
                board = self._leaders[split] = Leaderboard(_TOP_KEPT)
            if old is not None:
                board.withdraw(candidate.id)
            if new is not None:
                board.offer(candidate.id, new)

    def _grow(self, cid: int) -> None:
        size = len(self._fitness)
        if cid < size:
            return
        new = max(size * 2, cid + 1)
        self._fitness = np.concatenate([self._fitness, np.full(new - size, np.nan)])
        self._member = np.concatenate([self._member, np.zeros(new - size, dtype=bool)])
        self._n_children = np.concatenate([self._n_children, np.zeros(new - size, np.int64)])
        self._first_parent = np.concatenate([self._first_parent,
                                             np.full(new - size, -1, np.int64)])

    # -- reads ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, candidate_id: object) -> bool:
        return candidate_id in self._by_id

    def get(self, candidate_id: int) -> Candidate:
        try:
            return self._by_id[candidate_id]
        except KeyError:
            raise UnknownCandidateError(f"no candidate with id {candidate_id}") from None

    def by_slot(self, slot: int) -> Candidate | None:
        cid = self._by_slot.get(slot)
        return None if cid is None else self._by_id[cid]

    def pending_count(self) -> int:
        """How many candidates are pending (committed, not yet finished)."""
        return len(self._pending)

    def retirees(self, candidate_id: int) -> list[Candidate]:
        """The candidates ``candidate_id`` retired and that are still retired, by id."""
        return [self._by_id[r] for r in sorted(self._retirees.get(candidate_id, ()))]

    def with_fingerprint(self, fingerprint: str) -> Candidate | None:
        """The first candidate (lowest id) whose fingerprint is ``fingerprint``, if any."""
        cid = self._by_fingerprint.get(fingerprint)
        return None if cid is None else self._by_id[cid]

    def next_slot(self) -> int:
        return self._max_slot + 1

    def max_id(self) -> int:
        return self._max_id

    def candidates(
        self, *, status: Status | Iterable[Status] | None = None, alive: bool | None = None
    ) -> list[Candidate]:
        """Candidates in id order, optionally filtered by status and population membership."""
        wanted = None if status is None else (
            {status} if isinstance(status, Status) else set(status))
        if wanted == {Status.PENDING}:  # kept as candidates change: no scan
            return [c for c in (self._by_id[i] for i in sorted(self._pending))
                    if alive is None or c.alive == alive]
        ordered = (self._by_id.values() if self._in_id_order
                   else (c for _, c in sorted(self._by_id.items())))
        return [
            c for c in ordered
            if (wanted is None or c.status in wanted) and (alive is None or c.alive == alive)
        ]

    def max_generation(self) -> int:
        """The highest generation number (-1 when empty)."""
        return self._max_generation

    def _best_ids(self, split: str, k: int) -> list[int] | None:
        """The ids of the ``k`` best on ``split`` from its leaderboard (rebuilt if spoilt),
        or None when ``k`` is more than the board keeps."""
        board = self._leaders.get(split)
        if board is None:
            return []
        found = board.best(k)
        if found is None and k <= board.size:
            board.rebuild([(self.rank(c, split), c.id) for c in self.scored(split)])
            found = board.best(k)
        return found

    def scored(self, split: str) -> list[Candidate]:
        """Evaluated candidates with a score on ``split``, in id order."""
        return [self._by_id[i] for i in sorted(self._scored.get(split, ()))
                if self._by_id[i].status is Status.EVALUATED and split in self._by_id[i].scores]

    def top(self, k: int) -> list[Candidate]:
        """The ``k`` best evaluated candidates by training fitness (ties: lowest id first)."""
        if k <= 0:
            return []
        found = self._best_ids("train", k)
        if found is not None:
            return [self._by_id[i] for i in found]
        n = self._max_id + 1
        fitness = self._fitness[:n]
        ids = np.flatnonzero(~np.isnan(fitness))
        if k <= 0 or not len(ids):
            return []
        if len(ids) > k:  # keep every id tied with the k-th best, then order exactly
            kth = np.partition(fitness[ids], len(ids) - k)[len(ids) - k]
            ids = ids[fitness[ids] >= kth]
        order = np.lexsort((ids, -fitness[ids]))
        return [self._by_id[int(i)] for i in ids[order][:k]]

    def descent(self, candidate_id: int, max_depth: int | None = None) -> list[int]:
        """``candidate_id`` and its first-parent ancestors, newest first: at most
        ``max_depth`` ancestors, and none past one that is not in the archive. (Walked in
        an array of ids: the candidates themselves lie all over memory in a large
        archive, and reading them cost four times as much.)"""
        first = self._first_parent
        line, seen = [candidate_id], {candidate_id}
        while max_depth is None or len(line) <= max_depth:
            pid = first.item(line[-1])
            if pid < 0 or pid in seen or pid not in self._by_id:
                break
            line.append(pid)
            seen.add(pid)
        return line

    def children(self, candidate_id: int) -> list[int]:
        return list(self._children.get(candidate_id, ()))

    def population_ids(self) -> np.ndarray:
        """Ids of alive, evaluated candidates (the current population), ascending
        (a read-only array).

        Rebuilt after the population changes: from the set when the population is a small
        part of the archive (a tournament's), else from the membership array (under DGM
        selection the population is the whole archive, and sorting it would take ms)."""
        if self._population_ids is None:
            n = self._max_id + 1
            if len(self._population) * 128 < n:
                ids = np.array(sorted(self._population), dtype=np.intp)
            else:
                ids = np.flatnonzero(self._member[:n]).astype(np.intp, copy=False)
            ids.flags.writeable = False
            self._population_ids = ids
        return self._population_ids

    def population_size(self) -> int:
        """How many candidates are alive and evaluated (without building the id array)."""
        return len(self._population)

    def in_population(self, candidate_id: int) -> bool:
        """Whether the candidate is alive and evaluated."""
        return candidate_id in self._population

    def _mark(self) -> int:
        return self._log_start + len(self._log)

    def changed_since(self, mark: int) -> tuple[int, list[int] | None]:
        """(the current mark, the ids whose fitness or child count may have changed since
        ``mark``, with repeats), so that a strategy can keep per-candidate values up to
        date without a scan. The list is None when the log no longer reaches back to
        ``mark`` (or ``mark`` is -1): consider every candidate changed."""
        now = self._mark()
        if mark < self._log_start or mark > now:
            return now, None
        return now, self._log[mark - self._log_start:]

    def fitness_of(self, ids: np.ndarray) -> np.ndarray:
        """Training fitness per id (NaN where not evaluated)."""
        return self._fitness[ids]

    def fitness_array(self) -> np.ndarray:
        """Training fitness of every id from 0 to ``max_id()`` (a copy; NaN: not evaluated)."""
        return self._fitness[: self._max_id + 1].copy()

    def children_count_array(self) -> np.ndarray:
        """Number of children of every id from 0 to ``max_id()`` (a copy)."""
        return self._n_children[: self._max_id + 1].copy()

    def children_count_of(self, ids: np.ndarray) -> np.ndarray:
        return self._n_children[ids]

    def best(self, split: str = "train") -> Candidate | None:
        """The evaluated candidate with the highest mean score on ``split``.

        The lowest id wins ties."""
        found = self._best_ids(split, 1)
        return self._by_id[found[0]] if found else None

    def counts_by_status(self) -> dict[Status, int]:
        counts = dict.fromkeys(Status, 0)
        for c in self._by_id.values():
            counts[c.status] += 1
        return counts
