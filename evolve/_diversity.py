"""The collapse monitor's metrics: is the population converging on one idea?

A population can grow better on average while it loses the variety that let it
solve rare examples: pass@1 (one candidate drawn at random) rises while pass@k
for large k (any of k candidates) falls. These pure functions (no I/O; they
read an ``ArchiveIndex`` and candidate records) measure that, plus lineage and
genome diversity, as one JSON-able ``snapshot`` per generation; the run keeps
the snapshots in its metadata and ``collapse_signature`` reads them back.

Definitions, used throughout:

- *living*: alive and evaluated (``view.population_ids()``);
- *pass*: an example's score is ``>= threshold``;
- *roots* (founders): candidates none of whose parents is in the archive;
- *depth*: first-parent steps from a candidate up to its root (``view.descent``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from archive import ArchiveIndex, Candidate

from ._text import gram_distance, gram_set, prompt_text

#: the k of pass@k a snapshot reports by default
#: the run-metadata key of the collapse monitor's readings (a list, oldest first)
COLLAPSE_KEY = "collapse"
DEFAULT_KS = (1, 2, 4, 8, 16, 32)


# -- pass@k ---------------------------------------------------------------------------------
def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimator of Chen et al. 2021 (HumanEval): the probability
    that at least one of ``k`` samples drawn without replacement from ``n``, of which
    ``c`` pass, passes: ``1 - C(n-c, k) / C(n, k)``.

    Computed as ``1 - prod_{i=n-c+1..n} (1 - k/i)`` in log space (``log1p``, ``expm1``)
    so that it neither overflows for large ``n`` nor loses small values. Raises
    ValueError unless ``0 <= c <= n`` and ``1 <= k <= n``.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:  # every k-subset holds a pass
        return 1.0
    return -math.expm1(math.fsum(math.log1p(-k / i) for i in range(n - c + 1, n + 1)))


def population_pass_at_k(candidates: Iterable[Candidate], split: str, ks: Iterable[int],
                         threshold: float = 1.0) -> dict[int, float | None]:
    """pass@k of a population: the chance that ``k`` candidates drawn at random, without
    replacement, solve an example between them, averaged over the examples of ``split``.

    For each example scored on ``split`` by any of ``candidates``: ``n`` is how many of
    them were scored on it, ``c`` how many passed (score ``>= threshold``; an example
    listed twice for one candidate counts once, passed if either passed). The value for
    ``k`` is the mean of ``pass_at_k(n, c, k)`` over the examples with ``n >= k``: an
    example seen by fewer than ``k`` candidates cannot be drawn ``k`` times and is left
    out (on a probe set every living candidate sees every example, so this leaves out
    all or none). ``None`` when no example has ``n >= k``.
    """
    tally: dict[str, list[int]] = {}  # example id -> [n, c]
    for candidate in candidates:
        score = candidate.scores.get(split)
        if score is None:
            continue
        passed: dict[str, bool] = {}
        for e in score.examples:
            passed[e.example_id] = passed.get(e.example_id, False) or e.score >= threshold
        for example_id, ok in passed.items():
            counts = tally.setdefault(example_id, [0, 0])
            counts[0] += 1
            counts[1] += ok
    result: dict[int, float | None] = {}
    for k in ks:
        values = [pass_at_k(n, c, k) for n, c in tally.values() if n >= k]
        result[int(k)] = math.fsum(values) / len(values) if values else None
    return result


# -- lineage --------------------------------------------------------------------------------
def _ancestry(view: ArchiveIndex, ids: Iterable[int]) -> set[int]:
    """``ids`` and all their ancestors in the archive, through every parent edge."""
    seen: set[int] = set()
    stack = [i for i in ids if i in view]
    while stack:
        cid = stack.pop()
        if cid in seen:
            continue
        seen.add(cid)
        stack.extend(p for p in view.get(cid).parent_ids if p in view and p not in seen)
    return seen


def _is_root(view: ArchiveIndex, cid: int) -> bool:
    return not any(p in view for p in view.get(cid).parent_ids)


def living_ids(view: ArchiveIndex) -> list[int]:
    """The living candidates' ids (alive and evaluated), ascending."""
    return [int(i) for i in view.population_ids()]


def live_clades(view: ArchiveIndex) -> int:
    """How many roots (founders) have a living member in their subtree, following every
    parent edge (a merge belongs to the clades of both its parents). A living root counts
    its own clade."""
    return sum(_is_root(view, cid) for cid in _ancestry(view, living_ids(view)))


def depth(view: ArchiveIndex, candidate_id: int) -> int:
    """First-parent steps from the candidate up to its root (a root has depth 0)."""
    return len(view.descent(candidate_id)) - 1


def top_living(view: ArchiveIndex, m: int) -> list[int]:
    """The ids of the ``m`` best living candidates by training fitness (ties: lowest id)."""
    ids = view.population_ids()
    if m <= 0 or not len(ids):
        return []
    fitness = view.fitness_of(ids)
    order = np.lexsort((ids, -fitness))
    return [int(i) for i in ids[order][:m]]


def most_recent_common_ancestor(view: ArchiveIndex, ids: Sequence[int]) -> int | None:
    """The most recent common ancestor of ``ids`` (each counts as its own ancestor,
    through every parent edge): the one created last, i.e. the highest id, since a child
    always has a higher id than its parents. No other common ancestor descends from it.
    None when ``ids`` is empty or they share no ancestor (e.g. different founders)."""
    common: set[int] | None = None
    for cid in ids:
        ancestry = _ancestry(view, [cid])
        common = ancestry if common is None else common & ancestry
        if not common:
            return None
    return max(common) if common else None


# -- genome distance and solved sets ---------------------------------------------------------
def mean_pairwise_distance(texts: Sequence[str], rng: np.random.Generator, *,
                           max_pairs: int = 2000) -> tuple[float | None, int]:
    """(mean ``_text.text_distance`` over pairs of ``texts``, number of pairs measured): every
    pair when there are at most ``max_pairs``, else ``max_pairs`` pairs of distinct
    positions drawn uniformly with ``rng``. (None, 0) with fewer than two texts."""
    if max_pairs < 1:
        raise ValueError(f"max_pairs must be at least 1, got {max_pairs}")
    n = len(texts)
    total = n * (n - 1) // 2
    if total == 0:
        return None, 0
    grams = [gram_set(t) for t in texts]
    if total <= max_pairs:
        pairs: Iterable[tuple[int, int]] = ((i, j) for i in range(n) for j in range(i + 1, n))
        count = total
    else:
        first = rng.integers(0, n, size=max_pairs)
        second = rng.integers(0, n - 1, size=max_pairs)
        second += second >= first  # distinct from first, uniform over the others
        pairs, count = zip(first.tolist(), second.tolist(), strict=True), max_pairs

    return math.fsum(gram_distance(grams[i], grams[j]) for i, j in pairs) / count, count


def solved_set_entropy(candidates: Iterable[Candidate], split: str,
                       threshold: float = 1.0) -> float | None:
    """Shannon entropy, in bits, of which examples the candidates solve: each candidate
    scored on ``split`` contributes its set of passed example ids, and the entropy is
    that of the sets' frequencies. 0 when all solve the same examples; log2(N) when N
    candidates all solve different sets. None when no candidate is scored on ``split``.
    Meant for a fixed probe set: on training batches that differ, sets differ anyway."""
    sets = Counter(frozenset(e.example_id for e in c.scores[split].examples
                             if e.score >= threshold)
                   for c in candidates if split in c.scores)
    total = sum(sets.values())
    if not total:
        return None
    return max(0.0, -math.fsum(n / total * math.log2(n / total) for n in sets.values()))


# -- snapshots --------------------------------------------------------------------------------
def snapshot(view: ArchiveIndex, *, generation: int, candidates: int,
             probe_split: str = "probe", ks: Sequence[int] = DEFAULT_KS,
             threshold: float = 1.0, rng: np.random.Generator, top: int = 5,
             max_pairs: int = 2000,
             genome_text: Callable[[Mapping[str, Any]], str | None] = prompt_text,
             ) -> dict[str, Any]:
    """The collapse monitor's reading of the living population, as a JSON-able dict.

    ``generation`` and ``candidates`` (how many candidates the archive held) say when it
    was taken; they are recorded, not used. Keys: ``generation``, ``candidates``,
    ``population`` (living count), ``probe_split``, ``threshold``, ``probe_examples``
    (examples of the probe split seen by a living candidate), ``pass_at_k`` ({str(k):
    ``population_pass_at_k`` value or None}; string keys so that the dict survives a JSON
    round trip unchanged), ``live_clades``, ``top``, ``mrca`` (id of the most recent
    common ancestor of the ``top`` best living candidates, or None), ``mrca_depth`` (its
    ``depth``, or None), ``mean_distance`` (``mean_pairwise_distance`` of the living
    genomes whose ``genome_text`` is not None, or None), ``distance_pairs`` and
    ``solved_entropy`` (``solved_set_entropy`` on the probe split).
    """
    living = [view.get(i) for i in living_ids(view)]
    probe = [c for c in living if probe_split in c.scores]
    examples = {e.example_id for c in probe for e in c.scores[probe_split].examples}
    passes = population_pass_at_k(probe, probe_split, ks, threshold)
    mrca = most_recent_common_ancestor(view, top_living(view, top))
    texts = [t for t in (genome_text(c.genome) for c in living) if t is not None]
    distance, pairs = mean_pairwise_distance(texts, rng, max_pairs=max_pairs)
    return {
        "generation": int(generation),
        "candidates": int(candidates),
        "population": len(living),
        "probe_split": probe_split,
        "threshold": float(threshold),
        "probe_examples": len(examples),
        "pass_at_k": {str(k): v for k, v in passes.items()},
        "live_clades": live_clades(view),
        "top": int(top),
        "mrca": mrca,
        "mrca_depth": None if mrca is None else depth(view, mrca),
        "mean_distance": distance,
        "distance_pairs": pairs,
        "solved_entropy": solved_set_entropy(probe, probe_split, threshold),
    }


def _slope(values: Sequence[float]) -> float:
    """Least-squares slope of ``values`` against their positions 0, 1, 2, ..."""
    x = np.arange(len(values), dtype=float)
    y = np.asarray(values, dtype=float)
    x -= x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())


def collapse_signature(history: Sequence[Mapping[str, Any]], window: int = 5, *,
                       tolerance: float = 0.005) -> str | None:
    """A one-line warning when the last ``window`` snapshots show the collapse signature,
    else None: pass@1 *rose* while pass@K *fell*, K the largest k (> 1) with a value in
    each of those snapshots.

    A series *rose* when its least-squares slope against the snapshot position (0, 1, ...)
    is above ``tolerance`` (pass@k per snapshot), and *fell* when it is below
    ``-tolerance``. None with fewer than ``window`` snapshots; ``window`` must be >= 2.
    """
    if window < 2:
        raise ValueError(f"collapse_signature needs a window of at least 2, got {window}")
    if len(history) < window:
        return None
    recent = history[-window:]
    series: dict[int, list[float]] = {}
    for k_text in recent[0].get("pass_at_k", {}):
        values = [s.get("pass_at_k", {}).get(k_text) for s in recent]
        if all(v is not None for v in values):
            series[int(k_text)] = [float(v) for v in values]
    if 1 not in series or max(series) <= 1:
        return None
    big = max(series)
    rise, fall = _slope(series[1]), _slope(series[big])
    if rise <= tolerance or fall >= -tolerance:
        return None
    first, last = recent[0].get("generation"), recent[-1].get("generation")
    return (f"diversity collapse: pass@1 rose ({rise:+.3f} per snapshot) while pass@{big} "
            f"fell ({fall:+.3f} per snapshot) over the last {window} snapshots "
            f"(generations {first}-{last})")
