"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    """The repository root."""
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the repository (real data sets); tests using it are skipped where it is absent."""
    path = REPO.parent / "shared"
    if not path.is_dir():
        pytest.skip("../shared (real reference data) is not available")
    return path


@pytest.fixture
def float64_default_dtype() -> Iterator[None]:
    """torch's default dtype set to float64 for the test, restored afterwards."""
    import torch

    from sciml.utils.dtype import default_dtype

    with default_dtype(torch.float64):
        yield


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
