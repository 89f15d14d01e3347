"""How sure the arena is: effective votes (information), the 'enough votes' threshold, the pair
the page picks, the win matrix, the confidence-weighted router blend, the gallery store and the
CLI hooks (`generate --record`, `arena serve`)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from imagegen import cli
from imagegen.arena import (
    ENOUGH_VOTES,
    Arena,
    UserRating,
    blend_weight,
    information,
    least_sure_pair,
    standard_error,
    win_matrix,
)
from imagegen.arena._router_ratings import ArenaRatings
from imagegen.catalog import CatalogData
from imagegen.router import RoutePolicy, Router


def test_an_even_vote_is_one_effective_vote_and_a_lopsided_one_less():
    even = [("a", "b", 1.0), ("a", "b", 0.0)] * 10
    info = information(even)
    assert info["a"] == pytest.approx(20.0) and info["b"] == pytest.approx(20.0)
    lopsided = [("a", "b", 1.0)] * 19 + [("a", "b", 0.0)]
    assert 0 < information(lopsided)["a"] < 20 * 0.5


def test_enough_votes_is_where_the_interval_falls_under_100_elo():
    assert 1.96 * standard_error(ENOUGH_VOTES) <= 100 < 1.96 * standard_error(ENOUGH_VOTES - 1)
    assert standard_error(0) == math.inf


def test_the_analytic_error_matches_the_bootstrap_spread_of_a_gap():
    """standard_error(n) is the error of a model's gap to an opponent: check it against the
    bootstrap spread of that gap."""
    import random

    from imagegen.arena import bootstrap, bradley_terry

    rng = random.Random(4)
    battles = [("a", "b", float(rng.random() < 0.5)) for _ in range(200)]

    def gap(sample):
        fitted = bradley_terry(sample, prior_games=0)
        return {"gap": fitted["a"] - fitted["b"]}

    low, _, high = bootstrap(battles, gap, rounds=300, seed=1)["gap"]
    assert (high - low) / 2 == pytest.approx(1.96 * standard_error(information(battles)["a"]), rel=0.15)


def test_blend_weight_is_a_half_at_blend_votes():
    assert blend_weight(30, 30) == pytest.approx(0.5)
    assert blend_weight(0) == 0 and blend_weight(1e9) == pytest.approx(1.0)


def test_the_least_sure_pair_has_the_widest_intervals_and_respects_fits():
    battles = [("a", "b", 1.0), ("a", "b", 0.0)] * 40 + [("a", "c", 1.0), ("a", "c", 0.0)]
    assert least_sure_pair(["a", "b", "c", "d"], battles) in (("b", "d"), ("c", "d"))
    assert least_sure_pair(["a", "b", "c"], battles) == ("b", "c")
    assert least_sure_pair(["a", "b", "c"], battles, fits=lambda x, y: "c" not in (x, y)) == ("a", "b")
    assert least_sure_pair(["a", "b"], battles, fits=lambda x, y: False) is None
    assert least_sure_pair(["a"], battles) is None


def test_a_sure_win_teaches_less_than_an_open_question():
    # equal numbers of votes, but a always beats b while c and d are level
    battles = [("a", "b", 1.0)] * 20 + [("c", "d", 1.0), ("c", "d", 0.0)] * 10
    assert least_sure_pair(["a", "b", "c", "d"], battles, fits=lambda x, y: {x, y} in ({"a", "b"}, {"c", "d"})) \
        == ("c", "d")


def test_win_matrix_counts_both_directions():
    m = win_matrix([("a", "b", 1.0), ("b", "a", 0.5), ("a", "b", 0.0)])
    assert m[("a", "b")] == (1.5, 3) and m[("b", "a")] == (1.5, 3)


def test_ratings_for_router_carry_effective_votes_and_still_unpack_as_pairs(tmp_path):
    arena = Arena.at_home(tmp_path)
    for i in range(10):
        arena.record_vote("p", "x", "y", "a" if i % 2 else "b")
    ratings = arena.ratings_for_router()
    rating, games = ratings["x"]
    assert games == 10 and isinstance(ratings["x"], UserRating)
    assert ratings["x"].effective_games == pytest.approx(10.0, rel=0.05)


def _card(card_id, elo):
    from imagegen.catalog import Elo, ModelCard

    return ModelCard(id=card_id, provider="cloud", family="x", elo=Elo(value=elo, source="t", date="2026"))


def test_blend_weights_your_rating_by_its_confidence(tmp_path):
    """Same number of votes, but lopsided ones carry less information: less weight in the blend."""
    close, lopsided = tmp_path / "close", tmp_path / "lopsided"
    for i in range(40):
        Arena.at_home(close).record_vote("p", "cloud:a", "cloud:b", "a" if i % 5 else "b")  # 80 % wins
        Arena.at_home(lopsided).record_vote("p", "cloud:a", "cloud:b", "a")  # 100 % wins
    cards = [_card("cloud:a", 1000.0), _card("cloud:b", 1000.0)]
    policy = RoutePolicy(strategy="quality", elo_source="blend")
    weights = {}
    for name, home in (("close", close), ("lopsided", lopsided)):
        router = Router(catalog=CatalogData(), home=home, user_ratings=ArenaRatings(home))
        value, note = router._elo_resolver(policy, cards)(cards[0])
        user = router.user_ratings["cloud:a"]
        weights[name] = float(note.rsplit("weight ", 1)[1].rstrip(")"))
        assert weights[name] == pytest.approx(blend_weight(user.effective_games, policy.blend_votes), abs=0.01)
        assert "effective" in note and user.games == 40
    assert weights["lopsided"] < weights["close"]


def test_the_gallery_keeps_bytes_by_id_with_seed_and_cost_share(tmp_path):
    from PIL import Image

    from imagegen import GenerateRequest
    from imagegen.result import GeneratedImage, GenerateResult

    request = GenerateRequest(prompt="a cat", seed=9, batch_size=2, model="cloud:a")
    images = [GeneratedImage.from_pil(Image.new("RGB", (8, 8), (i * 90, 0, 0)), seed=9 + i, infotext=f"a cat\nSeed: {9 + i}")
              for i in range(2)]
    result = GenerateResult(images=images, provider="cloud", model="cloud:a", cost_usd=0.10)
    arena = Arena.at_home(tmp_path)
    stored = arena.record_result(request, result)
    assert [s.seed for s in stored] == [9, 10] and all(s.cost_usd == pytest.approx(0.05) for s in stored)
    assert stored[1].request["seed"] == 10 and "batch_size" not in stored[1].request
    assert arena.image_bytes(stored[1].id) == (images[1].data, "png")
    assert [g.id for g in arena.gallery()] == [stored[1].id, stored[0].id]
    assert arena.image("../" + stored[0].id) is None and arena.image_bytes("x" * 16) is None


class _Client:
    def __init__(self, home):
        self.settings = SimpleNamespace(home=home)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def test_generate_record_puts_the_images_in_the_gallery(tmp_path, monkeypatch):
    from PIL import Image

    from imagegen.result import GeneratedImage, GenerateResult

    home = tmp_path / "home"
    monkeypatch.setattr(cli, "make_client", lambda *args, **kwargs: _Client(home))

    def fake_generate(gen, request):
        image = GeneratedImage.from_pil(Image.new("RGB", (8, 8)), seed=request.seed, infotext=f"{request.prompt}")
        return GenerateResult(images=[image], provider="cloud", model="cloud:a", cost_usd=0.01)

    monkeypatch.setattr(cli, "_generate_with_progress", fake_generate)
    runner = CliRunner()
    assert runner.invoke(cli.app, ["generate", "a dog --seed 3", "-o", str(tmp_path / "a")]).exit_code == 0
    assert Arena.at_home(home).gallery() == []
    result = runner.invoke(cli.app, ["generate", "a dog --seed 3", "--record", "-o", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    (image,) = Arena.at_home(home).gallery()
    assert (image.prompt, image.seed, image.model, image.source) == ("a dog", 3, "cloud:a", "cli")


def test_arena_serve_refuses_a_non_loopback_host_without_allow_remote():
    result = CliRunner().invoke(cli.app, ["arena", "serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "--allow-remote" in result.output
    from imagegen.arena._cli import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("127.0.0.2") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2") and not is_loopback("example.com")
