"""The run loops: generational (reproducible) and steady-state (throughput).

Both start the same way: finish what an interrupted execution left pending,
create the founders (the seed prompt and the initial population) if the
archive is empty, then make children until a budget is reached.

Generational mode selects a whole generation from one archive snapshot, runs
all its mutations, and writes all its children in ONE transaction, so a
generation is either wholly in the archive or not at all; a resumed run
re-plans a missing generation from the same snapshot with the same generators
and gets the same LLM requests back from the response cache.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence

from archive import Candidate, SQLiteStorage, Status

from ._budget import Budget
from ._engine import Child, Engine
from ._errors import SelectionError
from ._monitor import PROBE_SPLIT, CollapseMonitor
from ._streams import INIT, SELECT

#: Called after each finished candidate with the engine and the budget the loop runs by.
Progress = Callable[[Engine, Budget], None]


class Loop:
    """Drives one execution of a run until a budget is reached; returns why it stopped."""

    def __init__(self, engine: Engine, budget: Budget, *, population_size: int,
                 generation_size: int, validate_top: int, concurrency: int,
                 progress: Progress, monitor: CollapseMonitor | None = None,
                 monitor_every: int | None = None, rescore_top: int = 0,
                 rescore_size: int = 0) -> None:
        self.engine = engine
        self.rescore_top = rescore_top
        self.rescore_size = rescore_size
        self.monitor = monitor
        self.monitor_every = monitor_every or generation_size
        self.budget = budget
        self.population_size = population_size
        self.generation_size = generation_size
        self.validate_top = validate_top
        self.concurrency = concurrency
        self.progress = progress

    @property
    def storage(self) -> SQLiteStorage:
        return self.engine.storage

    # -- shared phases ------------------------------------------------------------------------
    async def start(self) -> None:
        """Finish pending candidates, create the founders if needed, validate."""
        await self.evaluate_all(self.storage.index.candidates(status=Status.PENDING))
        if len(self.storage) == 0:
            children = await self.founders()
            await self.evaluate_all(await self.commit(children))
        await self.validate_round()
        await self.observe(self.storage.index.max_generation())

    async def founders(self) -> list[Child]:
        founders = await self.engine.species.founders(self.engine.streams(INIT),
                                                      self.population_size)
        return [self.engine.founder(slot, f) for slot, f in enumerate(founders)]

    async def commit(self, children: Sequence[Child]) -> list[Candidate]:
        """Write children as pending, all in one transaction."""
        if not children:
            return []
        candidates = await self.engine.writer.add(
            [(c.new, c.retire) for c in children], meta=self.engine.usage_meta)
        self.engine.species.committed(candidates)
        return candidates

    async def evaluate_all(self, candidates: Iterable[Candidate]) -> None:
        async def one(c: Candidate) -> None:
            await self.engine.evaluate(c)
            self.progress(self.engine, self.budget)

        await run_all([one(c) for c in candidates])

    async def validate_round(self) -> None:
        """Validation scores for the seed and the best candidates by training score."""
        picks = self.engine.to_validate(self.validate_top)
        seed = self.storage.index.by_slot(0)
        if (seed is not None and seed.status is Status.EVALUATED
                and "validation" not in seed.scores and seed not in picks):
            picks.append(seed)
        await run_all([self.engine.validate(c) for c in picks])
        if picks:
            self.progress(self.engine, self.budget)

    async def rescore(self) -> None:
        """Noise-aware selection: fresh examples for the best (``fitness.rescore_size``)."""
        await self.engine.rescore(self.rescore_top, self.rescore_size)

    async def observe(self, generation: int) -> None:
        """A collapse-monitor reading (after probe scores for the members that need them)."""
        if self.monitor is None or not self.monitor.enabled:
            return
        todo, examples = self.monitor.to_probe()
        await run_all([self.engine.score_on(c, PROBE_SPLIT, examples) for c in todo])
        self.monitor.record(generation)
        self.progress(self.engine, self.budget)

    def stop_reason(self, in_flight: int = 0) -> str | None:
        return self.budget.exhausted(len(self.storage) + in_flight, self.engine.tokens())

    # -- generational -------------------------------------------------------------------------
    async def generational(self) -> str:
        await self.start()
        while (reason := self.stop_reason()) is None:
            generation = self.storage.index.max_generation() + 1
            await self.rescore()
            try:
                children = await self.plan_generation(generation)
            except SelectionError as exc:
                return f"no parents to select from: {exc}"
            if not children:
                return "no parents to select from: the selector chose none"
            await self.evaluate_all(await self.commit(children))
            await self.validate_round()
            await self.observe(generation)
        return reason

    async def plan_generation(self, generation: int) -> list[Child]:
        """The generation's children, made but not committed. Raises ``SelectionError``
        (the selector's reason) when no parent can be selected."""
        size = self.generation_size
        remaining = self.budget.remaining_candidates(len(self.storage))
        if remaining is not None:
            size = min(size, remaining)
        rng = self.engine.streams(SELECT, generation)
        selections = self.engine.selector.select(self.storage.index, rng, size)
        first = self.storage.index.next_slot()
        return list(await asyncio.gather(*(
            self.engine.make_child(first + i, s, generation) for i, s in enumerate(selections))))

    # -- steady state -----------------------------------------------------------------------------
    async def steady_state(self) -> str:
        await self.start()
        state = _SteadyState(next_slot=self.storage.index.next_slot())
        await run_all([self._worker(state) for _ in range(self.concurrency)])
        return self.stop_reason() or state.reason or "stopped"

    async def _worker(self, state: _SteadyState) -> None:
        while self.stop_reason(state.unwritten) is None:
            slot = state.next_slot
            try:
                selection = self.engine.selector.select(
                    self.storage.index, self.engine.streams(SELECT, slot), 1,
                    frozenset(state.busy))[0]
            except SelectionError as exc:
                if not state.busy:
                    state.reason = f"no parents to select from: {exc}"
                    return
                await state.wait_for_change()
                continue
            state.next_slot += 1
            taken = {selection.parent, *selection.retire}
            state.busy |= taken
            state.unwritten += 1
            try:
                parent = self.storage.get(selection.parent)
                child = await self.engine.make_child(slot, selection, parent.generation + 1)
                [candidate] = await self.commit([child])
            finally:
                state.busy -= taken
                state.unwritten -= 1
                state.changed()
            await self.engine.evaluate(candidate)
            self.progress(self.engine, self.budget)
            state.finished += 1
            if state.finished % self.generation_size == 0:
                await self.rescore()
                await self.validate_round()
            if state.finished % self.monitor_every == 0:
                await self.observe(self.storage.index.max_generation())


class _SteadyState:
    """What the steady-state workers share (one event loop, so no locks needed)."""

    def __init__(self, next_slot: int) -> None:
        self.next_slot = next_slot
        self.busy: set[int] = set()
        self.unwritten = 0
        self.finished = 0
        self.reason: str | None = None
        self._event = asyncio.Event()

    def changed(self) -> None:
        self._event.set()

    async def wait_for_change(self) -> None:
        self._event.clear()
        await self._event.wait()


async def run_all(coros: Sequence[Awaitable[object]]) -> None:
    """Run coroutines concurrently; on the first error cancel the rest and re-raise it."""
    if not coros:
        return
    try:
        async with asyncio.TaskGroup() as group:
            for coro in coros:
                group.create_task(coro)  # type: ignore[arg-type]
    except BaseExceptionGroup as group_error:
        raise _first_leaf(group_error) from None


def _first_leaf(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error
