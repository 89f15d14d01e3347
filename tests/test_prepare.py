"""One `prepare` per provider per request: preparing many cards at once gives what preparing each
alone gives, third-party providers are asked in card order, and a request is translated once per
candidate and never again when it runs."""

import pytest
from imagegen.providers import base as provider_base
from imagegen.providers.base import BaseProvider, Prepared, check_capabilities
from imagegen.providers.local import LocalProvider
from imagegen.providers.replicate import CallPolicy, ReplicateProvider
from imagegen.providers.replicate import _provider as replicate_provider
from imagegen.providers.replicate._schemas import finetune_card, target_for
from pydantic import ValidationError

from imagegen import GenerateRequest, ImageGen, ModelCard, NoRouteError, Price
from imagegen.catalog import Capabilities, CatalogData
from imagegen.errors import ConfigError
from imagegen.request import ImageInput
from imagegen.router import RoutePolicy, Router
from imagegen.settings import Settings
from imagegen.testing import FakeReplicate

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


def verdict(prepared: Prepared) -> tuple:
    return prepared.card.id, prepared.missing, prepared.warnings, prepared.cost_usd


def one_by_one(provider, request, cards) -> list[tuple]:
    return [verdict(provider.prepare(request, [card])[0]) for card in cards]


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
def test_base_and_local_prepare_many_equal_one_by_one(request_, tmp_path):
    cards = local_cards()
    base = BaseProvider()
    assert [verdict(p) for p in base.prepare(request_, cards)] == one_by_one(base, request_, cards)
    local = LocalProvider(Settings(models_dir=tmp_path, home=tmp_path, device="cpu"))
    many = local.prepare(request_, cards, request_.needs())
    assert [verdict(p) for p in many] == one_by_one(local, request_, cards)
    assert all((p.cost_usd is None) == bool(p.missing) for p in many)


@pytest.mark.parametrize("token", ["r8_test", None])
@pytest.mark.parametrize("request_", REQUESTS)
def test_replicate_prepare_many_equals_one_by_one_for_models_and_fine_tunes(request_, token, tmp_path):
    provider = ReplicateProvider(Settings(replicate_api_token=token, home=tmp_path))
    tunes = [finetune_card(f"me/tune-{i}:{str(i) * 64}") for i in range(3)]
    stranger = ModelCard(id="replicate:someone/not-flux", provider="replicate", family="other")
    cards = provider.models() + tunes + [stranger]
    many = provider.prepare(request_, cards)
    assert [verdict(p) for p in many] == one_by_one(provider, request_, cards)
    for prepared in many[:-1]:  # a shared translation still targets its own card's version
        assert prepared.plan.target == target_for(prepared.card)
    assert many[-1].plan is None and "not a Flux model" in many[-1].missing[-1]


def test_local_prepare_rejects_bad_provider_options(tmp_path):
    local = LocalProvider(Settings(models_dir=tmp_path, home=tmp_path, device="cpu"))
    bad = GenerateRequest(prompt="a boat", provider_options={"local": {"nope": True}})
    with pytest.raises(Exception, match="nope"):
        local.prepare(bad, local_cards())


class OwnRulesProvider(BaseProvider):
    """A third-party provider that adds a rule and prices its own way, per card."""

    name = "own"

    def prepare_one(self, request, card, needs=None):
        prepared = super().prepare_one(request, card, needs)
        if card.id.endswith("banned"):
            prepared.missing.append("banned by the provider")
        elif prepared.ok:
            prepared.cost_usd = 0.5 if card.id.endswith("dear") else 0.01
        return prepared


class ProtocolOnlyProvider:
    """Implements the protocol alone, without BaseProvider."""

    name = "bare"

    def __init__(self):
        self.asked: list[list[str]] = []

    def prepare(self, request, cards, needs):
        self.asked.append([c.id for c in cards])
        return [Prepared(card, request, missing=["sold out"] if card.id == "bare:gone" else [],
                         cost_usd=None if card.id == "bare:gone" else 0.02) for card in cards]


def test_each_provider_is_asked_once_with_its_cards_in_order():
    bare = ProtocolOnlyProvider()
    providers = {"own": OwnRulesProvider(), "bare": bare}
    cards = [ModelCard(id=i, provider=i.split(":")[0]) for i in
             ("own:banned", "bare:gone", "own:dear", "bare:ok", "own:fine")]
    decision = Router(catalog=CatalogData()).decide(GenerateRequest(prompt="a boat"), cards, providers,
                                                    RoutePolicy(strategy="cost", max_cost_per_image=0.1))
    assert [c.card.id for c in decision.candidates] == ["own:fine", "bare:ok"]
    assert all(c.prepared.card is c.card for c in decision.candidates)
    assert [(e.card.id, e.reason) for e in decision.excluded] == [
        ("own:banned", "banned by the provider"), ("bare:gone", "sold out"),
        ("own:dear", "estimated $0.5000 per image is over max_cost_per_image $0.1000")]
    assert bare.asked == [["bare:gone", "bare:ok"]]


def test_no_route_lists_exclusions_in_card_order_across_providers():
    providers = {"own": OwnRulesProvider(), "bare": ProtocolOnlyProvider()}
    cards = [ModelCard(id=i, provider=i.split(":")[0]) for i in ("bare:gone", "own:banned", "gone:x")]
    with pytest.raises(NoRouteError) as caught:
        Router(catalog=CatalogData()).decide(GenerateRequest(prompt="a boat"), cards, providers, RoutePolicy())
    assert [card_id for card_id, _ in caught.value.excluded] == ["bare:gone", "own:banned", "gone:x"]


def test_a_drawn_seed_is_not_a_fixed_seed_to_the_router():
    """The client draws a random seed before preparing; a card that cannot honour seeds still
    serves a request that did not ask for one."""
    seedless = ModelCard(id="own:seedless", provider="own", capabilities=Capabilities(seed=False))
    provider = OwnRulesProvider()
    provider.models = lambda: [seedless]
    gen = ImageGen(providers=[provider], router=Router(catalog=CatalogData()))
    assert gen.route("a boat").chosen.id == "own:seedless"
    with pytest.raises(NoRouteError, match="fixed seed"):
        gen.route(GenerateRequest(prompt="a boat", seed=3))


@pytest.fixture
def counted_translations(monkeypatch):
    calls: list[str] = []
    real = replicate_provider.plan_request

    def counting(request, card, seed=None, **shared):
        calls.append(card.id)
        return real(request, card, seed=seed, **shared)

    monkeypatch.setattr(replicate_provider, "plan_request", counting)
    return calls


def test_a_request_is_translated_once_per_flux_model_and_never_again_to_run(counted_translations, tmp_path):
    with FakeReplicate(processing_time_s=0.01) as fake:
        settings = Settings(replicate_api_token=fake.api_token, replicate_base_url=fake.base_url, home=tmp_path)
        provider = ReplicateProvider(settings, policy=CallPolicy(poll_initial_s=0.02, poll_max_s=0.05))
        gen = ImageGen(providers=[provider], settings=settings)
        try:
            explicit = gen.generate("a cat --ar 16:9", model="replicate:black-forest-labs/flux-schnell")
            assert counted_translations == ["replicate:black-forest-labs/flux-schnell"]
            counted_translations.clear()
            decision = gen.route("a cat --ar 16:9")
            routed_once = len(counted_translations)
            assert routed_once == len(provider.models())  # one per card: each is its own Flux model
            counted_translations.clear()
            routed = gen.generate("a cat --ar 16:9 --seed 4")
            assert len(counted_translations) == routed_once  # preparing; running translated nothing
        finally:
            gen.close()
    assert explicit.images and routed.images and decision.candidates


def test_an_explicit_model_asks_only_its_own_provider_for_cards(monkeypatch, tmp_path):
    class Counting(BaseProvider):
        def __init__(self, name):
            super().__init__(Settings(home=tmp_path))
            self.name, self.listed = name, 0

        def models(self):
            self.listed += 1
            return [ModelCard(id=f"{self.name}:m", provider=self.name)]

    mine, other = Counting("mine"), Counting("other")
    gen = ImageGen(providers=[mine, other], router=Router(catalog=CatalogData()))
    assert gen.route(GenerateRequest(prompt="x", model="mine:m")).chosen.id == "mine:m"
    assert (mine.listed, other.listed) == (1, 0)


def test_running_a_prepared_card_that_cannot_serve_it_is_refused():
    card = ModelCard(id="own:m", provider="own", capabilities=Capabilities(lora=False))
    prepared = BaseProvider().prepare(GenerateRequest(prompt="x", loras=[{"name": "a/b"}]), [card])[0]
    assert not prepared.ok
    with pytest.raises(ConfigError, match="does not load LoRAs"):
        provider_base.runnable(prepared)


def test_a_remembered_verdict_is_never_that_of_another_card():
    """Verdicts are remembered per request needs and card; a changed card is a new card."""
    card = ModelCard(id="own:m", provider="own", price=Price(per_gpu_second=0.01), latency_s=2.0)
    with pytest.raises(ValidationError, match="frozen"):
        card.latency_s = 3.0
    lora = GenerateRequest(prompt="a boat", loras=[{"name": "a/b"}])
    base = BaseProvider()
    assert base.prepare(lora, [card])[0].missing == ["does not load LoRAs"]
    takes_loras = card.model_copy(update={"capabilities": card.capabilities.model_copy(update={"lora": True})})
    assert base.prepare(lora, [takes_loras])[0].missing == []
    assert base.prepare(lora, [takes_loras])[0].cost_usd == pytest.approx(0.02)
    slower = takes_loras.model_copy(update={"latency_s": 3.0})  # GPU seconds priced from the latency
    assert base.prepare(lora, [slower, takes_loras])[0].cost_usd == pytest.approx(0.03)
    assert base.prepare(lora, [card])[0].missing == ["does not load LoRAs"]


def test_changing_a_prepared_verdict_changes_no_later_one():
    card = ModelCard(id="own:m", provider="own", capabilities=Capabilities(cfg=False))
    request = GenerateRequest(prompt="a boat", cfg_scale=5.0)
    first = BaseProvider().prepare(request, [card])[0]
    assert first.warnings == ["cfg_scale ignored: the model has no guidance setting"]
    first.warnings.append("an adapter's own note")
    first.missing.append("an adapter's own rule")
    again = BaseProvider().prepare(request, [card])[0]
    assert again.warnings == ["cfg_scale ignored: the model has no guidance setting"] and again.missing == []
    assert check_capabilities(request, card).warnings == again.warnings


def test_the_remembered_verdicts_stay_bounded_when_cards_are_made_anew_each_time():
    request = GenerateRequest(prompt="a boat")
    base = BaseProvider()
    for i in range(provider_base._CARDS_KEPT + 10):  # as a provider that makes its cards per call
        base.prepare(request, [ModelCard(id=f"own:m{i}", provider="own")])
    assert len(provider_base._VERDICTS[request.needs()]) <= provider_base._CARDS_KEPT
