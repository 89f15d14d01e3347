"""One model in two places: a local FLUX.1 [dev] card and Replicate's card of the same weights
share one Elo and differ in cost and (learned) latency; explain() says that is the choice, and
RoutePolicy(prefer=...) breaks the tie."""

from __future__ import annotations

import pytest
from imagegen.providers.base import BaseProvider
from imagegen.providers.local._flow_cards import flow_card
from imagegen.providers.local._gpu_price import GPU_HOUR_ENV

from imagegen import GenerateRequest, ModelCard, Price
from imagegen.catalog import Capabilities, CatalogData, Elo, elo_for
from imagegen.errors import ConfigError
from imagegen.router import RoutePolicy, Router

CLOUD_ID = "replicate:black-forest-labs/flux-dev"


class TableProvider(BaseProvider):
    def __init__(self, name, cards):
        super().__init__()
        self.name = name
        self.cards = cards

    def models(self):
        return self.cards


def cloud(elo=1100.0, price=0.025, latency=2.6):
    return ModelCard(id=CLOUD_ID, provider="replicate", family="flux", weights="flux.1-dev",
                     price=Price(per_image=price), elo=Elo(value=elo, source="test arena", date="2026-01"),
                     latency_s=latency, capabilities=Capabilities(max_images_per_call=4))


def decide(local, remote, policy, router=None):
    catalog = CatalogData(cards=[remote])
    providers = {"local": TableProvider("local", [local]), "replicate": TableProvider("replicate", [remote])}
    return (router or Router(catalog=catalog)).decide(GenerateRequest(prompt="a lighthouse"), [local, remote],
                                                      providers, policy)


@pytest.fixture()
def local(monkeypatch):
    monkeypatch.delenv(GPU_HOUR_ENV, raising=False)
    return flow_card("flux1-dev", "flux-dev", "user", "flux1-dev")


def test_the_local_card_shares_the_cloud_cards_elo(local):
    assert local.elo.value is None
    shared = elo_for(local, CatalogData(cards=[cloud()]))
    assert shared.value == 1100.0 and "same weights (flux.1-dev)" in shared.source
    decision = decide(local, cloud(), RoutePolicy(strategy="quality"))
    assert [c.elo for c in decision.candidates] == [1100.0, 1100.0]
    assert "same weights" in decision.candidates[0].elo_note


def test_explain_says_the_choice_is_cost_and_latency(local):
    decision = decide(local, cloud(), RoutePolicy(strategy="quality"))
    assert decision.chosen.id == "local:flux1-dev"  # same Elo: the free one
    text = decision.explain()
    assert "same weights (flux.1-dev) in 2 places" in text and "cost and latency" in text


def test_prefer_breaks_the_tie_and_only_the_tie(local):
    assert decide(local, cloud(), RoutePolicy(strategy="quality", prefer="cloud")).chosen.id == CLOUD_ID
    assert decide(local, cloud(), RoutePolicy(strategy="quality", prefer="local")).chosen.id == "local:flux1-dev"
    # not a tie: the cloud card is faster, whatever the preference
    assert decide(local, cloud(), RoutePolicy(strategy="speed", prefer="local")).chosen.id == CLOUD_ID
    assert decide(local, cloud(), RoutePolicy(strategy="cost", prefer="cloud")).chosen.id == "local:flux1-dev"
    with pytest.raises(ValueError):
        RoutePolicy(prefer="gpu")


def test_a_configured_gpu_hour_price_is_the_local_cost(monkeypatch):
    monkeypatch.setenv(GPU_HOUR_ENV, "3.6")  # 0.001 USD per second x 12 s expected = 0.012 per image
    cheap = flow_card("flux1-dev", "flux-dev", "user", "flux1-dev")
    decision = decide(cheap, cloud(), RoutePolicy(strategy="cost"))
    assert decision.chosen.id == "local:flux1-dev"
    assert decision.candidates[0].cost_usd == pytest.approx(0.012)
    monkeypatch.setenv(GPU_HOUR_ENV, "36")
    dear = flow_card("flux1-dev", "flux-dev", "user", "flux1-dev")
    assert decide(dear, cloud(), RoutePolicy(strategy="cost")).chosen.id == CLOUD_ID


def test_learned_latency_decides_between_the_two_places(local):
    router = Router(catalog=CatalogData(cards=[cloud()]))
    assert decide(local, cloud(), RoutePolicy(strategy="speed"), router).chosen.id == CLOUD_ID
    for _ in range(10):
        router.record_success(local, 0.8)  # this machine's GPU turns out fast
    assert decide(local, cloud(), RoutePolicy(strategy="speed"), router).chosen.id == "local:flux1-dev"


def test_your_votes_for_either_card_rate_both(local):
    router = Router(catalog=CatalogData(cards=[cloud()]), user_ratings={CLOUD_ID: (1234.0, 12)})
    decision = decide(local, cloud(), RoutePolicy(strategy="quality", elo_source="user"), router)
    assert {c.card.id: c.elo for c in decision.candidates} == {CLOUD_ID: 1234.0, "local:flux1-dev": 1234.0}


def test_the_shipped_cards_name_their_open_weights():
    from imagegen.catalog import load_catalog

    weights = {card.id: card.weights for card in load_catalog().cards}
    assert weights[CLOUD_ID] == "flux.1-dev"
    assert weights["replicate:black-forest-labs/flux-schnell"] == "flux.1-schnell"
    assert weights["replicate:black-forest-labs/flux-2-klein-4b"] == "flux.2-klein-4b"


def test_local_cards_are_shared_but_follow_the_gpu_hour_price(monkeypatch):
    from imagegen.providers.local import _provider as local_provider

    monkeypatch.setenv(GPU_HOUR_ENV, "3.6")
    first = local_provider._card("flux1-dev", "flux-dev", "user", "flux1-dev")
    assert local_provider._card("flux1-dev", "flux-dev", "user", "flux1-dev") is first
    monkeypatch.setenv(GPU_HOUR_ENV, "36")
    dearer = local_provider._card("flux1-dev", "flux-dev", "user", "flux1-dev")
    assert dearer.price.per_gpu_second == pytest.approx(10 * first.price.per_gpu_second)


def test_one_gpu_hour_price_for_local_generation_and_training(monkeypatch):
    from imagegen.providers.local._gpu_price import gpu_hour_price

    monkeypatch.delenv(GPU_HOUR_ENV, raising=False)
    monkeypatch.setenv("IMAGEGEN_GPU_HOUR_USD", "2")  # the name training read first
    assert gpu_hour_price() == 2.0
    monkeypatch.setenv(GPU_HOUR_ENV, "3.6")
    assert gpu_hour_price() == 3.6 and gpu_hour_price(configured=1.5) == 1.5
    monkeypatch.setenv(GPU_HOUR_ENV, "cheap")
    with pytest.raises(ConfigError, match=GPU_HOUR_ENV):
        gpu_hour_price()


def test_local_sd_cards_are_priced_at_the_gpu_hour_too_but_not_the_demo(monkeypatch):
    from imagegen.providers.local import _provider as local_provider

    monkeypatch.setenv(GPU_HOUR_ENV, "7.2")  # 0.002 USD per GPU second
    sdxl = local_provider._card("sdxl-base", "sdxl", "user", "sdxl-base")
    assert sdxl.price.per_gpu_second == pytest.approx(0.002)
    cost = BaseProvider().prepare(GenerateRequest(prompt="a boat"), [sdxl])[0].cost_usd
    assert cost == pytest.approx(0.002 * sdxl.latency_s)
    assert local_provider._card("demo", "demo", "builtin", "demo").price.per_gpu_second == 0
