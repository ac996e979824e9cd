"""The run's random streams: one generator per decision, keyed by what it decides.

Every random choice of a run (which parents, which operator, which training
examples, the seeds of LLM requests) is drawn from a generator derived from
the run seed and a fixed key, e.g. ``(CHILD, slot)``; so a resumed run makes
exactly the same choices without any saved generator state.

Two derivations exist, and the archive records which one a run uses
(``meta["rng"]["scheme"]``), so a run keeps its streams for its whole life,
forks included:

- ``blake2b`` (the default for new runs): a PCG64 whose 256-bit seed is the
  blake2b hash of the seed and the key; cheap, since a run derives several
  generators per candidate (figures in docs/performance.md).
- ``SeedSequence``: ``np.random.default_rng(SeedSequence(seed, spawn_key=key))``,
  kept so that runs recorded with it replay their choices exactly.
"""

from __future__ import annotations

import hashlib

import numpy as np
from numpy.random.bit_generator import ISpawnableSeedSequence

from ._errors import RunStateError

BLAKE2B = "blake2b(seed, key) -> PCG64"
SEED_SEQUENCE = "SeedSequence(seed, key)"
SCHEMES = (BLAKE2B, SEED_SEQUENCE)
DEFAULT_SCHEME = BLAKE2B

# the first element of a key: what the generator decides
SELECT, CHILD, BATCH, INIT, MONITOR, RESCORE = 1, 2, 3, 4, 5, 6


class Streams:
    """``streams(*key)`` is the generator for one decision (a new one on every call)."""

    def __init__(self, seed: int, scheme: str = DEFAULT_SCHEME) -> None:
        if scheme not in SCHEMES:
            raise RunStateError(f"unknown random-stream scheme {scheme!r} in the archive; "
                                f"this Cladeforge knows: {', '.join(SCHEMES)}")
        self.seed = int(seed)
        self.scheme = scheme

    def __repr__(self) -> str:
        return f"Streams(seed={self.seed}, scheme={self.scheme!r})"

    def __call__(self, *key: int) -> np.random.Generator:
        if self.scheme == SEED_SEQUENCE:
            seq = np.random.SeedSequence(self.seed, spawn_key=key)
            return np.random.Generator(np.random.PCG64(seq))
        text = ",".join(map(str, (self.seed, *key))).encode()
        return np.random.Generator(np.random.PCG64(_Digest(_hash(text))))


def _hash(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32, person=b"cladeforge-rng").digest()


class _Digest(ISpawnableSeedSequence):
    """A seed that is a hash already: no further mixing needed (PCG64 asks for 4 words).
    ``spawn`` gives independent children (``Generator.spawn`` uses it), as SeedSequence's
    does: the i-th child ever spawned hashes the parent's digest and i."""

    __slots__ = ("digest", "n_children_spawned")

    def __init__(self, digest: bytes) -> None:
        self.digest = digest
        self.n_children_spawned = 0

    def spawn(self, n_children: int) -> list[_Digest]:
        start = self.n_children_spawned
        self.n_children_spawned += n_children
        return [_Digest(_hash(self.digest + b"/%d" % i)) for i in range(start, start + n_children)]

    def generate_state(self, n_words: int, dtype: type = np.uint32) -> np.ndarray:
        size = np.dtype(dtype).itemsize * n_words
        if size > len(self.digest):
            raise ValueError(f"a {len(self.digest)}-byte digest cannot give {n_words} words")
        return np.frombuffer(self.digest, dtype=dtype, count=n_words).copy()
