"""The router at run time through `ImageGen.generate`: fallback to the next candidate, no fallback
after a possibly-paid unknown outcome, cooldown, learned latency, budget and usage accounting."""

import asyncio

import pytest
from imagegen.providers.base import BaseProvider
from PIL import Image

from imagegen import (
    BudgetExceededError,
    GeneratedImage,
    GenerateRequest,
    GenerateResult,
    ImageGen,
    ModelCard,
    NoRouteError,
    Price,
    ProviderError,
    UnknownOutcomeError,
)
from imagegen.catalog import Capabilities, CatalogData
from imagegen.router import DEMO_NOTICE, RoutePolicy, Router


class ScriptedProvider(BaseProvider):
    """One card; raises the queued errors first, then paints. Records every call."""

    def __init__(self, name, price, latency=1.0, errors=(), kind="catalog", delay=0.0, took=None):
        super().__init__()
        self.name = name
        self.price = price
        self.card = ModelCard(id=f"{name}:model", provider=name, price=Price(per_image=price),
                              latency_s=latency, kind=kind, capabilities=Capabilities(max_images_per_call=4))
        self.errors = list(errors)
        self.calls = 0
        self.delay = delay
        self.took = took

    def models(self):
        return [self.card]

    def _paint(self, request):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        images = [GeneratedImage.from_pil(Image.new("RGB", (8, 8)), seed=request.seed + i)
                  for i in range(request.image_count)]
        return GenerateResult(images=images, cost_usd=self.price * len(images), latency_s=self.took or 0.0)

    def generate(self, prepared, *, progress=None):
        request = prepared.request
        return self._paint(request)

    async def agenerate(self, prepared, *, progress=None):
        request = prepared.request
        await asyncio.sleep(self.delay)
        return self._paint(request)


def flaky(status=503):
    return ProviderError("temporarily unavailable", provider="cheap", status=status)


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


def client(*providers, clock=None, **kwargs):
    router = Router(catalog=CatalogData(), clock=clock or Clock(), failure_threshold=2, cooldown_s=30)
    return ImageGen(providers=list(providers), router=router, **kwargs)


def test_a_retryable_failure_falls_back_to_the_next_candidate_and_says_so():
    cheap, dear = ScriptedProvider("cheap", 0.01, errors=[flaky()]), ScriptedProvider("dear", 0.05)
    gen = client(cheap, dear)
    result = gen.generate("a red kite", seed=3)
    assert (cheap.calls, dear.calls) == (1, 1)
    assert result.model == "dear:model"
    assert any(w.startswith("fell back after") and "cheap:model" in w and "HTTP 503" in w
               for w in result.warnings)
    assert gen.usage == {"dear:model": {"calls": 1, "images": 1, "cost_usd": pytest.approx(0.05)}}
    assert gen.spent_usd == pytest.approx(0.05)


def test_an_unknown_outcome_is_never_followed_by_another_paid_call():
    cheap = ScriptedProvider("cheap", 0.01, errors=[UnknownOutcomeError("connection lost after create")])
    dear = ScriptedProvider("dear", 0.05)
    gen = client(cheap, dear)
    with pytest.raises(UnknownOutcomeError):
        gen.generate("a red kite")
    assert dear.calls == 0 and gen.spent_usd == 0


def test_fallback_stops_after_max_attempts():
    providers = [ScriptedProvider(f"p{i}", 0.01 * (i + 1), errors=[flaky()]) for i in range(3)]
    gen = client(*providers)
    with pytest.raises(NoRouteError, match="every candidate failed") as info:
        gen.generate("x", policy=RoutePolicy(max_attempts=2))
    assert [p.calls for p in providers] == [1, 1, 0]
    assert [cid for cid, _ in info.value.excluded] == ["p0:model", "p1:model"]


def test_a_failing_provider_cools_down_then_comes_back_after_the_cooldown():
    clock = Clock()
    cheap = ScriptedProvider("cheap", 0.01, errors=[flaky(), flaky(), flaky()])
    dear = ScriptedProvider("dear", 0.05)
    gen = client(cheap, dear, clock=clock)
    gen.generate("x")  # cheap fails once, dear serves
    gen.generate("x")  # cheap fails twice: cooled down for 30 s
    assert cheap.calls == 2
    result = gen.generate("x")
    assert cheap.calls == 2 and result.model == "dear:model"  # cooled: tried after the healthy one
    assert gen.route(GenerateRequest(prompt="x")).candidates[-1].card.id == "cheap:model"
    clock.now += 31
    gen.generate("x")  # back first in line, fails again: cooled at once
    assert cheap.calls == 3
    clock.now += 31
    result = gen.generate("x")
    assert cheap.calls == 4 and result.model == "cheap:model"
    assert gen.usage["cheap:model"]["calls"] == 1 and gen.usage["dear:model"]["calls"] == 4


def test_a_cooled_down_card_is_still_tried_when_it_is_the_only_one():
    clock = Clock()
    only = ScriptedProvider("only", 0.01, errors=[flaky(), flaky()])
    gen = client(only, clock=clock)
    for _ in range(2):
        with pytest.raises(NoRouteError):
            gen.generate("x")
    result = gen.generate("x")
    assert result.model == "only:model"
    assert any("cooling down" in w for w in result.warnings)


def test_speed_strategy_follows_the_latency_the_client_observes():
    slow_in_reality = ScriptedProvider("a", 0.01, latency=1.0, took=9.0)
    steady = ScriptedProvider("b", 0.01, latency=3.0, took=3.0)
    gen = client(slow_in_reality, steady, policy=RoutePolicy(strategy="speed"))
    assert gen.generate("x").model == "a:model"
    assert gen.route(GenerateRequest(prompt="x")).chosen.id == "b:model"
    assert gen.route(GenerateRequest(prompt="x")).candidates[1].latency_s == pytest.approx(9.0)
    explicit = gen.route(GenerateRequest(prompt="x", model="a:model", batch_count=2))
    assert explicit.candidates[0].latency_s == pytest.approx(18.0)


def test_the_demo_notice_reaches_the_result_warnings():
    demo = ScriptedProvider("local", 0.0, latency=0.1, kind="builtin")
    cloud = ScriptedProvider("cloud", 0.01, errors=[flaky()])
    gen = client(demo, cloud)
    result = gen.generate("x")
    assert result.model == "local:model"
    assert DEMO_NOTICE in result.warnings


def test_the_budget_refuses_before_a_fallback_would_overspend():
    cheap, dear = ScriptedProvider("cheap", 0.01, errors=[flaky()]), ScriptedProvider("dear", 0.05)
    gen = client(cheap, dear, budget_usd=0.03)
    with pytest.raises(NoRouteError, match="dear:model: over the budget left: would cost about \\$0.0500") as caught:
        gen.generate("x")
    assert dear.calls == 0
    assert [card for card, _ in caught.value.excluded] == ["cheap:model", "dear:model"]


async def test_concurrent_calls_share_the_budget_instead_of_each_seeing_all_of_it():
    paint = ScriptedProvider("paint", 0.04, delay=0.05)
    gen = client(paint, budget_usd=0.10)
    outcomes = await asyncio.gather(*(gen.agenerate("x") for _ in range(4)), return_exceptions=True)
    served = [o for o in outcomes if isinstance(o, GenerateResult)]
    refused = [o for o in outcomes if isinstance(o, BudgetExceededError)]
    assert (len(served), len(refused)) == (2, 2)
    assert paint.calls == 2 and gen.spent_usd == pytest.approx(0.08)
    assert gen._reserved_usd == pytest.approx(0.0)


def test_usage_totals_per_model_and_per_provider():
    a, b = ScriptedProvider("a", 0.01), ScriptedProvider("b", 0.02)
    gen = client(a, b)
    gen.generate("x", batch_size=2)
    gen.generate("x")
    gen.generate(GenerateRequest(prompt="x", model="b:model"))
    assert gen.usage == {"a:model": {"calls": 2, "images": 3, "cost_usd": pytest.approx(0.03)},
                         "b:model": {"calls": 1, "images": 1, "cost_usd": pytest.approx(0.02)}}
    assert gen.usage_by_provider["a"]["cost_usd"] == pytest.approx(0.03)
    assert gen.spent_usd == pytest.approx(0.05)
