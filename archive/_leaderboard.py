"""The best few entries of a changing set of scores, kept as the scores arrive.

"Which candidate is best?" is asked after almost every candidate (the progress
line, validation rounds), and answering it with a scan of the whole archive made
those questions grow with the archive. Scores of a candidate are set once in
its life, so the board only has to take new scores in; a score that changes or
leaves while on the board spoils it, and the owner rebuilds it from the full
set (rare).
"""

from __future__ import annotations

import bisect


class Leaderboard:
    """The ``size`` best ``(score, id)`` pairs, best first; ties: the lower id first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._keys: list[tuple[float, int]] = []  # (-score, id), ascending
        self._on_board: set[int] = set()
        self.valid = True  # False: rebuild before answering

    def offer(self, cid: int, score: float) -> None:
        """A new score for ``cid`` (withdraw its old score first, if it had one)."""
        key = (-score, cid)
        if len(self._keys) >= self.size and key >= self._keys[-1]:
            return  # not among the best: the board is full of better ones
        bisect.insort(self._keys, key)
        self._on_board.add(cid)
        if len(self._keys) > self.size:
            self._on_board.discard(self._keys.pop()[1])

    def withdraw(self, cid: int) -> None:
        """``cid``'s score changed or went away."""
        if cid in self._on_board:
            self.valid = False

    def best(self, k: int) -> list[int] | None:
        """The ids of the ``k`` best, or None when the board cannot tell (spoilt, or
        ``k`` beyond its size)."""
        if not self.valid or k > self.size:
            return None
        return [cid for _, cid in self._keys[:k]]

    def rebuild(self, pairs: list[tuple[float, int]]) -> None:
        """Start again from every current ``(score, id)`` pair."""
        self._keys = sorted((-score, cid) for score, cid in pairs)[: self.size]
        self._on_board = {cid for _, cid in self._keys}
        self.valid = True
