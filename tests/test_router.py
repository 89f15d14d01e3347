"""Router decisions on a fixed catalog: every strategy, every constraint, request needs, the demo
card, Elo sources, ties, cooldown and learned latency."""

import random

import pytest
from imagegen.providers.base import BaseProvider
from pydantic import ValidationError

from imagegen import GenerateRequest, ModelCard, NoRouteError, Price
from imagegen.catalog import Capabilities, CatalogData, Elo
from imagegen.router import DEMO_NOTICE, RoutePolicy, Router


class TableProvider(BaseProvider):
    """Serves a fixed list of cards; capability checks and cost come from BaseProvider."""

    def __init__(self, name, cards):
        super().__init__()
        self.name = name
        self.cards = cards

    def models(self):
        return self.cards


def card(cid, price=0.0, elo=None, latency=1.0, kind="catalog", family="", **caps):
    provider = cid.split(":")[0]
    return ModelCard(id=cid, provider=provider, family=family, price=Price(per_image=price),
                     elo=Elo(value=elo, source="test table", date="2026-01"), latency_s=latency,
                     kind=kind, capabilities=Capabilities(**caps))


CARDS = [
    card("cloud:cheap", 0.003, None, 1.0, max_images_per_call=4),
    card("cloud:mid", 0.025, 1100, 3.0, lora=True, img2img=True, max_images_per_call=4),
    card("cloud:best", 0.060, 1200, 10.0),
    card("cloud:fast-dear", 0.050, 1050, 0.5),
    card("local:sdxl", 0.0, None, 20.0, family="sdxl", negative_prompt=True, lora=True, img2img=True,
         max_images_per_call=8),
    card("local:demo", 0.0, None, 0.2, kind="builtin", family="demo", max_images_per_call=8),
]
PROVIDERS = {"cloud": TableProvider("cloud", CARDS[:4]), "local": TableProvider("local", CARDS[4:])}


def decide(policy=None, request=None, cards=CARDS, router=None, **policy_fields):
    policy = policy or RoutePolicy(**policy_fields)
    request = request or GenerateRequest(prompt="a lighthouse at dusk")
    return (router or Router(catalog=CatalogData())).decide(request, cards, PROVIDERS, policy)


def ids(decision):
    return [c.card.id for c in decision.candidates]


def reasons(decision):
    return {e.card.id: e.reason for e in decision.excluded}


# -- strategies ----------------------------------------------------------------------------


def test_cost_picks_the_cheapest_estimated_usd_per_image():
    decision = decide(strategy="cost")
    assert ids(decision) == ["local:sdxl", "cloud:cheap", "cloud:mid", "cloud:fast-dear", "cloud:best",
                             "local:demo"]
    assert decision.candidates[1].cost_usd == pytest.approx(0.003)


def test_cost_compares_per_image_price_for_batches():
    decision = decide(strategy="cost", providers=["cloud"], request=GenerateRequest(prompt="x", batch_count=3))
    assert decision.chosen.id == "cloud:cheap"
    assert decision.candidates[0].cost_usd == pytest.approx(0.009)


def test_quality_picks_the_highest_elo_and_ranks_unrated_cards_after_rated_ones():
    decision = decide(strategy="quality")
    assert ids(decision)[:3] == ["cloud:best", "cloud:mid", "cloud:fast-dear"]
    # unrated: cheaper first, the demo card last
    assert ids(decision)[3:] == ["local:sdxl", "cloud:cheap", "local:demo"]
    assert any("no known Elo" in n and "unknown_elo='last'" in n for n in decision.notices)


def test_speed_picks_the_lowest_expected_latency():
    decision = decide(strategy="speed")
    assert ids(decision) == ["cloud:fast-dear", "cloud:cheap", "cloud:mid", "cloud:best", "local:sdxl",
                             "local:demo"]


def test_balanced_with_a_single_weight_reduces_to_that_strategy():
    assert decide(strategy="balanced", weights={"cost": 1}).chosen.id == "local:sdxl"
    assert decide(strategy="balanced", weights={"speed": 1}).chosen.id == "cloud:fast-dear"
    assert decide(strategy="balanced", weights={"quality": 1}).chosen.id == "cloud:best"


def test_balanced_utility_matches_the_documented_formula():
    weights = {"quality": 0.5, "cost": 0.3, "speed": 0.2}
    decision = decide(strategy="balanced", weights=weights, providers=["cloud"])
    costs = {"cloud:cheap": 0.003, "cloud:mid": 0.025, "cloud:best": 0.06, "cloud:fast-dear": 0.05}
    latency = {"cloud:cheap": 1.0, "cloud:mid": 3.0, "cloud:best": 10.0, "cloud:fast-dear": 0.5}
    elo = {"cloud:mid": 1100, "cloud:best": 1200, "cloud:fast-dear": 1050}

    def utility(cid):
        quality = 2 / (1 + 10 ** ((1200 - elo[cid]) / 400)) if cid in elo else 0.0
        cost = (0.06 - costs[cid]) / (0.06 - 0.003)
        speed = (10.0 - latency[cid]) / (10.0 - 0.5)
        return 0.5 * quality + 0.3 * cost + 0.2 * speed

    expected = sorted(costs, key=lambda cid: -utility(cid))
    assert ids(decision) == expected
    for candidate in decision.candidates:
        assert candidate.score == pytest.approx(utility(candidate.card.id))


def test_weights_are_validated_by_name():
    with pytest.raises(ValidationError, match="unknown weight 'beauty'"):
        RoutePolicy(strategy="balanced", weights={"beauty": 1})
    with pytest.raises(ValidationError, match="at least one weight"):
        RoutePolicy(weights={"cost": 0})


# -- constraints -----------------------------------------------------------------------------


def test_max_cost_per_image_excludes_dearer_cards_with_the_price_in_the_reason():
    decision = decide(strategy="quality", max_cost_per_image=0.03)
    assert decision.chosen.id == "cloud:mid"
    assert "max_cost_per_image" in reasons(decision)["cloud:best"]
    assert "$0.0600 per image" in reasons(decision)["cloud:best"]


def test_max_latency_counts_every_image_of_the_request():
    one = decide(strategy="quality", max_latency_s=5)
    assert "cloud:best" in reasons(one) and "cloud:mid" in ids(one)
    two = decide(strategy="quality", max_latency_s=5, request=GenerateRequest(prompt="x", batch_count=2))
    assert "expected 6.0 s is over max_latency_s 5 s" == reasons(two)["cloud:mid"]


def test_min_elo_excludes_lower_and_unrated_cards():
    decision = decide(strategy="cost", min_elo=1080)
    assert ids(decision) == ["cloud:mid", "cloud:best"]
    assert "under min_elo" in reasons(decision)["cloud:fast-dear"]
    assert "Elo unknown" in reasons(decision)["cloud:cheap"]


def test_provider_allow_list_and_deny_list():
    allowed = decide(providers=["local"])
    assert set(ids(allowed)) == {"local:sdxl", "local:demo"}
    assert "not in the allowed providers" in reasons(allowed)["cloud:mid"]
    denied = decide(exclude=["local", "cloud:cheap"])
    assert ids(denied)[0] == "cloud:mid"
    assert reasons(denied)["cloud:cheap"] == reasons(denied)["local:sdxl"] == "excluded by policy (exclude)"


def test_local_only():
    decision = decide(strategy="quality", local_only=True)
    assert ids(decision) == ["local:sdxl", "local:demo"]
    assert all(r == "local_only is set" for cid, r in reasons(decision).items())


def test_unknown_elo_exclude_and_a_numeric_prior():
    excluded = decide(strategy="quality", unknown_elo="exclude")
    assert ids(excluded) == ["cloud:best", "cloud:mid", "cloud:fast-dear"]
    assert reasons(excluded)["cloud:cheap"] == "Elo unknown (unknown_elo='exclude')"
    prior = decide(strategy="quality", unknown_elo=1300)
    assert ids(prior)[:2] == ["local:sdxl", "cloud:cheap"]  # both 1300: the cheaper first
    assert prior.candidates[0].elo_note == "your unknown_elo prior"


# -- what the request needs ------------------------------------------------------------------


def test_request_needs_filter_first_with_the_providers_reason():
    decision = decide(request=GenerateRequest(prompt="x", loras=[{"name": "style", "weight": 0.8}]))
    assert set(ids(decision)) == {"cloud:mid", "local:sdxl"}
    assert reasons(decision)["cloud:cheap"] == "does not load LoRAs"


def test_img2img_and_a_fixed_seed_need_models_that_honour_them():
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    img2img = decide(request=GenerateRequest(prompt="x", init_image=buffer.getvalue()))
    assert set(ids(img2img)) == {"cloud:mid", "local:sdxl"}
    assert "img2img" in reasons(img2img)["cloud:best"]
    unseeded = card("cloud:unseeded", 0.0001, seed=False)
    seeded = decide(cards=CARDS + [unseeded], request=GenerateRequest(prompt="x", seed=7))
    assert reasons(seeded)["cloud:unseeded"] == "does not honour a fixed seed"
    assert ids(decide(cards=CARDS + [unseeded], providers=["cloud"]))[0] == "cloud:unseeded"  # random seed: fine


def test_a_required_negative_prompt_excludes_models_that_would_drop_it():
    request = GenerateRequest(prompt="x", negative_prompt="text, watermark")
    soft = decide(request=request, providers=["cloud"])
    assert "negative_prompt ignored" in soft.candidates[0].warnings[0]
    hard = decide(request=request, require_negative_prompt=True)
    assert ids(hard) == ["local:sdxl"]
    assert "require_negative_prompt" in reasons(hard)["cloud:cheap"]


def test_a_provider_that_is_not_installed_is_named():
    stray = card("ghost:model", 0.0)
    decision = decide(cards=CARDS + [stray])
    assert reasons(decision)["ghost:model"] == "provider 'ghost' is not installed"


def test_no_route_lists_every_reason():
    with pytest.raises(NoRouteError) as info:
        decide(local_only=True, min_elo=1000)
    assert {cid for cid, _ in info.value.excluded} == {c.id for c in CARDS}
    assert "local_only is set" in str(info.value)


# -- the demo card -----------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["cost", "quality", "speed", "balanced"])
def test_the_demo_card_ranks_after_every_other_capable_card(strategy):
    decision = decide(strategy=strategy)
    assert ids(decision)[-1] == "local:demo"
    assert DEMO_NOTICE not in decision.notices


def test_the_demo_card_serves_when_nothing_else_can_with_a_notice():
    demo = decide(exclude=["cloud", "local:sdxl"])
    assert demo.chosen.id == "local:demo"
    assert DEMO_NOTICE in demo.notices and DEMO_NOTICE in demo.candidates[0].warnings
    assert f"note: {DEMO_NOTICE}" in demo.explain()


# -- explanations and determinism -------------------------------------------------------------


def test_explain_names_the_choice_the_strategy_and_every_exclusion():
    text = decide(strategy="quality", max_cost_per_image=0.03).explain()
    assert text.splitlines()[0] == "chose cloud:mid by quality (highest Elo)"
    assert "excluded cloud:best: estimated $0.0600 per image is over max_cost_per_image $0.0300" in text
    assert "Elo 1100 (shipped, 2026-01)" in text


def test_ties_are_broken_by_card_id_whatever_the_input_order():
    twins = [card("cloud:b-twin", 0.01, 1000, 2.0), card("cloud:a-twin", 0.01, 1000, 2.0)]
    expected = ["cloud:a-twin", "cloud:b-twin"]
    for strategy in ("cost", "quality", "speed", "balanced"):
        for seed in range(3):
            shuffled = twins[:]
            random.Random(seed).shuffle(shuffled)
            assert ids(decide(strategy=strategy, cards=shuffled)) == expected


# -- Elo sources -------------------------------------------------------------------------------


def test_local_family_prior_comes_from_the_catalog():
    priors = CatalogData(local_elo_priors={"sdxl": Elo(value=1150, source="my own guess", date="2026-11")})
    decision = decide(strategy="quality", router=Router(catalog=priors))
    assert ids(decision)[:2] == ["cloud:best", "local:sdxl"]
    assert decision.candidates[1].elo_note == "sdxl prior, 2026-11"


def test_user_ratings_replace_the_shipped_table():
    router = Router(catalog=CatalogData(), user_ratings={"cloud:cheap": (1300.0, 40), "cloud:mid": (900.0, 40)})
    decision = decide(strategy="quality", elo_source="user", router=router)
    assert ids(decision)[:2] == ["cloud:cheap", "cloud:mid"]
    assert decision.candidates[0].elo_note == "your votes, 40 games"
    assert decision.candidates[2].elo is None  # not voted on: unknown under "user"


def test_blend_shifts_user_ratings_onto_the_shipped_scale_and_weights_by_votes():
    # user scale sits 100 below the shipped one on the two cards both rate
    user = {"cloud:mid": (1000.0, 30), "cloud:best": (1100.0, 30), "cloud:cheap": (1150.0, 30)}
    router = Router(catalog=CatalogData(), user_ratings=user)
    decision = decide(strategy="quality", elo_source="blend", blend_votes=30, router=router)
    by_id = {c.card.id: c.elo for c in decision.candidates}
    assert by_id["cloud:mid"] == pytest.approx(1100)  # agreement stays put
    assert by_id["cloud:cheap"] == pytest.approx(1250)  # only user-rated: shifted by +100
    assert by_id["cloud:fast-dear"] == pytest.approx(1050)  # only shipped
    assert ids(decision)[0] == "cloud:cheap"


def test_user_ratings_are_read_from_the_arena_under_home(tmp_path):
    from imagegen.arena import record_vote
    from imagegen.arena._router_ratings import ArenaRatings

    router = Router(catalog=CatalogData(), home=tmp_path, user_ratings=ArenaRatings(tmp_path))
    assert router.user_ratings == {}  # no arena file yet
    for _ in range(6):
        record_vote("a cat", "cloud:cheap", "cloud:best", "a", home=tmp_path)
    decision = decide(strategy="quality", elo_source="user", providers=["cloud"], router=router)
    assert ids(decision)[:2] == ["cloud:cheap", "cloud:best"]
    for _ in range(20):  # new votes are seen without restarting
        record_vote("a cat", "cloud:cheap", "cloud:best", "b", home=tmp_path)
    decision = decide(strategy="quality", elo_source="user", providers=["cloud"], router=router)
    assert ids(decision)[:2] == ["cloud:best", "cloud:cheap"]


# -- health and learned latency ------------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_card_cools_down_after_repeated_failures_and_comes_back():
    clock = Clock()
    router = Router(catalog=CatalogData(), clock=clock, failure_threshold=3, cooldown_s=60)
    cheap = CARDS[0]
    for _ in range(2):
        router.record_failure(cheap)
    assert ids(decide(router=router, providers=["cloud"]))[0] == "cloud:cheap"  # two is not enough
    router.record_failure(cheap)
    cooled = decide(router=router, providers=["cloud"])
    assert ids(cooled)[-1] == "cloud:cheap"
    assert "failed 3 times in a row (back in 60 s)" in cooled.candidates[-1].warnings[-1]
    clock.now += 61
    assert ids(decide(router=router, providers=["cloud"]))[0] == "cloud:cheap"
    router.record_failure(cheap)  # still on a streak: cooled again at once, from now
    clock.now += 59
    assert ids(decide(router=router, providers=["cloud"]))[-1] == "cloud:cheap"
    router.record_success(cheap, 1.0)
    assert ids(decide(router=router, providers=["cloud"]))[0] == "cloud:cheap"


def test_a_provider_that_keeps_failing_cools_down_as_a_whole():
    clock = Clock()
    router = Router(catalog=CatalogData(), clock=clock, failure_threshold=3)
    for c in CARDS[:3]:  # three different cloud cards, one failure each
        router.record_failure(c)
    decision = decide(strategy="speed", router=router)
    assert ids(decision) == ["local:sdxl", "cloud:fast-dear", "cloud:cheap", "cloud:mid", "cloud:best",
                             "local:demo"]
    cloud_warnings = [c.warnings for c in decision.candidates if c.card.provider == "cloud"]
    assert all(any("provider 'cloud' failed 3 times" in w for w in ws) for ws in cloud_warnings)


def test_speed_follows_observed_latency():
    router = Router(catalog=CatalogData(), latency_alpha=0.5)
    assert decide(strategy="speed", router=router, providers=["cloud"]).chosen.id == "cloud:fast-dear"
    router.record_success(CARDS[3], 4.0)  # the first observation replaces the shipped 0.5 s
    decision = decide(strategy="speed", router=router, providers=["cloud"])
    assert ids(decision)[:3] == ["cloud:cheap", "cloud:mid", "cloud:fast-dear"]
    router.record_success(CARDS[3], 0.0)  # EWMA: 4.0 + 0.5 * (0 - 4.0) = 2.0
    decision = decide(strategy="speed", router=router, providers=["cloud"])
    assert decision.candidates[1].card.id == "cloud:fast-dear"
    assert decision.candidates[1].latency_s == pytest.approx(2.0)


def test_health_state_can_be_shown():
    clock = Clock()
    router = Router(catalog=CatalogData(), clock=clock, failure_threshold=1, cooldown_s=10)
    router.record_failure(CARDS[0])
    router.record_success(CARDS[1], 2.5)
    clock.now += 4
    state = router.health.snapshot()
    assert state["cloud:cheap"] == {"failures": 1, "cooldown_left_s": 6.0}
    assert state["cloud:mid"] == {"latency_s": 2.5, "observations": 1}
