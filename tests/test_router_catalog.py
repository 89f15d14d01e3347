"""The shipped catalog as the router sees it: requests with images route only to models that take
them, `quality` picks the best-rated capable model, the README's example routes, and a user's
own table under IMAGEGEN_HOME still overlays everything."""

import io
import json

import pytest
from imagegen.providers.base import BaseProvider
from imagegen.providers.replicate import ReplicateProvider
from PIL import Image

from imagegen import GenerateRequest, ImageGen, NoRouteError
from imagegen.catalog import cloud_cards, elo_for, load_catalog, local_elo_prior
from imagegen.router import RoutePolicy, Router
from imagegen.settings import Settings

R = "replicate:"
FLUX = R + "black-forest-labs/"


def png(width=64, height=48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def gen():
    return ImageGen(providers=[ReplicateProvider(Settings(replicate_api_token="r8_not_used"))],
                    router=Router())


class Generic(BaseProvider):
    """The generic check and price estimate only (no adapter translation)."""

    name = "replicate"


def best_rated(cards, accept) -> str:
    rated = [c for c in cards if c.elo.value is not None and accept(c)]
    return max(rated, key=lambda c: c.elo.value).id


# -- requests with images ------------------------------------------------------------------


def test_an_edit_routes_only_to_models_that_edit_by_instruction(gen):
    request = GenerateRequest(prompt="make the sky stormy", init_image=png(), edit=True)
    decision = gen.route(request, policy=RoutePolicy(strategy="cost"))
    chosen = {c.card.id for c in decision.candidates}
    editors = {c.id for c in cloud_cards() if c.capabilities.edit}
    assert chosen and chosen <= editors
    assert FLUX + "flux-kontext-pro" in chosen and R + "qwen/qwen-image-edit" in chosen
    reasons = {e.card.id: e.reason for e in decision.excluded}
    assert "does not edit by instruction" in reasons[FLUX + "flux-dev"]  # img2img, not an edit
    assert "does not edit by instruction" in reasons[R + "google/imagen-4"]


def test_img2img_and_an_open_init_image_differ_in_what_they_accept(gen):
    img2img = gen.route(GenerateRequest(prompt="a red barn", init_image=png(), edit=False,
                                        denoising_strength=0.6))
    assert all(c.card.capabilities.img2img for c in img2img.candidates)
    assert FLUX + "flux-kontext-pro" in {e.card.id for e in img2img.excluded}
    either = gen.route(GenerateRequest(prompt="a red barn", init_image=png()),
                       policy=RoutePolicy(strategy="quality"))
    ids = {c.card.id for c in either.candidates}
    assert FLUX + "flux-dev" in ids and FLUX + "flux-kontext-pro" in ids
    kontext = next(c for c in either.candidates if c.card.id == FLUX + "flux-kontext-pro")
    assert any("edited by instruction" in w for w in kontext.prepared.warnings)


def test_reference_images_route_only_to_models_that_take_that_many(gen):
    request = GenerateRequest(prompt="the cat from image 1 on the sofa from image 2",
                              reference_images=[png()] * 6)
    decision = gen.route(request, policy=RoutePolicy(strategy="cost"))
    for candidate in decision.candidates:
        assert candidate.card.capabilities.max_reference_images >= 6
    ids = {c.card.id for c in decision.candidates}
    assert FLUX + "flux-2-pro" in ids and R + "google/nano-banana-pro" in ids
    reasons = {e.card.id: e.reason for e in decision.excluded}
    assert "at most 5 reference images (got 6)" in reasons[FLUX + "flux-2-klein-4b"]
    assert "takes no reference images" in reasons[FLUX + "flux-schnell"]


def test_an_init_image_counts_against_a_shared_image_list(gen):
    """FLUX.2 [dev] takes 4 images in one list: an edit with 4 references is one too many."""
    request = GenerateRequest(prompt="put image 2 into image 1", init_image=png(),
                              reference_images=[png()] * 4, edit=True)
    reasons = {e.card.id: e.reason for e in gen.route(request).excluded}
    assert "at most 4 input image(s) in input_images" in reasons[FLUX + "flux-2-dev"]


def test_an_edit_only_model_is_not_offered_for_text_to_image(gen):
    reasons = {e.card.id: e.reason for e in gen.route(GenerateRequest(prompt="a fox")).excluded}
    assert "needs an image to edit" in reasons[FLUX + "flux-kontext-dev"]
    assert "needs an image to edit" in reasons[R + "qwen/qwen-image-edit"]


def test_a_fixed_seed_leaves_out_the_models_without_one(gen):
    decision = gen.route(GenerateRequest(prompt="a fox", seed=5), policy=RoutePolicy(strategy="quality"))
    assert all(c.card.capabilities.seed for c in decision.candidates)
    assert "does not honour a fixed seed" in {e.card.id: e.reason for e in decision.excluded}[R + "google/imagen-4"]


# -- strategies over the shipped table --------------------------------------------------------


def test_quality_picks_the_highest_rated_capable_model(gen):
    cards = cloud_cards()
    text = gen.route(GenerateRequest(prompt="a lighthouse"), policy=RoutePolicy(strategy="quality"))
    assert text.chosen.id == best_rated(cards, lambda c: c.capabilities.txt2img)
    edit = gen.route(GenerateRequest(prompt="make it night", init_image=png(), edit=True),
                     policy=RoutePolicy(strategy="quality"))
    assert edit.chosen.id == best_rated(cards, lambda c: c.capabilities.edit)
    seeded = gen.route(GenerateRequest(prompt="a lighthouse", seed=1), policy=RoutePolicy(strategy="quality"))
    assert seeded.chosen.id == best_rated(cards, lambda c: c.capabilities.seed and c.capabilities.txt2img)
    assert seeded.chosen.id != text.chosen.id  # the best-rated model has no seed input


def test_cost_prices_each_card_in_its_own_units(gen):
    decision = gen.route(GenerateRequest(prompt="a lighthouse"), policy=RoutePolicy(strategy="cost"))
    costs = {c.card.id: c.cost_usd for c in decision.candidates}
    assert decision.chosen.id == FLUX + "flux-2-klein-4b"  # $0.001 per output megapixel
    assert costs[FLUX + "flux-2-pro"] == pytest.approx(0.03)  # $0.015/run + 1 MP x $0.015
    assert costs[FLUX + "flux-2-max"] == pytest.approx(0.07)  # $0.04/run + 1 MP x $0.03
    assert costs[R + "google/nano-banana-pro"] == pytest.approx(0.15)  # 2K default tier
    assert costs[R + "openai/gpt-image-1.5"] == pytest.approx(0.136)  # quality auto = high
    assert costs[FLUX + "flux-schnell"] == pytest.approx(0.003)


def test_the_readme_router_example_routes(gen):
    policy = RoutePolicy(strategy="balanced", max_cost_per_image=0.03, min_elo=1000)
    decision = gen.route(GenerateRequest(prompt="a lighthouse at dusk"), policy=policy)
    for candidate in decision.candidates:
        assert candidate.cost_usd <= 0.03 + 1e-9 and candidate.elo >= 1000
    assert {c.card.id for c in decision.candidates} == {FLUX + "flux-2-pro", R + "bytedance/seedream-4"}
    assert any("Elo unknown" in e.reason for e in decision.excluded)
    assert any("over max_cost_per_image" in e.reason for e in decision.excluded)


def test_the_readme_router_section_example_routes(gen):
    request = GenerateRequest(prompt="a fox in the snow", width=1024, height=1024)
    policy = RoutePolicy(strategy="balanced", max_cost_per_image=0.05, min_elo=1000)
    decision = gen.route(request, policy=policy)
    assert len(decision.candidates) >= 3
    for candidate in decision.candidates:
        assert candidate.cost_usd <= 0.05 + 1e-9 and candidate.elo >= 1000
    assert "chose " in decision.explain()


def test_elo_is_ranked_only_on_the_stated_scale():
    catalog = load_catalog()
    scale = catalog.elo_snapshot
    for card in cloud_cards():
        elo = card.elo
        if elo.value is None:
            continue
        assert elo.arena == scale["board"].replace(" Arena", "").replace("Text-to-Image", "text-to-image")
        on_scale = elo.date == scale["date"] and elo.offset == 0 and elo.measured is None
        offset_applied = elo.measured is not None and elo.value == elo.measured + elo.offset and elo.offset_basis
        assert on_scale or offset_applied, card.id
    # LMArena and AA editing figures are kept, but never routed on
    banana = load_catalog().card(R + "google/nano-banana-2")
    assert {r.arena for r in banana.elo.others} >= {"LMArena text-to-image", "Artificial Analysis image editing"}
    assert banana.elo.value == 1254 and banana.elo.date == "2026-07-20"


def test_unknown_elo_is_excluded_by_min_elo_with_a_reason(gen):
    decision = gen.route(GenerateRequest(prompt="x"), policy=RoutePolicy(min_elo=1100))
    reasons = {e.card.id: e.reason for e in decision.excluded}
    assert "Elo unknown" in reasons[FLUX + "flux-schnell"]
    assert "under min_elo" in reasons[R + "recraft-ai/recraft-v3"]  # 1136 - 53 on the 2026-07 scale


# -- the user's own table ------------------------------------------------------------------------


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


def test_a_user_table_under_home_changes_how_cards_are_routed(tmp_path):
    (tmp_path / "catalog.json").write_text(json.dumps({"cards": [
        {"id": FLUX + "flux-dev", "price": {"per_image": 0.0001, "source": "my negotiated price"},
         "elo": {"value": 1400, "source": "my own table", "date": "2026-11"}}]}))
    router = Router(home=tmp_path)
    request = GenerateRequest(prompt="x")
    for strategy in ("cost", "quality"):
        decision = router.decide(request, cloud_cards(), {"replicate": Generic()}, RoutePolicy(strategy=strategy))
        assert decision.chosen.id == FLUX + "flux-dev"
        assert decision.chosen.price.source == "my negotiated price"
    elsewhere = Router(home=tmp_path / "elsewhere").decide(request, cloud_cards(), {"replicate": Generic()},
                                                           RoutePolicy(strategy="quality"))
    assert elsewhere.chosen.id == best_rated(cloud_cards(), lambda c: c.capabilities.txt2img)


def test_no_route_names_every_reason(gen):
    with pytest.raises(NoRouteError) as caught:
        gen.route(GenerateRequest(prompt="x", reference_images=[png()] * 16, seed=3))
    assert "reference images" in str(caught.value)
