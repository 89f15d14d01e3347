"""Every test gets its own IMAGEGEN_HOME, so job stores and ratings never leak between tests
or into the user's real home."""

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("IMAGEGEN_HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    monkeypatch.delenv("IMAGEGEN_MODELS_DIR", raising=False)
