"""Run budgets: candidates, LLM tokens and wall time; the first one reached stops the run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass

from ._config import BudgetConfig


@dataclass
class Budget:
    """Tracks spending against a ``BudgetConfig``.

    ``elapsed_before`` is the wall time spent by earlier executions of the same run
    (resumes add up); ``tokens`` is read from a callable so the LLM clients stay the
    single source of truth.
    """

    config: BudgetConfig
    elapsed_before: float = 0.0
    started: float = 0.0

    def start(self) -> None:
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return self.elapsed_before + (time.monotonic() - self.started if self.started else 0.0)

    def remaining_candidates(self, archive_size: int) -> int | None:
        if self.config.candidates is None:
            return None
        return max(0, self.config.candidates - archive_size)

    def exhausted(self, archive_size: int, tokens: int) -> str | None:
        """The reason the run must stop now, or None to go on."""
        c = self.config
        if c.candidates is not None and archive_size >= c.candidates:
            return f"candidate budget reached ({archive_size}/{c.candidates})"
        if c.tokens is not None and tokens >= c.tokens:
            return f"token budget reached ({tokens}/{c.tokens})"
        if c.wall_time is not None and self.elapsed() >= c.wall_time:
            return self.wall_time_reason()
        return None

    def seconds_left(self) -> float | None:
        """Wall time left before the wall-time budget is reached (None: no such budget)."""
        if self.config.wall_time is None:
            return None
        return self.config.wall_time - self.elapsed()

    def wall_time_reason(self) -> str:
        return f"wall-time budget reached ({self.elapsed():.0f}s/{self.config.wall_time:.0f}s)"

    def fraction(self, archive_size: int, tokens: int) -> float | None:
        """How much of the tightest budget is spent (for the ETA), or None if unbounded."""
        c = self.config
        parts = []
        if c.candidates:
            parts.append(archive_size / c.candidates)
        if c.tokens:
            parts.append(tokens / c.tokens)
        if c.wall_time:
            parts.append(self.elapsed() / c.wall_time)
        return min(1.0, max(parts)) if parts else None


async def within_wall_time(budget: Budget, work: Awaitable[str]) -> str:
    """``work``'s result, or the wall-time budget's reason once that budget runs out, even
    in the middle of a generation or a slow LLM request: ``work`` is then cancelled as by
    Ctrl-C (what is committed stays, candidates in flight stay pending and a resume with
    more time evaluates them)."""
    left = budget.seconds_left()
    if left is None:
        return await work
    deadline = asyncio.timeout(max(0.0, left))
    try:
        async with deadline:
            return await work
    except TimeoutError:
        if not deadline.expired():
            raise  # a timeout of the work's own, not the budget's
        return budget.wall_time_reason()
