"""A one-line progress display for long runs (stderr; plain lines when not a terminal)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ._budget import Budget
from ._engine import Engine


class ProgressBar:
    """Called after every finished candidate; redraws at most a few times a second."""

    def __init__(self, stream: TextIO | None = None, interval: float = 0.25,
                 plain_interval: float = 15.0) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval = interval if self.tty else plain_interval
        self.last = 0.0
        self.first_fraction: float | None = None
        self.first_time = 0.0

    def __call__(self, engine: Engine, budget: Budget, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.interval:
            return
        self.last = now
        line = self.render(engine, budget, now)
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def render(self, engine: Engine, budget: Budget, now: float) -> str:
        index = engine.storage.index
        size, tokens = len(index), engine.tokens()
        fraction = budget.fraction(size, tokens)
        best = index.best("train")
        best_val = index.best("validation")
        parts = []
        if fraction is not None:
            filled = int(round(20 * fraction))
            parts.append(f"[{'#' * filled}{'.' * (20 - filled)}] {100 * fraction:3.0f}%")
        limit = budget.config.candidates
        parts.append(f"{size}{f'/{limit}' if limit else ''} candidates")
        parts.append(f"best train {best.fitness:.2f}" if best and best.fitness is not None
                     else "best train -")
        if best_val is not None:
            parts.append(f"val {best_val.score('validation'):.2f}")
        parts.append(f"{_si(tokens)} tokens")
        parts.append(f"ETA {self.eta(fraction, now)}")
        if engine.collapse_warning:
            parts.append(f"WARNING {engine.collapse_warning}")
        return " | ".join(parts)

    def eta(self, fraction: float | None, now: float) -> str:
        if fraction is None:
            return "-"
        if self.first_fraction is None:
            self.first_fraction, self.first_time = fraction, now
            return "?"
        done = fraction - self.first_fraction
        if done <= 0:
            return "?"
        seconds = (now - self.first_time) * (1.0 - fraction) / done
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _si(n: int) -> str:
    return f"{n / 1000:.1f}k" if n >= 1000 else str(n)
