"""Shared fixtures: the test-model corpus and an isolated translation cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._canonical import find_test_models


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Keep translations out of the user's home cache during tests. The xdist workers of
    # one run share the folder (their basetemps are siblings), so a model translated or a
    # numba kernel compiled by one worker is not done again by the other; every write to
    # the cache is atomic (a rename), which makes that safe.
    import os

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder = root / "sd_model_cache"
    folder.mkdir(exist_ok=True)
    os.environ.setdefault("SD_MODEL_CACHE", str(folder))


@pytest.fixture(scope="session")
def corpus() -> Path:
    root = find_test_models()
    if root is None:
        pytest.skip("../shared/test-models is not on this machine")
    return root
