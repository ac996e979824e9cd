"""Runs the archive storage conformance suite on every storage implementation."""

from pathlib import Path

import pytest

from .conformance import STORAGE_FACTORIES, StorageConformance, StorageFactory


@pytest.fixture(params=sorted(STORAGE_FACTORIES))
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> StorageFactory:
    return STORAGE_FACTORIES[request.param](tmp_path)


class TestStorageConformance(StorageConformance):
    pass
