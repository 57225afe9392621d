"""The engine's unit tests run on fakes (``tests/fakes.py``): no socket, no broker."""

from __future__ import annotations

import pytest

from tests.fakes import FakeSender


@pytest.fixture
def fake() -> FakeSender:
    """A sender that answers every request at once (2.04 unless told otherwise), window 1."""
    return FakeSender()
