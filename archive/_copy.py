"""Copying an archive, whole or up to a candidate (``evolve fork RUN --at N``)."""

from __future__ import annotations

from dataclasses import replace

from ._errors import ArchiveError
from ._storage import ArchiveStorage


def copy_archive(src: ArchiveStorage, dst: ArchiveStorage, upto_id: int | None = None) -> None:
    """Copy ``src`` into the empty ``dst``: all metadata, the candidates with
    ``id <= upto_id`` (all when None) with their scores, and the whole LLM cache.

    A copied candidate retired by a candidate that is not copied is alive again
    in ``dst`` (``retired_by`` reset to None). Raises ``ArchiveError`` if ``dst``
    already holds candidates.
    """
    if len(dst) or dst.cache_size():
        raise ArchiveError("copy_archive needs an empty destination archive")
    dst.set_meta(src.meta_items())
    for candidate in src.index.candidates():
        if upto_id is not None and candidate.id > upto_id:
            break
        if upto_id is not None and candidate.retired_by is not None \
                and candidate.retired_by > upto_id:
            candidate = replace(candidate, retired_by=None)
        dst.import_candidate(candidate)
    for key, request, response in src.cache_items():
        dst.cache_put(key, request, response)
