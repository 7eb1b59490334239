"""Shared fixtures: the test-model corpus and an isolated translation cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._canonical import find_test_models


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Keep translations out of the user's home cache during tests.
    import os

    os.environ.setdefault("SD_MODEL_CACHE", str(tmp_path_factory.mktemp("sd_model_cache")))


@pytest.fixture(scope="session")
def corpus() -> Path:
    root = find_test_models()
    if root is None:
        pytest.skip("../shared/test-models is not on this machine")
    return root
