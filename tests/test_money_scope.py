"""Failures that are the provider's (unreachable API, refused token) say so, with the URL, and
fail over to another provider instead of trying every sibling model; bad settings are refused
when they are read."""

from __future__ import annotations

import socket
import time

import pytest
from imagegen.providers.base import BaseProvider
from imagegen.providers.replicate import CallPolicy, ReplicateProvider
from PIL import Image
from pydantic import ValidationError

from imagegen import GeneratedImage, GenerateResult, ImageGen, ModelCard, NoRouteError, Price, ProviderError
from imagegen.catalog import Capabilities
from imagegen.request import GenerateRequest
from imagegen.router import RoutePolicy
from imagegen.settings import Settings
from imagegen.testing import FakeReplicate

FAST = dict(poll_initial_s=0.02, get_backoff_s=0.01, reconcile_delay_s=0.01, commit_timeout_s=0.2)
SCHNELL = "replicate:black-forest-labs/flux-schnell"


class Backup(BaseProvider):
    """Another provider, dearer than every Replicate model, so the router tries it last."""

    name = "backup"

    def __init__(self):
        super().__init__()
        self.card = ModelCard(id="backup:model", provider="backup", price=Price(per_image=5.0),
                              latency_s=1.0, capabilities=Capabilities(max_images_per_call=4))
        self.calls = 0

    def models(self):
        return [self.card]

    def generate(self, prepared, *, progress=None):
        self.calls += 1
        image = GeneratedImage.from_pil(Image.new("RGB", (8, 8)), seed=prepared.request.seed)
        return GenerateResult(images=[image], cost_usd=5.0)

    async def agenerate(self, prepared, *, progress=None):
        return self.generate(prepared)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed when the block ends: connections are refused


def replicate(base_url: str, token: str = "r8_wrong") -> ReplicateProvider:
    settings = Settings(replicate_api_token=token, replicate_base_url=base_url)
    return ReplicateProvider(settings, policy=CallPolicy(**FAST))


def test_connection_refused_is_named_with_the_url():
    base = f"http://127.0.0.1:{closed_port()}"
    with ImageGen(providers=[replicate(base)]) as gen, pytest.raises(NoRouteError) as failed:
        gen.generate(GenerateRequest(prompt="a fox", seed=1, model=SCHNELL))
    message = str(failed.value)
    assert "connection refused" in message and base in message and "nothing was created" in message


def test_an_unreachable_provider_fails_over_to_another_provider_not_its_siblings():
    base = f"http://127.0.0.1:{closed_port()}"
    backup = Backup()
    started = time.monotonic()
    with ImageGen(providers=[replicate(base), backup]) as gen:
        result = gen.generate("a fox", seed=1, policy=RoutePolicy(strategy="cost", max_attempts=10))
    assert result.model == "backup:model" and backup.calls == 1
    fell_back = [w for w in result.warnings if w.startswith("fell back after replicate:")]
    assert len(fell_back) == 1 and "connection refused" in fell_back[0]
    assert time.monotonic() - started < 5.0


def test_a_refused_token_is_one_401_then_another_provider():
    with FakeReplicate() as fake:
        backup = Backup()
        with ImageGen(providers=[replicate(fake.base_url, token="r8_not_it"), backup]) as gen:
            result = gen.generate("a fox", seed=1, policy=RoutePolicy(strategy="cost", max_attempts=10))
        creates = [r for r in fake.requests if r.method == "POST"]
    assert result.model == "backup:model"
    assert len(creates) == 1  # not one per Replicate model
    (warning,) = [w for w in result.warnings if w.startswith("fell back after replicate:")]
    assert "HTTP 401" in warning and "REPLICATE_API_TOKEN" in warning and "r8_not_it" not in warning


def test_model_scope_failures_still_try_siblings():
    error = ProviderError("the model is cold", provider="replicate", status=503)
    assert error.scope == "model"
    with pytest.raises(ValueError):
        ProviderError("x", scope="everything")


@pytest.mark.parametrize("url", ["api.replicate.com", "127.0.0.1:8000", "ftp://x", "https://", ""])
def test_a_base_url_without_scheme_or_host_is_refused_at_settings_time(url, monkeypatch):
    with pytest.raises(ValidationError, match="REPLICATE_BASE_URL"):
        Settings(replicate_base_url=url)
    monkeypatch.setenv("REPLICATE_BASE_URL", url)
    with pytest.raises(ValidationError, match="REPLICATE_BASE_URL"):
        Settings()


def test_a_base_url_with_credentials_is_refused_without_echoing_them():
    with pytest.raises(ValidationError) as failed:
        Settings(replicate_base_url="https://me:r8_secret@api.replicate.com")
    assert "r8_secret" not in str(failed.value)
    assert Settings(replicate_base_url="http://127.0.0.1:9/").replicate_base_url == "http://127.0.0.1:9"
