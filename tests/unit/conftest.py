"""Fixtures shared by the unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runhelp import make_base_run


@pytest.fixture(scope="session")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real run (a golden journal and a status document, compacted; one more
    status sample and two events in segments). Copy it before damaging it."""
    return make_base_run(tmp_path_factory.mktemp("base") / "run")
