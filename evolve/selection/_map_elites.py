"""MAP-Elites: one elite per cell of a grid of behaviour descriptors, parents drawn among them.

Every evaluated candidate (alive or retired) falls into one cell, a tuple of one bin per
descriptor. A cell's owner (its elite) is its candidate with the best training score; an
owner is replaced only by a strictly better one, and on equal scores the lower id keeps the
cell. The owner of a cell is therefore the maximum of (score, -id) over its candidates: the
grid is a pure function of the archive, the same whatever order candidates arrive in, and
a resumed or forked run rebuilds it exactly from its archive. Nothing about the grid is
stored apart from the candidates themselves (the grid *is* derived from the archive).

A parent is drawn among the cell owners, uniformly (``weighting="uniform"``, MAP-Elites'
rule) or with probability proportional to its score rank among the owners (``"rank"``:
the worst owner has weight 1, the best the number of owners, ties share their mean rank).
Parents are drawn with replacement; nothing is retired, and busy candidates may be parents.

Descriptors (option ``descriptors``, in the order of the cell's tuple):

- ``length``: the genome text's length in characters;
- ``seed_distance``: Jaccard distance in [0, 1] between the sets of UTF-8 byte 3-grams of
  the genome text and of its root ancestor's (following first parents up to a founder):
  a linear-time proxy of a normalised edit distance (0: same text, 1: nothing shared);
- ``solved``: the set of training examples the candidate solved (score >=
  ``solved_threshold``), hashed (BLAKE2b of the sorted ids) into ``solved_bins`` bins.
  Candidates scored on different training batches have different sets by construction;
- ``embedding``: a locality-sensitive hash of the genome text, computed without a model:
  byte 3-gram counts hashed into 1024 buckets, projected on ``embedding_bits`` fixed
  random ±1 hyperplanes (SimHash, Charikar 2002), one bit per sign: ``2**embedding_bits``
  clusters of similar texts;
- any other name: that numeric key of the candidate's own ``descriptors`` mapping (e.g. an
  evaluator's metric); a candidate without a finite number there falls in bin -1.

The genome text is a prompt genome's task prompts and context, one per line (as the
diversity monitor measures them). A code genome's record holds only its commit id and
mutation prompt, not the program (the files live in the run's git repository, which a
selector does not read), so a run records the program's ``length``, ``seed_distance`` and
``embedding`` (a 16-bit SimHash; fewer bits are its low bits) on each code candidate when
it is made (``Species.text_descriptors``), and those recorded numbers are used. A code
record without them (made outside a run) is described by its mutation prompt, or by its
files' texts if the genome records them under ``files``.

Bins never move. A number falls in bin ``i`` of its descriptor's ascending ``edges`` when
``edges[i-1] <= value < edges[i]`` (bin 0 below the first edge, bin ``len(edges)`` from
the last one on). Edges are fixed options, never quantiles or the range of the archive:
bins that follow the archive move candidates between cells as it grows, so owners would
change retroactively and a resumed run could not rebuild the grid (OpenEvolve's MAP-Elites
met binning and replacement problems of this kind: algorithmicsuperintelligence/openevolve,
formerly codelion/openevolve, issues #147, #150, #454). Fixed edges must suit the run:
``length`` defaults to 50, 100, 200, ... 3200 characters (8 bins, doubling), so longer
genomes all share the last bin; ``seed_distance`` to 0.1, 0.2, ... 0.9 (10 bins); a
descriptor from the candidate's mapping needs its edges given.

The grid is kept in step with the archive through its change log (``changed_since``):
after every candidate only the changed ids are placed, and per-candidate features that
cannot change (text, founder, own descriptors) are computed once. The kept grid equals
one rebuilt from scratch (the tests check it).

References: Mouret & Clune 2015, "Illuminating search spaces by mapping elites"
(arXiv:1504.04909); OpenEvolve (codelion/openevolve), AlphaEvolve's open reimplementation,
for MAP-Elites over LLM-written programs.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from archive import ArchiveIndex, Candidate

from .._errors import SelectionError
from .._schema import doc
from .._text import gram_codes, gram_distance, gram_set, prompt_text, simhash
from ._base import Selection, Selector, weighted_draw

BUILT_IN = ("length", "seed_distance", "solved", "embedding")
TEXT_DESCRIPTORS = frozenset({"length", "seed_distance", "embedding"})
DEFAULT_EDGES: Mapping[str, tuple[float, ...]] = MappingProxyType({
    "length": (50.0, 100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0),
    "seed_distance": (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
})
MISSING = -1  # the bin of a candidate without the descriptor's number
WEIGHTINGS = ("uniform", "rank")


@dataclass(frozen=True)
class MapElitesSelector(Selector):
    """Parents drawn among the elites of a fixed grid of behaviour descriptors."""

    name: ClassVar[str] = "map_elites"
    descriptors: tuple[str, ...] = doc(
        "Behaviour descriptors, one grid axis each: 'length', 'seed_distance', 'solved', "
        "'embedding', or a numeric key of the candidates' own descriptors.",
        ("length", "seed_distance"))
    edges: Mapping[str, tuple[float, ...]] | None = doc(
        "Fixed ascending bin edges per descriptor (bin i: edges[i-1] <= value < edges[i]); "
        "defaults: length 50..3200 doubling, seed_distance 0.1..0.9; required for a "
        "descriptor read from the candidates' own descriptors.", None)
    solved_bins: int = doc("Bins the hashed set of solved training examples falls into.", 8)
    solved_threshold: float = doc("An example counts as solved at a score >= this.", 1.0)
    embedding_bits: int = doc("Hyperplanes of the text hash: 2**bits embedding clusters.", 3)
    weighting: str = doc("'uniform' over the cell owners, or 'rank': ∝ score rank.", "uniform")
    #: the grid kept in step with the archive (a cache, not an option)
    _kept: _KeptGrid = field(default_factory=lambda: _KeptGrid(), init=False, repr=False,
                             compare=False)

    def __post_init__(self) -> None:
        names = self.descriptors
        if isinstance(names, str) or not all(isinstance(d, str) for d in names):
            raise ValueError("descriptors must be a list of names")
        names = tuple(names)
        if not names or len(set(names)) != len(names):
            raise ValueError("descriptors must name at least one descriptor, each once")
        given = {} if self.edges is None else self.edges
        if not isinstance(given, Mapping):
            raise ValueError("edges must map descriptor names to lists of numbers")
        edges: dict[str, tuple[float, ...]] = {}
        for key, values in given.items():
            if isinstance(values, str | bytes) or not all(
                    isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                    for v in values):
                raise ValueError(f"edges of {key!r} must be a list of finite numbers")
            row = tuple(float(v) for v in values)
            if any(b <= a for a, b in zip(row, row[1:], strict=False)):
                raise ValueError(f"edges of {key!r} must be strictly ascending")
            edges[str(key)] = row
        for d in names:
            if d not in BUILT_IN and d not in edges:
                raise ValueError(f"descriptor {d!r} is read from the candidates' descriptors "
                                 f"and needs its bin edges (edges: {{{d}: [...]}}); built-in "
                                 "ones: " + ", ".join(BUILT_IN))
        if isinstance(self.solved_bins, bool) or not isinstance(self.solved_bins, int) \
                or self.solved_bins < 1:
            raise ValueError("solved_bins must be an int >= 1")
        if isinstance(self.embedding_bits, bool) or not isinstance(self.embedding_bits, int) \
                or not 1 <= self.embedding_bits <= 16:
            raise ValueError("embedding_bits must be an int from 1 to 16")
        if not math.isfinite(self.solved_threshold):
            raise ValueError("solved_threshold must be finite")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}, "
                             f"not {self.weighting!r}")
        object.__setattr__(self, "descriptors", names)
        object.__setattr__(self, "edges", MappingProxyType(edges))

    def bin_edges(self, descriptor: str) -> tuple[float, ...]:
        """The fixed edges of a numeric descriptor (``solved`` and ``embedding`` have none)."""
        return (self.edges or {}).get(descriptor, DEFAULT_EDGES.get(descriptor, ()))

    def cell(self, view: ArchiveIndex, candidate: Candidate) -> tuple[int, ...]:
        """The cell of ``candidate``, computed from scratch (no kept features)."""
        return _Features().cell(self, view, candidate)

    def grid(self, view: ArchiveIndex) -> dict[tuple[int, ...], int]:
        """``{cell: owner id}`` of every occupied cell."""
        return {cell: cid for cell, (_, cid) in self._kept.current(self, view).items()}

    def select(self, view: ArchiveIndex, rng: np.random.Generator, n: int,
               busy: AbstractSet[int] = frozenset()) -> list[Selection]:
        """``n`` parents drawn with replacement among the cell owners (busy ones included:
        nothing is retired). Raises ``SelectionError`` when no candidate is evaluated."""
        if n <= 0:
            return []
        owners = self._kept.owner_ids(self, view)
        if not len(owners):
            raise SelectionError("the MAP-Elites grid is empty: no evaluated candidate to "
                                 "select a parent from (every candidate is pending, failed "
                                 "or invalid)")
        if self.weighting == "uniform":
            picks = rng.integers(len(owners), size=n)
        else:
            picks = weighted_draw(_mean_ranks(view.fitness_of(owners)), rng.random(n))
        return [Selection(parent=int(owners[i])) for i in picks.tolist()]


def genome_text(genome: Mapping[str, Any]) -> str:
    """The text the text descriptors measure: a prompt genome's task prompts and context,
    one per line; a genome's ``files`` texts (path, then text, by path) if it records
    them; otherwise its mutation prompt (all a code genome's dict holds besides a commit)."""
    text = prompt_text(genome)
    if text is not None:
        return text
    files = genome.get("files")
    if isinstance(files, Mapping):
        return "\n".join(f"{path}\n{text}" for path, text in sorted(files.items()))
    return str(genome.get("mutation_prompt", ""))


def jaccard_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - |A ∩ B| / |A ∪ B| of two sorted arrays of distinct codes (0 when both are empty)."""
    shared = len(np.intersect1d(a, b, assume_unique=True))
    union = len(a) + len(b) - shared
    return 0.0 if union == 0 else 1.0 - shared / union


def solved_bin(candidate: Candidate, threshold: float, bins: int) -> int:
    """The bin of the set of training examples ``candidate`` solved."""
    train = candidate.scores.get("train")
    solved = sorted({e.example_id for e in (train.examples if train else ())
                     if e.score >= threshold})
    digest = hashlib.blake2b("\x00".join(solved).encode("utf-8", "replace"),
                             digest_size=8).digest()
    return int.from_bytes(digest, "big") % bins


def _number(value: Any) -> bool:
    """Whether ``value`` is a finite int or float (not a bool)."""
    return (not isinstance(value, bool) and isinstance(value, int | float)
            and math.isfinite(value))


def _binned(value: Any, edges: tuple[float, ...]) -> int:
    return bisect.bisect_right(edges, value) if _number(value) else MISSING


def _mean_ranks(scores: np.ndarray) -> np.ndarray:
    """Each score's rank, 1 for the lowest, ties sharing their mean rank."""
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((2 * ends - counts + 1) / 2.0)[inverse]


class _Features:
    """The bins of each candidate that cannot change once it is written (its genome text,
    its founder, its own descriptors), computed once per id; the score-dependent bin
    (``solved``) is worked out on each placement."""

    def __init__(self) -> None:
        self.fixed: dict[int, tuple[int, ...]] = {}  # id -> bins (``solved``: MISSING)
        self.roots: dict[int, int] = {}  # id -> its first-parent root
        self.root_grams: dict[int, frozenset[bytes]] = {}

    def cell(self, selector: MapElitesSelector, view: ArchiveIndex,
             candidate: Candidate) -> tuple[int, ...]:
        fixed = self.fixed.get(candidate.id)
        if fixed is None:
            fixed = self.fixed[candidate.id] = self._fixed(selector, view, candidate)
        if "solved" not in selector.descriptors:
            return fixed
        return tuple(
            solved_bin(candidate, selector.solved_threshold, selector.solved_bins)
            if name == "solved" else b for name, b in zip(selector.descriptors, fixed,
                                                            strict=True))

    def _fixed(self, selector: MapElitesSelector, view: ArchiveIndex,
               candidate: Candidate) -> tuple[int, ...]:
        recorded = candidate.descriptors
        text: str | None = None
        bins = []
        for name in selector.descriptors:
            if name == "solved":
                bins.append(MISSING)
                continue
            value = recorded.get(name)
            if name in TEXT_DESCRIPTORS and not _number(value):
                # not recorded when the candidate was made: read its genome's text
                if text is None:
                    text = genome_text(candidate.genome)
                value = self._from_text(name, text, selector, view, candidate)
            if name == "embedding":
                bins.append(int(value) & ((1 << selector.embedding_bits) - 1))
            else:
                bins.append(_binned(value, selector.bin_edges(name)))
        return tuple(bins)

    def _from_text(self, name: str, text: str, selector: MapElitesSelector,
                   view: ArchiveIndex, candidate: Candidate) -> float:
        if name == "length":
            return len(text)
        if name == "seed_distance":
            root = self.root(view, candidate.id)
            return 0.0 if root == candidate.id else gram_distance(
                gram_set(text), self._root_grams(view, root))
        return simhash(gram_codes(text), selector.embedding_bits)

    def _root_grams(self, view: ArchiveIndex, root: int) -> frozenset[bytes]:
        grams = self.root_grams.get(root)
        if grams is None:
            grams = self.root_grams[root] = gram_set(genome_text(view.get(root).genome))
        return grams

    def root(self, view: ArchiveIndex, cid: int) -> int:
        """The founder reached from ``cid`` through first parents (stopping at a parent
        that is not in the archive)."""
        path: list[int] = []
        current = cid
        while current not in self.roots:
            path.append(current)
            parents = view.get(current).parent_ids
            if not parents or parents[0] not in view or parents[0] in path:
                self.roots[current] = current
                break
            current = parents[0]
        root = self.roots[current]
        for i in path:
            self.roots[i] = root
        return root


class _KeptGrid:
    """The grid, kept in step with one view through its change log: each selection places
    the ids that changed since the last one. An id that leaves the evaluated set or
    changes its training score (never in a normal run; a guest leaving an island's view)
    is taken out of its cell, whose owner is then found again among the cell's members.
    Rebuilt from scratch (reusing the fixed features) when the log does not reach back."""

    def __init__(self) -> None:
        self.view: Any = None
        self.mark = -1
        self.features = _Features()
        self.owners: dict[tuple[int, ...], tuple[float, int]] = {}  # cell -> (score, id)
        self.members: dict[tuple[int, ...], set[int]] = {}  # cell -> its ids
        self.placed: dict[int, tuple[float, Any, tuple[int, ...]]] = {}  # id -> (score,
        # its train SplitScore, its cell)
        self.sorted_owners: np.ndarray | None = None  # None: stale

    def current(self, selector: MapElitesSelector,
                view: ArchiveIndex) -> dict[tuple[int, ...], tuple[float, int]]:
        same = self.view is view
        if not same:
            self.features = _Features()  # another archive: ids may name other candidates
        mark, changed = view.changed_since(self.mark if same else -1)
        self.view = view
        if changed is None:
            self._rebuild(selector, view)
        elif changed:
            ids = np.fromiter(dict.fromkeys(changed), dtype=np.intp)
            for cid, score in zip(ids.tolist(), view.fitness_of(ids).tolist(), strict=True):
                self._update(selector, view, cid, score)
        self.mark = mark
        return self.owners

    def owner_ids(self, selector: MapElitesSelector, view: ArchiveIndex) -> np.ndarray:
        """The owners' ids, ascending."""
        self.current(selector, view)
        if self.sorted_owners is None:
            self.sorted_owners = np.array(sorted(cid for _, cid in self.owners.values()),
                                          dtype=np.intp)
        return self.sorted_owners

    def _rebuild(self, selector: MapElitesSelector, view: ArchiveIndex) -> None:
        self.owners, self.members, self.placed, self.sorted_owners = {}, {}, {}, None
        fitness = view.fitness_array()
        for cid in np.flatnonzero(~np.isnan(fitness)).tolist():
            self._place(selector, view, view.get(cid), float(fitness[cid]))

    def _update(self, selector: MapElitesSelector, view: ArchiveIndex, cid: int,
                score: float) -> None:
        placed = self.placed.get(cid)
        if placed is not None:
            if score == placed[0] and view.get(cid).scores.get("train") == placed[1]:
                return  # e.g. a child was added to it: nothing the grid sees
            self._remove(cid)  # NaN != anything: it left the evaluated set
        if not math.isnan(score):
            self._place(selector, view, view.get(cid), score)

    def _place(self, selector: MapElitesSelector, view: ArchiveIndex, candidate: Candidate,
               score: float) -> None:
        cell = self.features.cell(selector, view, candidate)
        cid = candidate.id
        self.placed[cid] = (score, candidate.scores.get("train"), cell)
        self.members.setdefault(cell, set()).add(cid)
        owner = self.owners.get(cell)
        if owner is None or score > owner[0] or (score == owner[0] and cid < owner[1]):
            self.owners[cell] = (score, cid)
            self.sorted_owners = None

    def _remove(self, cid: int) -> None:
        _, _, cell = self.placed.pop(cid)
        members = self.members[cell]
        members.discard(cid)
        if self.owners[cell][1] != cid:
            return
        self.sorted_owners = None
        if not members:
            del self.owners[cell], self.members[cell]
            return
        best = max(members, key=lambda i: (self.placed[i][0], -i))
        self.owners[cell] = (self.placed[best][0], best)
