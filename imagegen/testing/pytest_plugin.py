"""A pytest fixture for projects testing Replicate code against ``FakeReplicate``.

Enable it with ``pytest_plugins = ["imagegen.testing.pytest_plugin"]`` in ``conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from imagegen.testing._fake import FakeReplicate


@pytest.fixture
def fake_replicate(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeReplicate]:
    """A running emulator; ``REPLICATE_API_TOKEN``/``REPLICATE_BASE_URL`` point at it."""
    with FakeReplicate() as fake:
        for name, value in fake.env().items():
            monkeypatch.setenv(name, value)
        yield fake
