"""The leaderboard answers as a full scan would, through any sequence of score changes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from archive._leaderboard import Leaderboard

scores = st.none() | st.sampled_from([0.0, 0.25, 0.5, 1.0])  # None: the score goes away
changes = st.lists(st.tuples(st.integers(0, 12), scores), max_size=60)


@settings(max_examples=300, deadline=None)
@given(changes=changes, size=st.integers(1, 5), k=st.integers(1, 6))
def test_best_k_matches_a_scan(changes: list[tuple[int, float | None]], size: int,
                               k: int) -> None:
    board = Leaderboard(size)
    scores: dict[int, float] = {}
    for cid, score in changes:
        if scores.get(cid) != score:
            if cid in scores:
                board.withdraw(cid)
                del scores[cid]
            if score is not None:
                board.offer(cid, score)
                scores[cid] = score
        expected = [cid for cid, _ in sorted(scores.items(), key=lambda x: (-x[1], x[0]))][:k]
        found = board.best(k)
        if k > size:
            assert found is None
            continue
        if found is None:  # spoilt by a withdrawal from the board: the owner rebuilds
            board.rebuild([(s, c) for c, s in scores.items()])
            found = board.best(k)
        assert found == expected


def test_only_a_withdrawal_from_the_board_spoils_it() -> None:
    board = Leaderboard(2)
    for cid, score in [(1, 0.9), (2, 0.8), (3, 0.1)]:
        board.offer(cid, score)
    board.withdraw(3)  # not on the board: the two best are unchanged
    assert board.best(2) == [1, 2]
    board.withdraw(2)
    assert board.best(1) is None
