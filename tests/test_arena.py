"""Your own Elo: votes in SQLite, online Elo and Bradley–Terry recover known strengths, with
bootstrap intervals that cover them."""

import math
import random
import sqlite3

import pytest

from imagegen.arena import (
    Arena,
    VoteError,
    bootstrap,
    bradley_terry,
    expected_score,
    online_elo,
    rate,
    ratings,
    record_vote,
)
from imagegen.errors import ImageGenError

TRUE = {"flux-pro": 1250.0, "flux-dev": 1120.0, "sdxl": 1000.0, "sd15": 880.0, "demo": 700.0}


def synthetic_votes(n, seed=0, tie_rate=0.0):
    """Battles between random pairs, won with the Elo probability of the true ratings."""
    rng = random.Random(seed)
    models = sorted(TRUE)
    battles = []
    for _ in range(n):
        a, b = rng.sample(models, 2)
        if rng.random() < tie_rate:
            battles.append((a, b, 0.5))
        else:
            battles.append((a, b, 1.0 if rng.random() < expected_score(TRUE[a], TRUE[b]) else 0.0))
    return battles


def true_order():
    return sorted(TRUE, key=lambda m: -TRUE[m])


def test_expected_score_matches_the_arena_table():
    # router_grammar C.4: gap 100 -> 64.0 %, 200 -> 76.0 %, 300 -> 84.9 %
    assert expected_score(1100, 1000) == pytest.approx(0.640, abs=5e-4)
    assert expected_score(1200, 1000) == pytest.approx(0.760, abs=5e-4)
    assert expected_score(1300, 1000) == pytest.approx(0.849, abs=5e-4)


def test_online_elo_follows_the_update_rule_in_order():
    ratings = online_elo([("a", "b", 1.0), ("a", "b", 0.5)], k=32)
    # first: both 1000, E = 0.5 -> a 1016, b 984; second: E_a = 1/(1+10^(-32/400))
    e_a = 1 / (1 + 10 ** (-32 / 400))
    assert ratings["a"] == pytest.approx(1016 + 32 * (0.5 - e_a))
    assert ratings["b"] == pytest.approx(984 - 32 * (0.5 - e_a))


def test_bradley_terry_recovers_the_true_order_and_gaps():
    fitted = bradley_terry(synthetic_votes(3000, seed=1))
    assert sorted(fitted, key=lambda m: -fitted[m]) == true_order()
    # differences, not levels, are identified by the votes
    mean_fit = sum(fitted.values()) / len(fitted)
    mean_true = sum(TRUE.values()) / len(TRUE)
    for model, value in fitted.items():
        assert value - mean_fit == pytest.approx(TRUE[model] - mean_true, abs=45)


def test_online_elo_recovers_the_true_order():
    fitted = online_elo(synthetic_votes(4000, seed=2), k=8)
    assert sorted(fitted, key=lambda m: -fitted[m]) == true_order()


def test_bradley_terry_is_the_maximum_of_the_likelihood():
    battles = synthetic_votes(600, seed=3, tie_rate=0.1)
    fitted = bradley_terry(battles, prior_games=0, tol=1e-12)

    def log_likelihood(r):
        return sum(s * math.log(expected_score(r[a], r[b])) + (1 - s) * math.log(expected_score(r[b], r[a]))
                   for a, b, s in battles)

    best = log_likelihood(fitted)
    for model in fitted:  # nudging any rating either way only lowers the likelihood
        for step in (-2.0, 2.0):
            assert log_likelihood({**fitted, model: fitted[model] + step}) < best
    # the gradient vanishes: observed wins equal expected wins for every model
    for model in fitted:
        observed = sum(s if a == model else 1 - s for a, b, s in battles if model in (a, b))
        expected = sum(expected_score(fitted[a], fitted[b]) if a == model else expected_score(fitted[b], fitted[a])
                       for a, b, s in battles if model in (a, b))
        assert observed == pytest.approx(expected, abs=1e-6)


def test_a_model_that_never_won_stays_finite():
    fitted = bradley_terry([("a", "b", 1.0)] * 10)
    assert all(math.isfinite(v) for v in fitted.values()) and fitted["a"] > fitted["b"]


def test_bootstrap_intervals_cover_the_truth_and_shrink_with_more_votes():
    def width(n):
        intervals = bootstrap(synthetic_votes(n, seed=4), bradley_terry, rounds=60, seed=0)
        return sum(hi - lo for lo, _, hi in intervals.values()) / len(intervals), intervals

    small, _ = width(300)
    large, intervals = width(2400)
    assert large < small * 0.7
    centred = {m: mid for m, (_, mid, _) in intervals.items()}
    shift = sum(TRUE.values()) / len(TRUE) - sum(centred.values()) / len(centred)
    covered = sum(lo + shift <= TRUE[m] <= hi + shift for m, (lo, _, hi) in intervals.items())
    assert covered >= 4


def test_votes_persist_in_sqlite_under_home(tmp_path):
    record_vote("a fox", "flux-pro", "sdxl", "a", image_a="a.png", image_b="b.png", home=tmp_path)
    record_vote("a fox", "flux-pro", "sdxl", "sdxl", home=tmp_path)  # the winner given by model id
    record_vote("a fox", "sdxl", "sd15", "tie", home=tmp_path)
    assert (tmp_path / "arena.sqlite").is_file()
    votes = Arena.at_home(tmp_path).votes()
    assert [(v.model_a, v.model_b, v.winner) for v in votes] == [
        ("flux-pro", "sdxl", "a"), ("flux-pro", "sdxl", "b"), ("sdxl", "sd15", "tie")]
    assert votes[0].image_a == "a.png" and votes[0].prompt == "a fox"
    rows = sqlite3.connect(tmp_path / "arena.sqlite").execute("SELECT count(*) FROM votes").fetchone()
    assert rows == (3,)


def test_ratings_from_the_store_match_the_pure_fit(tmp_path):
    arena = Arena.at_home(tmp_path)
    battles = synthetic_votes(200, seed=5, tie_rate=0.1)
    for a, b, s in battles:
        arena.record_vote("p", a, b, {1.0: "a", 0.0: "b", 0.5: "tie"}[s])
    table = ratings(home=tmp_path, rounds=30)
    fitted = bradley_terry(battles)
    assert [r.model for r in table] == sorted(fitted, key=lambda m: -fitted[m])
    for row in table:
        assert row.rating == pytest.approx(fitted[row.model])
        assert row.ci_low <= row.rating <= row.ci_high
        assert row.games == row.wins + row.losses + row.ties
    assert sum(r.games for r in table) == 2 * len(battles)
    elo_table = ratings(home=tmp_path, method="elo", rounds=0)
    assert {r.model for r in elo_table} == set(fitted)
    assert arena.ratings_for_router()[table[0].model] == (pytest.approx(table[0].rating), table[0].games)


def test_bad_votes_name_the_field(tmp_path):
    arena = Arena.at_home(tmp_path)
    with pytest.raises(VoteError, match="winner must be"):
        arena.record_vote("p", "x", "y", "z")
    with pytest.raises(VoteError, match="model_a and model_b are both 'x'"):
        arena.record_vote("p", "x", "x", "a")
    with pytest.raises(VoteError, match="prompt must not be empty"):
        arena.record_vote(" ", "x", "y", "a")
    with pytest.raises(ImageGenError):
        rate([], method="median")
    assert arena.votes() == []


def test_an_empty_arena_has_no_ratings(tmp_path):
    assert ratings(home=tmp_path) == []
