"""Every test gets its own IMAGEGEN_HOME, so job stores and ratings never leak between tests
or into the user's real home."""

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("IMAGEGEN_HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    monkeypatch.delenv("IMAGEGEN_MODELS_DIR", raising=False)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run faster single-threaded, and the machine is shared (local-model tests
    use it with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """The tiny random-weight SD models of `tests.local_fixtures`, built once per session."""
    from tests.local_fixtures import tiny_models

    return tiny_models(tmp_path_factory)


@pytest.fixture(scope="session")
def flow():
    """The tiny random-weight FLUX.1 / FLUX.2 [klein] / SD3 models of `tests.local_flow_fixtures`
    (built once, cached on disk)."""
    from tests.local_flow_fixtures import build_flow_models

    return build_flow_models()
