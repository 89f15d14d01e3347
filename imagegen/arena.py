"""Your own quality ratings: pairwise votes kept in SQLite under ``settings.home``, rated by
online Elo and by Bradley–Terry maximum likelihood, with bootstrap confidence intervals.

Formulas follow the arena convention (LMSYS FastChat): ``P(A beats B) = 1 / (1 + 10^((R_B −
R_A)/400))``, a tie counts half a win for each side, ratings start at / are anchored on 1000.
"""

from __future__ import annotations

import math
import random
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .errors import ImageGenError

SCALE = 400.0
BASE = 10.0
INIT_RATING = 1000.0

Battle = tuple[str, str, float]  # (model A, model B, A's score: 1 win, 0.5 tie, 0 loss)
Winner = Literal["a", "b", "tie"]
_SCORES = {"a": 1.0, "b": 0.0, "tie": 0.5}


class VoteError(ImageGenError, ValueError):
    """A vote that cannot be recorded (the message names the field)."""


@dataclass(frozen=True)
class Vote:
    id: int
    created_at: float
    prompt: str
    model_a: str
    model_b: str
    winner: Winner
    image_a: str | None = None  # a path, URL or id of the image shown
    image_b: str | None = None


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
    wins: Counter[str] = Counter()
    pairs: Counter[tuple[str, str]] = Counter()
    for a, b, s_a in battles:
        if a == b:
            continue
        wins[a] += s_a
        wins[b] += 1.0 - s_a
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
            w = wins[m] + prior_games / 2.0
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


# -- the store ---------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    prompt TEXT NOT NULL,
    model_a TEXT NOT NULL,
    model_b TEXT NOT NULL,
    winner TEXT NOT NULL CHECK (winner IN ('a', 'b', 'tie')),
    image_a TEXT,
    image_b TEXT
)
"""


class Arena:
    """Pairwise votes in one SQLite file (``<home>/arena.sqlite``)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def at_home(cls, home: str | Path) -> Arena:
        return cls(Path(home) / "arena.sqlite")

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=10)
        connection.execute(_SCHEMA)
        return connection

    def record_vote(self, prompt: str, model_a: str, model_b: str, winner: str, *,
                    image_a: str | Path | None = None, image_b: str | Path | None = None) -> Vote:
        """``winner``: "a", "b", "tie", or the id of the winning model."""
        if not prompt or not prompt.strip():
            raise VoteError("prompt must not be empty: a vote records what the images were asked for")
        if not model_a or not model_b:
            raise VoteError("model_a and model_b must name the two models compared")
        if model_a == model_b:
            raise VoteError(f"model_a and model_b are both {model_a!r}: a vote compares two models")
        winner = _winner(winner, model_a, model_b)
        image_a, image_b = (str(i) if i is not None else None for i in (image_a, image_b))
        created = time.time()
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO votes (created_at, prompt, model_a, model_b, winner, image_a, image_b) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)", (created, prompt, model_a, model_b, winner, image_a, image_b))
            vote_id = cursor.lastrowid
        db.close()
        return Vote(vote_id or 0, created, prompt, model_a, model_b, winner, image_a, image_b)

    def votes(self) -> list[Vote]:
        if not self.path.exists():
            return []
        with self._connect() as db:
            rows = db.execute("SELECT id, created_at, prompt, model_a, model_b, winner, image_a, image_b "
                              "FROM votes ORDER BY id").fetchall()
        db.close()
        return [Vote(*row) for row in rows]

    def battles(self) -> list[Battle]:
        return [(v.model_a, v.model_b, _SCORES[v.winner]) for v in self.votes()]

    def ratings(self, *, method: Literal["bt", "elo"] = "bt", rounds: int = 200, seed: int = 0,
                k: float = 4.0) -> list[Rating]:
        """Ratings, best first, with 95 % bootstrap intervals (``rounds=0``: no intervals)."""
        return rate(self.battles(), method=method, rounds=rounds, seed=seed, k=k)

    def ratings_for_router(self) -> dict[str, tuple[float, int]]:
        """Card id -> (Bradley–Terry rating, games), without intervals (fast)."""
        return {r.model: (r.rating, r.games) for r in self.ratings(rounds=0)}


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


# -- module-level shortcuts (what `imagegen arena vote|ratings` calls) ---------------------


def _arena(home: str | Path | None) -> Arena:
    if home is None:
        from .settings import Settings

        home = Settings().home
    return Arena.at_home(home)


def record_vote(prompt: str, model_a: str, model_b: str, winner: str, *, image_a: str | None = None,
                image_b: str | None = None, home: str | Path | None = None) -> Vote:
    """Record one comparison in the arena under ``home`` (default: ``settings.home``)."""
    return _arena(home).record_vote(prompt, model_a, model_b, winner, image_a=image_a, image_b=image_b)


def ratings(*, home: str | Path | None = None, method: Literal["bt", "elo"] = "bt", rounds: int = 200,
            seed: int = 0) -> list[Rating]:
    """Your ratings from every recorded vote, best first, with 95 % bootstrap intervals."""
    return _arena(home).ratings(method=method, rounds=rounds, seed=seed)
