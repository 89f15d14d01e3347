"""The maths of your own ratings: online Elo and Bradley–Terry maximum likelihood over pairwise
battles, bootstrap confidence intervals, and how much a set of votes says about each model.

Formulas follow the arena convention (LMSYS FastChat): ``P(A beats B) = 1 / (1 + 10^((R_B −
R_A)/400))``, a tie counts half a win for each side, ratings start at / are anchored on 1000.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from ..errors import VoteError

SCALE = 400.0
BASE = 10.0
INIT_RATING = 1000.0

Battle = tuple[str, str, float]  # (model A, model B, A's score: 1 win, 0.5 tie, 0 loss)
Winner = Literal["a", "b", "tie"]
_SCORES = {"a": 1.0, "b": 0.0, "tie": 0.5}


@dataclass(frozen=True)
class Rating:
    model: str
    rating: float
    ci_low: float
    ci_high: float
    games: int
    wins: int
    losses: int
    ties: int


# -- the maths: pure functions over battles ----------------------------------------------


def expected_score(r_a: float, r_b: float) -> float:
    return 1.0 / (1.0 + BASE ** ((r_b - r_a) / SCALE))


def online_elo(battles: Iterable[Battle], k: float = 4.0) -> dict[str, float]:
    """Sequential Elo in the order given (so the result depends on that order)."""
    ratings: dict[str, float] = {}
    for a, b, s_a in battles:
        r_a, r_b = ratings.get(a, INIT_RATING), ratings.get(b, INIT_RATING)
        e_a = expected_score(r_a, r_b)
        ratings[a] = r_a + k * (s_a - e_a)
        ratings[b] = r_b + k * ((1.0 - s_a) - (1.0 - e_a))
    return ratings


def bradley_terry(battles: Iterable[Battle], *, prior_games: float = 1.0, max_iter: int = 2000,
                  tol: float = 1e-9) -> dict[str, float]:
    """Bradley–Terry maximum likelihood by minorisation–maximisation (Hunter 2004), on the Elo scale.

    Ties count half a win for each side. ``prior_games`` virtual drawn games against an anchor
    rated 1000 keep a model with no wins (or a group never compared with the rest) finite;
    set it to 0 for the plain MLE, which needs every model to have won and lost.
    """
    wins: dict[str, float] = {}
    pairs: Counter[tuple[str, str]] = Counter()
    for a, b, s_a in battles:
        if a == b:
            continue
        wins[a] = wins.get(a, 0.0) + s_a
        wins[b] = wins.get(b, 0.0) + 1.0 - s_a
        pairs[(a, b) if a < b else (b, a)] += 1
    models = sorted({m for pair in pairs for m in pair})
    if not models:
        return {}
    opponents: dict[str, list[tuple[str, int]]] = {m: [] for m in models}
    for (a, b), n in pairs.items():
        opponents[a].append((b, n))
        opponents[b].append((a, n))
    strength = dict.fromkeys(models, 1.0)
    for _ in range(max_iter):
        change = 0.0
        for m in models:
            w = wins.get(m, 0.0) + prior_games / 2.0
            denominator = prior_games / (strength[m] + 1.0)
            denominator += sum(n / (strength[m] + strength[o]) for o, n in opponents[m])
            new = max(w / denominator, 1e-300) if denominator > 0 else strength[m]
            change = max(change, abs(math.log(new / strength[m])))
            strength[m] = new
        # Real games fix only differences; the level rests on the weak anchor games, along
        # which MM crawls, so set the level exactly each sweep (both steps raise the likelihood).
        shift = _anchor_shift(strength) if prior_games else -sum(
            math.log(s) for s in strength.values()) / len(models)
        strength = {m: s * math.exp(shift) for m, s in strength.items()}
        if change < tol:
            break
    return {m: INIT_RATING + SCALE * math.log10(s) for m, s in strength.items()}


def _anchor_shift(strength: dict[str, float]) -> float:
    """The log-shift t where the anchor games balance: sum of (1/2 - sigma(ln p + t)) = 0."""
    logs = [math.log(s) for s in strength.values()]
    t = 0.0
    for _ in range(50):  # Newton on a monotone function; steps clipped so it cannot run away
        sig = [1.0 / (1.0 + math.exp(-(x + t))) for x in logs]
        slope = sum(p * (1.0 - p) for p in sig)
        if slope < 1e-12:
            break
        step = max(-5.0, min(5.0, sum(0.5 - p for p in sig) / slope))
        t += step
        if abs(step) < 1e-12:
            break
    return t


def bootstrap(battles: Sequence[Battle], fit: Callable[[list[Battle]], dict[str, float]], *,
              rounds: int = 200, seed: int = 0, level: float = 0.95) -> dict[str, tuple[float, float, float]]:
    """(low, median, high) per model from refitting on battles resampled with replacement."""
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {}
    for _ in range(rounds):
        for model, value in fit(rng.choices(battles, k=len(battles))).items():
            samples.setdefault(model, []).append(value)
    tail = (1.0 - level) / 2.0
    return {m: (_quantile(v, tail), _quantile(v, 0.5), _quantile(v, 1.0 - tail)) for m, v in samples.items()}


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def rate(battles: Sequence[Battle], *, method: Literal["bt", "elo"] = "bt", rounds: int = 200,
         seed: int = 0, k: float = 4.0) -> list[Rating]:
    if method == "bt":
        def fit(b: list[Battle]) -> dict[str, float]:
            return bradley_terry(b)
    elif method == "elo":
        def fit(b: list[Battle]) -> dict[str, float]:
            return online_elo(b, k=k)
    else:
        raise VoteError(f"method must be 'bt' or 'elo', got {method!r}")
    point = fit(list(battles))
    intervals = bootstrap(battles, fit, rounds=rounds, seed=seed) if rounds and battles else {}
    tally: dict[str, list[int]] = {m: [0, 0, 0] for m in point}
    for a, b, s_a in battles:
        for model, score in ((a, s_a), (b, 1.0 - s_a)):
            tally[model][0 if score == 1.0 else 1 if score == 0.0 else 2] += 1
    rated = []
    for model, value in point.items():
        low, _, high = intervals.get(model, (value, value, value))
        w, lost, t = tally[model]
        rated.append(Rating(model, value, low, high, w + lost + t, w, lost, t))
    return sorted(rated, key=lambda r: (-r.rating, r.model))



def _winner(winner: str, model_a: str, model_b: str) -> Winner:
    if winner in _SCORES:
        return winner  # type: ignore[return-value]
    if winner == model_a:
        return "a"
    if winner == model_b:
        return "b"
    raise VoteError(f"winner must be 'a', 'b', 'tie' or one of the two model ids, got {winner!r}")


# -- how sure are we? -------------------------------------------------------------------

#: Elo points per natural-log unit of Bradley–Terry strength (400 / ln 10 ≈ 173.7).
ELO_PER_NAT = SCALE / math.log(BASE)

#: Votes that make a rating "enough": with this many even votes (each worth one game of
#: information, p(1-p) = 1/4) the 95 % interval of the model's gap to an opponent of known
#: rating is about ±100 Elo (1.96 × 2 × 173.7 / sqrt(46) = 100.4, so 47 games gives ±99).
#: A 100-point gap is a 64 % win rate: below this many votes your ratings cannot yet tell a
#: model that wins two times in three from an even one.
ENOUGH_VOTES = 47


def information(battles: Iterable[Battle], fitted: dict[str, float] | None = None) -> dict[str, float]:
    """Effective games per model: the Fisher information of its Bradley–Terry rating, in units of
    one even game (an even game counts 1, a game against a much stronger or weaker model less).

    The standard error of a rating is ``2 * ELO_PER_NAT / sqrt(effective games)``; the router's
    blend weights your rating by this, so lopsided votes count less than close ones.
    """
    battles = list(battles)
    fitted = bradley_terry(battles) if fitted is None else fitted
    info: dict[str, float] = {m: 0.0 for m in fitted}
    for a, b, _ in battles:
        if a == b or a not in fitted or b not in fitted:
            continue
        p = expected_score(fitted[a], fitted[b])
        gain = 4.0 * p * (1.0 - p)
        info[a] += gain
        info[b] += gain
    return info


def standard_error(effective_games: float) -> float:
    """Elo standard error of a rating backed by this many effective games (inf for none)."""
    return math.inf if effective_games <= 0 else 2.0 * ELO_PER_NAT / math.sqrt(effective_games)


def blend_weight(effective_games: float, blend_votes: float = 30.0) -> float:
    """Your rating's weight against the shipped one: precision weighting, where the shipped Elo is
    taken to be as sure as ``blend_votes`` even games (weight 0.5 there)."""
    n = max(0.0, effective_games)
    return n / (n + blend_votes)


def win_matrix(battles: Iterable[Battle]) -> dict[tuple[str, str], tuple[float, int]]:
    """(row, column) -> (row's score against column, games): wins count 1, ties 1/2."""
    cells: dict[tuple[str, str], list[float]] = {}
    for a, b, s_a in battles:
        if a == b:
            continue
        for row, col, s in ((a, b, s_a), (b, a, 1.0 - s_a)):
            cell = cells.setdefault((row, col), [0.0, 0])
            cell[0] += s
            cell[1] += 1
    return {k: (v[0], int(v[1])) for k, v in cells.items()}


def least_sure_pair(models: Sequence[str], battles: Sequence[Battle], *,
                    fits: Callable[[str, str], bool] | None = None) -> tuple[str, str] | None:
    """The pair whose next vote teaches the most: the widest combined uncertainty of the two
    ratings (standard errors in quadrature, a model with no votes counting as very unsure),
    weighted by how close the pair is expected to be (a sure win teaches little); among equals,
    the pair with the fewest head-to-head votes, then by name. ``fits(a, b)``: pairs allowed
    (e.g. those within a budget); None when no pair is."""
    models = sorted(dict.fromkeys(models))
    if len(models) < 2:
        return None
    fitted = bradley_terry(battles)
    info = information(battles, fitted)
    head: Counter[tuple[str, str]] = Counter()
    for a, b, _ in battles:
        head[(a, b) if a < b else (b, a)] += 1

    def key(pair: tuple[str, str]) -> tuple[float, int, tuple[str, str]]:
        a, b = pair
        se = math.hypot(min(standard_error(info.get(a, 0.0)), 1000.0),
                        min(standard_error(info.get(b, 0.0)), 1000.0))
        p = expected_score(fitted.get(a, INIT_RATING), fitted.get(b, INIT_RATING))
        return (-se * 4.0 * p * (1.0 - p), head[pair], pair)

    pairs = [(a, b) for i, a in enumerate(models) for b in models[i + 1:] if fits is None or fits(a, b)]
    return min(pairs, key=key) if pairs else None
