"""The collapse monitor: a reading of the population's diversity after each generation.

Before each reading the loop scores the living population's best candidates
(``probe_members``) that have no probe score yet (``to_probe``) on the fixed probe set
(the first ``probe_size`` examples of the train split; recorded as split ``probe``, once
per candidate), then ``record`` takes ``_diversity.snapshot`` of the archive: pass@k
across the population on the probe set, live clades, the depth of the top candidates'
common ancestor, mean genome distance, the entropy of the solved-example sets. The
readings are kept in the run's metadata under ``collapse`` (``evolve report`` draws
them), and the engine's
``collapse_warning`` (shown in the progress line) says when the last ``window``
readings show the collapse signature: pass@1 rising while the largest k's pass@k falls.
"""

from __future__ import annotations

from typing import Any

from archive import Candidate
from fitness import Example

from ._config import DiversityConfig
from ._diversity import COLLAPSE_KEY, collapse_signature, snapshot
from ._engine import Engine
from ._streams import MONITOR

#: the split the probe scores are recorded under
PROBE_SPLIT = "probe"


class CollapseMonitor:
    """Takes readings for one execution of a run; keeps no state of its own that the
    archive does not hold."""

    def __init__(self, engine: Engine, config: DiversityConfig) -> None:
        self.engine = engine
        self.config = config

    @property
    def enabled(self) -> bool:
        return self.config.probe_size > 0

    def to_probe(self) -> tuple[list[Candidate], list[Example]]:
        """The best living candidates without a probe score, and the probe set."""
        index = self.engine.storage.index
        examples = list(self.engine.species.split("train"))[: self.config.probe_size]
        living = set(index.population_ids().tolist())
        best = [c for c in index.top(4 * self.config.probe_members)
                if c.id in living][: self.config.probe_members]
        return [c for c in best if PROBE_SPLIT not in c.scores], examples

    def record(self, generation: int) -> dict[str, Any]:
        """Take a reading of the archive as it is (after ``to_probe``'s candidates were
        scored), keep it in the run's metadata and return it. An archive that has not
        changed since the last reading (a resumed run) gets no second one."""
        engine = self.engine
        index = engine.storage.index
        history = self.history()
        if history and (history[-1]["generation"], history[-1]["candidates"]) == (
                generation, len(index)):
            engine.collapse_warning = collapse_signature(history, self.config.window)
            return history[-1]
        reading = snapshot(index, generation=generation, candidates=len(index),
                           probe_split=PROBE_SPLIT, ks=self.config.ks,
                           threshold=self.config.pass_threshold,
                           rng=engine.streams(MONITOR, generation),
                           genome_text=engine.species.genome_text)
        history.append(reading)
        engine.storage.set_meta({COLLAPSE_KEY: history})
        engine.collapse_warning = collapse_signature(history, self.config.window)
        return reading

    def history(self) -> list[dict[str, Any]]:
        return list(self.engine.storage.get_meta(COLLAPSE_KEY) or [])

