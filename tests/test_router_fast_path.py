"""The router's many-cards path (`check_many`, `RequestNeeds`) gives exactly what per-card
`check` and `estimate_cost` give, for the shipped providers and for third-party ones."""

import pytest
from imagegen.providers.base import BaseProvider, CheckResult
from imagegen.providers.local import LocalProvider
from imagegen.providers.replicate import ReplicateProvider
from imagegen.providers.replicate._schemas import finetune_card

from imagegen import GenerateRequest, ModelCard, NoRouteError, Price
from imagegen.catalog import Capabilities, CatalogData
from imagegen.request import ImageInput
from imagegen.router import RoutePolicy, Router
from imagegen.settings import Settings

REQUESTS = [
    GenerateRequest(prompt="a boat"),
    GenerateRequest(prompt="a boat AND a gull", negative_prompt="blurry", seed=7, steps=200 // 2,
                    cfg_scale=12.0, sampler="Euler a", clip_skip=2, output_format="jpeg"),
    GenerateRequest(prompt="a boat", aspect_ratio="21:9", batch_size=3, batch_count=2),
    GenerateRequest(prompt="a boat", width=4096, height=64, loras=[{"name": "a/b"}, {"name": "c/d"}]),
    GenerateRequest(prompt="a boat", width=1000, height=1000, init_image=ImageInput(url="https://x/y.png"),
                    mask_image=ImageInput(url="https://x/m.png"), vae="vae.pt", scheduler="Karras"),
    GenerateRequest(prompt="a boat", hires={"scale": 2.0}, midjourney={"stylize": 250},
                    provider_options={"replicate": {"num_outputs": 2, "nope": 1, "go_fast": True}}),
]


def per_card(provider, request, cards):
    expected = []
    for card in cards:
        check = provider.check(request, card)
        expected.append((check, None if check.missing else provider.estimate_cost(request, card)))
    return expected


def local_cards() -> list[ModelCard]:
    return [ModelCard(id=f"local:m{i}", provider="local", family="sdxl",
                      price=Price(per_gpu_second=0.001 * i), latency_s=2.0 + i,
                      capabilities=Capabilities(lora=i % 2 == 0, img2img=i % 3 == 0, inpaint=i == 0,
                                                hires_fix=i < 2, sampler=True, clip_skip=i == 1,
                                                max_side=2048 if i == 3 else 4096,
                                                steps_range=None if i == 2 else (1, 50),
                                                output_formats=("png",) if i == 1 else ("png", "jpeg")))
            for i in range(4)]


@pytest.mark.parametrize("request_", REQUESTS)
def test_needs_are_the_requests_own_derived_values(request_):
    needs = request_.needs()
    assert (needs.width, needs.height) == request_.size()
    assert needs.images == request_.image_count
    assert needs.seed_fixed == request_.seed_fixed
    assert needs.lora == bool(request_.loras) and needs.hires == (request_.hires is not None)


@pytest.mark.parametrize("request_", REQUESTS)
def test_base_and_local_check_many_equal_per_card_check_and_cost(request_, tmp_path):
    cards = local_cards()
    base = BaseProvider()
    assert base.check_many(request_, cards) == per_card(base, request_, cards)
    local = LocalProvider(Settings(models_dir=tmp_path, home=tmp_path, device="cpu"))
    assert local.check_many(request_, cards, request_.needs()) == per_card(local, request_, cards)


@pytest.mark.parametrize("token", ["r8_test", None])
@pytest.mark.parametrize("request_", REQUESTS)
def test_replicate_check_many_equals_per_card_check_for_models_and_fine_tunes(request_, token, tmp_path):
    provider = ReplicateProvider(Settings(replicate_api_token=token, home=tmp_path))
    tunes = [finetune_card(f"me/tune-{i}:{str(i) * 64}") for i in range(3)]
    stranger = ModelCard(id="replicate:someone/not-flux", provider="replicate", family="other")
    cards = provider.models() + tunes + [stranger]
    assert provider.check_many(request_, cards) == per_card(provider, request_, cards)


def test_local_check_many_still_rejects_bad_provider_options(tmp_path):
    local = LocalProvider(Settings(models_dir=tmp_path, home=tmp_path, device="cpu"))
    bad = GenerateRequest(prompt="a boat", provider_options={"local": {"nope": True}})
    with pytest.raises(Exception, match="nope"):
        local.check_many(bad, local_cards())


class OwnCheckProvider(BaseProvider):
    """A third-party provider that extends `check` and prices its own way, per card."""

    name = "own"

    def check(self, request, card):
        result = super().check(request, card)
        if card.id.endswith("banned"):
            result.missing.append("banned by the provider")
        return result

    def estimate_cost(self, request, card):
        return 0.5 if card.id.endswith("dear") else 0.01


class ProtocolOnlyProvider:
    """Implements only the basic protocol: no `check_many`."""

    name = "bare"

    def __init__(self):
        self.checked = []

    def check(self, request, card):
        self.checked.append(card.id)
        return CheckResult(missing=["sold out"] if card.id == "bare:gone" else [])

    def estimate_cost(self, request, card):
        return 0.02


def test_providers_overriding_check_or_cost_are_asked_per_card_in_card_order():
    bare = ProtocolOnlyProvider()
    providers = {"own": OwnCheckProvider(), "bare": bare}
    cards = [ModelCard(id=i, provider=i.split(":")[0]) for i in
             ("own:banned", "bare:gone", "own:dear", "bare:ok", "own:fine")]
    decision = Router(catalog=CatalogData()).decide(GenerateRequest(prompt="a boat"), cards, providers,
                                                    RoutePolicy(strategy="cost", max_cost_per_image=0.1))
    assert [c.card.id for c in decision.candidates] == ["own:fine", "bare:ok"]
    assert [(e.card.id, e.reason) for e in decision.excluded] == [
        ("own:banned", "banned by the provider"), ("bare:gone", "sold out"),
        ("own:dear", "estimated $0.5000 per image is over max_cost_per_image $0.1000")]
    assert bare.checked == ["bare:gone", "bare:ok"]


def test_no_route_lists_exclusions_in_card_order_across_providers():
    providers = {"own": OwnCheckProvider(), "bare": ProtocolOnlyProvider()}
    cards = [ModelCard(id=i, provider=i.split(":")[0]) for i in ("bare:gone", "own:banned", "gone:x")]
    with pytest.raises(NoRouteError) as caught:
        Router(catalog=CatalogData()).decide(GenerateRequest(prompt="a boat"), cards, providers, RoutePolicy())
    assert [card_id for card_id, _ in caught.value.excluded] == ["bare:gone", "own:banned", "gone:x"]
