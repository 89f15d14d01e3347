"""The shipped catalog: the values the research notes give, with sources and dates, nothing
invented; a user's own table laid over it."""

import json

import pytest

from imagegen.catalog import cloud_cards, elo_for, load_catalog, local_elo_prior
from imagegen.router import RoutePolicy, Router

FLUX = "replicate:black-forest-labs/"


def by_id():
    return {c.id: c for c in cloud_cards("replicate")}


def test_every_replicate_flux_card_is_shipped():
    assert set(by_id()) == {FLUX + m for m in ("flux-schnell", "flux-dev", "flux-pro", "flux-1.1-pro",
                                               "flux-1.1-pro-ultra", "flux-dev-lora")}


def test_prices_are_the_replicate_list_prices_with_a_source():
    prices = {cid.removeprefix(FLUX): c.price.per_image for cid, c in by_id().items()}
    assert prices == {"flux-schnell": 0.003, "flux-dev": 0.025, "flux-pro": 0.055, "flux-1.1-pro": 0.04,
                      "flux-1.1-pro-ultra": 0.06, "flux-dev-lora": 0.025}
    assert all(c.price.source for c in by_id().values())
    assert by_id()[FLUX + "flux-dev-lora"].price.source.startswith("UNCONFIRMED")


def test_elo_is_only_what_a_dated_snapshot_reports():
    elos = {cid.removeprefix(FLUX): (c.elo.value, c.elo.date) for cid, c in by_id().items()}
    assert elos["flux-1.1-pro"] == (1083, "2025-04") and elos["flux-pro"] == (1068, "2025-04")
    for name in ("flux-schnell", "flux-dev", "flux-1.1-pro-ultra", "flux-dev-lora"):
        assert elos[name][0] is None
    for card in by_id().values():
        assert card.elo.source  # a value names its source; a null says none was found
        assert card.latency_s > 0 and card.latency_source


def test_capabilities_follow_the_model_schemas():
    cards = by_id()
    schnell, dev, ultra = cards[FLUX + "flux-schnell"], cards[FLUX + "flux-dev"], cards[FLUX + "flux-1.1-pro-ultra"]
    assert schnell.capabilities.steps_range == (1, 4) and not schnell.capabilities.cfg
    assert dev.capabilities.img2img and dev.capabilities.cfg_range == (0.0, 10.0) and dev.default_steps == 28
    assert ultra.capabilities.output_formats == ("jpeg", "png") and ultra.capabilities.max_images_per_call == 1
    assert cards[FLUX + "flux-dev-lora"].capabilities.lora
    assert not any(c.capabilities.negative_prompt for c in cards.values())
    assert all("21:9" in c.capabilities.aspect_ratios for c in (schnell, dev, ultra))


def test_cloud_cards_are_copies():
    cloud_cards()[0].notes = "changed"
    assert cloud_cards()[0].notes != "changed"


def test_local_family_priors_are_unknown_until_the_user_sets_them(tmp_path):
    assert local_elo_prior("sdxl").value is None and local_elo_prior("sdxl").source
    assert local_elo_prior("nope").value is None
    user = tmp_path / "catalog.json"
    user.write_text(json.dumps({
        "local_elo_priors": {"sdxl": {"value": 1010, "source": "my votes", "date": "2026-11-01"}},
        "cards": [{"id": FLUX + "flux-dev", "elo": {"value": 1090, "source": "my table", "date": "2026-11"}}]}))
    catalog = load_catalog(user)
    assert local_elo_prior("sdxl", catalog).value == 1010
    dev = catalog.card(FLUX + "flux-dev")
    assert dev.elo.value == 1090 and dev.price.per_image == 0.025  # the rest kept from the shipped card
    assert load_catalog().card(FLUX + "flux-dev").elo.value is None  # the shipped table is untouched


def test_elo_for_uses_the_family_prior_for_local_cards_only(tmp_path):
    from imagegen.catalog import Elo, ModelCard

    user = tmp_path / "catalog.json"
    user.write_text(json.dumps({"local_elo_priors": {"sdxl": {"value": 1010, "source": "mine"}}}))
    catalog = load_catalog(user)
    local = ModelCard(id="local:juggernaut", provider="local", family="sdxl")
    assert elo_for(local, catalog).value == 1010
    assert elo_for(local.model_copy(update={"elo": Elo(value=1100, source="x")}), catalog).value == 1100
    cloud = ModelCard(id="cloud:sdxl", provider="cloud", family="sdxl")
    assert elo_for(cloud, catalog).value is None


@pytest.mark.parametrize("strategy,expected", [
    ("cost", "flux-schnell"), ("quality", "flux-1.1-pro"), ("speed", "flux-schnell"),
])
def test_routing_over_the_shipped_flux_cards(strategy, expected):
    from imagegen.providers.base import BaseProvider

    from imagegen import GenerateRequest

    class Cloud(BaseProvider):
        name = "replicate"

    decision = Router().decide(GenerateRequest(prompt="x"), cloud_cards(), {"replicate": Cloud()},
                               RoutePolicy(strategy=strategy))
    assert decision.chosen.id == FLUX + expected


def test_the_replicate_adapter_routes_over_the_shipped_cards():
    from imagegen.providers.replicate import ReplicateProvider

    from imagegen import GenerateRequest, ImageGen
    from imagegen.settings import Settings

    gen = ImageGen(providers=[ReplicateProvider(Settings(replicate_api_token="r8_not_used"))],
                   router=Router())
    request = GenerateRequest(prompt="a cat", aspect_ratio="16:9", negative_prompt="dog")
    assert gen.route(request, policy=RoutePolicy(strategy="cost")).chosen.id == FLUX + "flux-schnell"
    quality = gen.route(request, policy=RoutePolicy(strategy="quality"))
    assert [c.card.id for c in quality.candidates[:2]] == [FLUX + "flux-1.1-pro", FLUX + "flux-pro"]
    assert any("negative_prompt" in w for w in quality.candidates[0].warnings)
    lora = gen.route(GenerateRequest(prompt="a cat", loras=[{"name": "fofr/flux-mona-lisa"}]))
    assert lora.chosen.id == FLUX + "flux-dev-lora" and len(lora.excluded) == 5


def test_a_user_table_under_home_changes_how_cards_are_routed(tmp_path):
    from imagegen.providers.base import BaseProvider

    from imagegen import GenerateRequest

    class Cloud(BaseProvider):
        name = "replicate"

    (tmp_path / "catalog.json").write_text(json.dumps({"cards": [
        {"id": FLUX + "flux-dev", "price": {"per_image": 0.001, "source": "my negotiated price"},
         "elo": {"value": 1200, "source": "my own table", "date": "2026-11"}}]}))
    router = Router(home=tmp_path)
    request = GenerateRequest(prompt="x")
    for strategy in ("cost", "quality"):
        decision = router.decide(request, cloud_cards(), {"replicate": Cloud()}, RoutePolicy(strategy=strategy))
        assert decision.chosen.id == FLUX + "flux-dev"
        assert decision.chosen.price.source == "my negotiated price"
    assert Router(home=tmp_path / "elsewhere").decide(
        request, cloud_cards(), {"replicate": Cloud()}, RoutePolicy()).chosen.id == FLUX + "flux-schnell"
