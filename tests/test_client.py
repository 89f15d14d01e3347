"""ImageGen end to end with a test provider: dispatch, routing, async, budget, secrets, plugins."""

import asyncio
import subprocess
import sys
import textwrap

import pytest
from imagegen.providers.base import BaseProvider, Prepared, check_capabilities
from PIL import Image

from imagegen import (
    BudgetExceededError,
    ConfigError,
    GeneratedImage,
    GenerateRequest,
    GenerateResult,
    ImageGen,
    ModelCard,
    NoRouteError,
    Price,
    ProviderError,
)
from imagegen.catalog import Capabilities


class PaintProvider(BaseProvider):
    """Paints one flat colour per image; records every call."""

    def __init__(self, name="paint", price=0.01, fail=0, lora=False, settings=None):
        super().__init__(settings)
        self.name = name
        self.price = price
        self.fail = fail
        self.calls: list[GenerateRequest] = []
        self.lora = lora

    def models(self):
        return [ModelCard(id=f"{self.name}:flat", provider=self.name, price=Price(per_image=self.price),
                          latency_s=1.0, capabilities=Capabilities(lora=self.lora, negative_prompt=True))]

    def generate(self, prepared, *, progress=None):
        request = prepared.request
        self.calls.append(request)
        if self.fail:
            self.fail -= 1
            raise ProviderError("boom", provider=self.name, status=503)
        images = [GeneratedImage.from_pil(Image.new("RGB", (8, 8), (request.seed + i) % 256), seed=request.seed + i)
                  for i in range(request.image_count)]
        return GenerateResult(images=images, cost_usd=self.price * len(images))


def test_explicit_model_dispatches_to_its_provider():
    cheap, dear = PaintProvider("cheap", 0.001), PaintProvider("dear", 0.05)
    gen = ImageGen(providers=[cheap, dear])
    result = gen.generate(GenerateRequest(prompt="x", model="dear:flat", seed=5, batch_size=2))
    assert dear.calls and not cheap.calls
    assert [i.seed for i in result.images] == [5, 6]
    assert result.model == "dear:flat" and result.provider == "dear"
    assert result.cost_usd == pytest.approx(0.1)
    assert gen.spent_usd == pytest.approx(0.1)
    assert gen.usage["dear:flat"] == {"calls": 1, "images": 2, "cost_usd": pytest.approx(0.1)}


def test_no_model_picks_the_cheapest_capable_card():
    cheap, dear = PaintProvider("cheap", 0.001), PaintProvider("dear", 0.05, lora=True)
    gen = ImageGen(providers=[cheap, dear])
    assert gen.route(GenerateRequest(prompt="x")).chosen.id == "cheap:flat"
    decision = gen.route(GenerateRequest(prompt="x", loras=[{"name": "style"}]))
    assert decision.chosen.id == "dear:flat"
    assert [e.card.id for e in decision.excluded] == ["cheap:flat"]
    assert "LoRA" in decision.excluded[0].reason


def test_random_seed_is_resolved_once_and_reported():
    provider = PaintProvider()
    result = ImageGen(providers=[provider]).generate(GenerateRequest(prompt="x", seed=-1))
    assert provider.calls[0].seed_fixed
    assert result.images[0].seed == provider.calls[0].seed


def test_unknown_model_is_a_clear_error():
    gen = ImageGen(providers=[PaintProvider()])
    with pytest.raises(ConfigError, match="unknown model 'paint:round'"):
        gen.generate(GenerateRequest(prompt="x", model="paint:round"))
    with pytest.raises(ConfigError, match="no provider named 'cloud'"):
        gen.generate(GenerateRequest(prompt="x", model="cloud:thing"))


def test_a_card_that_cannot_serve_the_request_says_why():
    gen = ImageGen(providers=[PaintProvider()])
    with pytest.raises(NoRouteError, match="does not take an init image"):
        gen.generate(GenerateRequest(prompt="x", model="paint:flat", init_image=b"x"))


def test_check_warnings_reach_the_result():
    result = ImageGen(providers=[PaintProvider()]).generate(
        GenerateRequest(prompt="x", clip_skip=2, variation_seed=3, variation_strength=0.2))
    assert any("clip_skip ignored" in w for w in result.warnings)
    assert any("variation seed ignored" in w for w in result.warnings)


def test_a_random_variation_seed_is_resolved_once_like_the_seed():
    flaky = PaintProvider("flaky", 0.001, fail=1)
    steady = PaintProvider("steady", 0.01)
    ImageGen(providers=[flaky, steady]).generate(GenerateRequest(prompt="x", variation_strength=0.5))
    first, second = flaky.calls[0], steady.calls[0]  # the fallback asks with the same seeds
    assert first.variation_seed is not None and first.variation_seed != -1
    assert (second.seed, second.variation_seed) == (first.seed, first.variation_seed)


def test_budget_refuses_before_the_provider_is_called():
    provider = PaintProvider(price=0.04)
    gen = ImageGen(providers=[provider], budget_usd=0.10)
    gen.generate(GenerateRequest(prompt="x", batch_size=2))
    with pytest.raises(BudgetExceededError, match="budget"):
        gen.generate(GenerateRequest(prompt="x", batch_size=1))
    assert len(provider.calls) == 1
    assert gen.spent_usd == pytest.approx(0.08)


def test_failure_falls_back_to_the_next_candidate():
    flaky, backup = PaintProvider("flaky", 0.001, fail=1), PaintProvider("backup", 0.002)
    result = ImageGen(providers=[flaky, backup]).generate(GenerateRequest(prompt="x", seed=1))
    assert result.model == "backup:flat"
    assert any("fell back" in w for w in result.warnings)


def test_non_retryable_failure_is_not_retried_elsewhere():
    class Unknown(PaintProvider):
        def generate(self, prepared, *, progress=None):
            request = prepared.request
            self.calls.append(request)
            raise ProviderError("outcome unknown", provider=self.name, retryable=False)

    first, backup = Unknown("first", 0.001), PaintProvider("backup", 0.002)
    with pytest.raises(ProviderError, match="outcome unknown"):
        ImageGen(providers=[first, backup]).generate(GenerateRequest(prompt="x"))
    assert not backup.calls


def test_string_prompt_and_overrides():
    provider = PaintProvider()
    ImageGen(providers=[provider]).generate(GenerateRequest(prompt="a cat"), seed=9, batch_size=3)
    assert (provider.calls[0].seed, provider.calls[0].batch_size) == (9, 3)


async def test_agenerate_in_a_running_loop():
    provider = PaintProvider()
    gen = ImageGen(providers=[provider])
    results = await asyncio.gather(*(gen.agenerate(GenerateRequest(prompt="x", seed=s)) for s in range(3)))
    assert sorted(r.images[0].seed for r in results) == [0, 1, 2]


async def test_sync_generate_works_inside_a_running_loop():
    # Jupyter runs user code inside a loop; sync generate must not try to start another one.
    result = ImageGen(providers=[PaintProvider()]).generate(GenerateRequest(prompt="x", seed=3))
    assert result.images[0].seed == 3


def test_context_manager_closes_providers():
    closed = []

    class Closing(PaintProvider):
        def close(self):
            closed.append(self.name)

    with ImageGen(providers=[Closing()]):
        pass
    assert closed == ["paint"]


def test_secret_token_never_appears_in_reprs_or_errors(monkeypatch):
    secret = "r8_supersecrettoken123"
    monkeypatch.setenv("REPLICATE_API_TOKEN", secret)
    gen = ImageGen(providers=[PaintProvider()])
    assert gen.settings.token() == secret
    texts = [repr(gen), str(gen.settings), repr(gen.settings), gen.settings.model_dump_json()]
    assert all(secret not in t for t in texts)


def test_check_capabilities_is_shared_logic():
    card = PaintProvider().models()[0]
    result = check_capabilities(GenerateRequest(prompt="x", width=4096, height=64, steps=200 // 2), card)
    assert isinstance(result, Prepared) and result.ok


def test_provider_found_through_an_entry_point(tmp_path, monkeypatch):
    # A third-party package that registers under imagegen.providers, as a real install would.
    pkg = tmp_path / "paintplugin.py"
    pkg.write_text(textwrap.dedent("""
        from PIL import Image
        from imagegen import GeneratedImage, GenerateResult, ModelCard
        from imagegen.providers.base import BaseProvider

        class Plugin(BaseProvider):
            name = "plugin"
            def models(self):
                return [ModelCard(id="plugin:one", provider="plugin")]
            def generate(self, prepared, *, progress=None):
                request = prepared.request
                image = GeneratedImage.from_pil(Image.new("RGB", (8, 8)), seed=request.seed)
                return GenerateResult(images=[image])
    """))
    dist = tmp_path / "paintplugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: paintplugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[imagegen.providers]\nplugin = paintplugin:Plugin\n")
    code = ("from imagegen import ImageGen, GenerateRequest\n"
            "gen = ImageGen()\n"
            "r = gen.generate(GenerateRequest(prompt='x', model='plugin:one', seed=4))\n"
            "print(sorted(gen.providers), r.model, r.images[0].seed)")
    env = {"PYTHONPATH": str(tmp_path), "IMAGEGEN_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "plugin:one 4" in out.stdout
    assert "'plugin'" in out.stdout


def test_import_imagegen_loads_no_heavy_modules():
    code = ("import sys, imagegen, imagegen.client, imagegen.providers.base\n"
            "print([m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
