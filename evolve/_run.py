"""A run: a directory ``<runs_dir>/<name>/`` holding the archive (the single source of
truth: config, state, candidates, LLM cache) and a readable copy of the config.

``Run.create`` starts a new run from a config, ``Run.open`` loads an existing one
(to resume or inspect), ``Run.fork`` copies a run's archive as it was after a
given candidate into a new run. ``Run.execute`` runs the loop until a budget is
reached, Ctrl-C, or an error the user must fix.
"""

from __future__ import annotations

import asyncio
import fcntl
import gc
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from archive import ArchiveError, SQLiteStorage, copy_archive

from ._budget import Budget, within_wall_time
from ._clients import preflight
from ._config import RunConfig, apply_overrides, config_from_data, config_to_data
from ._errors import CladeforgeError, RunStateError
from ._execution import open_loop
from ._factory import build_benchmark, build_operators, build_selector
from ._genome_kind import GenomeKind
from ._genome_kinds import genome_kind
from ._loop import Progress
from ._streams import DEFAULT_SCHEME

ARCHIVE_FILE = "archive.sqlite"
CONFIG_COPY = "config.yaml"
LOCK_FILE = ".lock"


class Run:
    """One evolution run on disk."""

    def __init__(self, directory: Path, storage: SQLiteStorage, config: RunConfig) -> None:
        self.directory = directory
        self.storage = storage
        self.config = config

    # -- creating and opening ---------------------------------------------------------------
    @classmethod
    def create(cls, config: RunConfig, *, meta: dict[str, Any] | None = None) -> Run:
        name = config.name or "run"
        directory = Path(config.runs_dir) / name
        if (directory / ARCHIVE_FILE).exists():
            raise RunStateError(
                f"run {directory} already exists; continue it with 'evolve resume {directory}'"
                f" or choose another name with --name")
        # fail on a bad config before anything is written
        kind = genome_kind(config.evolution.genome)
        benchmark = build_benchmark(config.fitness, kind)
        build_selector(config.evolution, kind)
        build_operators(config.evolution, kind)
        kind.check(config)
        preflight(config.llm, kind.roles(benchmark))
        directory.mkdir(parents=True, exist_ok=True)
        storage = SQLiteStorage(directory / ARCHIVE_FILE)
        data = config_to_data(config)
        storage.set_meta({"config": data, "state": "created", "created_at": time.time(),
                          "rng": {"seed": config.seed, "scheme": DEFAULT_SCHEME},
                          **(meta or {})})
        _write_config_copy(directory, config)
        return cls(directory, storage, config)

    @classmethod
    def open(cls, directory: str | Path, overrides: Iterable[str] = ()) -> Run:
        directory = Path(directory)
        path = directory / ARCHIVE_FILE
        if not path.is_file():
            raise RunStateError(f"{directory} is not a Cladeforge run (no {ARCHIVE_FILE} in it)")
        try:
            storage = SQLiteStorage(path)
        except ArchiveError as exc:
            raise RunStateError(f"cannot open the archive of {directory}: {exc}") from None
        data = storage.get_meta("config")
        if data is None:
            raise RunStateError(f"{path} has no run config; it was not made by 'evolve run'")
        overrides = list(overrides)
        config = config_from_data(apply_overrides(data, overrides))
        if overrides:
            storage.set_meta({"config": config_to_data(config)})
            _write_config_copy(directory, config)
        return cls(directory, storage, config)

    @classmethod
    def fork(cls, source: str | Path, *, at: int, name: str,
             overrides: Iterable[str] = ()) -> Run:
        """A new run starting from ``source``'s archive as it was after candidate ``at``."""
        parent = cls.open(source)
        try:
            if at != 0 and at not in parent.storage.index:
                raise RunStateError(
                    f"--at {at}: {source} has no candidate {at} (it has ids 1.."
                    f"{parent.storage.index.max_id()}; 0 keeps none and replays the run "
                    f"from its response cache)")
            data = apply_overrides(config_to_data(parent.config), [*overrides, f"name={name}"])
            data["runs_dir"] = str(Path(source).parent)
            config = config_from_data(data)
            child = cls.create(config, meta={"forked_from": {"run": str(source), "at": at}})
            try:
                copy_archive(parent.storage, child.storage, upto_id=at)
                child.kind.copy_run_files(parent.directory, child.directory)
                # the fork's budgets count its own spending from here on
                child.storage.set_meta({"config": config_to_data(config), "state": "created",
                                        "stop_reason": None, "elapsed": 0.0, "llm_usage": {},
                                        "forked_from": {"run": str(source), "at": at}})
            except BaseException:
                child.close()  # a half-copied fork is no run: remove it
                shutil.rmtree(child.directory, ignore_errors=True)
                raise
            return child
        finally:
            parent.close()

    @property
    def kind(self) -> GenomeKind:
        """What the run evolves (``evolution.genome``)."""
        return genome_kind(self.config.evolution.genome)

    def close(self) -> None:
        self.storage.close()

    # -- running ---------------------------------------------------------------------------------
    def execute(self, progress: Progress | None = None) -> str:
        """Run until a budget is reached; returns why it stopped.

        Ctrl-C stops cleanly (pending candidates are re-evaluated on resume) and raises
        KeyboardInterrupt after the state is saved; errors the user must fix propagate as
        ``CladeforgeError`` after the state is saved.
        """
        with self._lock():
            budget = Budget(self.config.budget, self.storage.get_meta("elapsed", 0.0))
            budget.start()
            self.storage.set_meta({"state": "running", "stop_reason": None})
            state, reason = "stopped", "interrupted"
            # the loaded archive lives as long as the run: keep it out of GC passes, which
            # would otherwise rescan it (seconds at 100k candidates) every few hundred children
            gc.freeze()
            try:
                reason = asyncio.run(self._execute(budget, progress or (lambda _e, _b: None)))
                state = "finished"
                return reason
            except KeyboardInterrupt:
                reason = "interrupted by Ctrl-C"
                raise
            except CladeforgeError as exc:
                reason = str(exc)
                raise
            finally:
                self.storage.set_meta({"state": state, "stop_reason": reason,
                                       "elapsed": budget.elapsed()})

    async def _execute(self, budget: Budget, progress: Progress) -> str:
        async with open_loop(self.config, self.storage, self.directory, budget,
                             progress=progress) as loop:
            drive = (loop.generational if self.config.evolution.mode == "generational"
                     else loop.steady_state)
            return await within_wall_time(budget, drive())

    def _lock(self) -> _RunLock:
        return _RunLock(self.directory / LOCK_FILE)

    def is_running(self) -> bool:
        """True while some process executes this run (it holds the run's lock)."""
        return _RunLock(self.directory / LOCK_FILE).held_elsewhere()


def _write_config_copy(directory: Path, config: RunConfig) -> None:
    """The human-readable copy of the config beside the archive (the archive is the truth)."""
    (directory / CONFIG_COPY).write_text(yaml.safe_dump(config_to_data(config),
                                                        sort_keys=False))


class _RunLock:
    """An exclusive ``flock`` on the run directory; released by the OS if the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def __enter__(self) -> _RunLock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise RunStateError(
                f"{self.path.parent} is being run by another process; wait for it or stop "
                f"it first") from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, str(os.getpid()).encode())
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def held_elsewhere(self) -> bool:
        if not self.path.exists():
            return False
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False
