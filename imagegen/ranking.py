"""Ordering capable cards by a routing strategy.

Every order is total and deterministic: the built-in demo card comes last, cards cooling down
come after healthy ones, then the strategy's key, then the policy's `prefer` (local or cloud),
then the cheaper, faster, better-rated card, and finally the card id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import Field

from .catalog import ModelCard

_NO_ELO = 0.0  # the quality score of an unrated card: below every Elo, and JSON-safe


# A plain dataclass, not a pydantic model: a decision over a large catalog makes one per card,
# and pydantic still validates and serialises it as a field of RouteDecision.
@dataclass
class Candidate:
    """A card that can serve the request. ``score``: higher is better, in the strategy's unit.
    ``prepared``: the provider's plan for it, which the client hands back to run it."""

    card: ModelCard
    score: float
    cost_usd: float  # estimate for the whole request
    latency_s: float  # expected seconds for the whole request
    warnings: list[str] = field(default_factory=list)
    elo: float | None = None
    elo_note: str = ""  # where the Elo comes from
    cooling: bool = False  # failing lately: ranked after healthy cards
    # the provider's `Prepared` (typed loosely: the core does not import the providers'
    # protocol module at run time); not part of a decision's JSON
    prepared: Annotated[Any, Field(exclude=True)] = field(default=None, repr=False, compare=False)


def rank(candidates: list[Candidate], strategy: str, weights: dict[str, float], count: int,
         prefer: str | None = None) -> list[Candidate]:
    """``candidates`` sorted best first, each given its ``score`` under ``strategy``.

    ``prefer`` ("local" or "cloud") breaks ties on the strategy's own measure, e.g. a local card
    and the cloud card of the same weights, which share one Elo, under "quality"."""
    if strategy == "balanced":
        for c, score in zip(candidates, balanced_utilities(candidates, weights, count)):
            c.score = score
    prefer_local = prefer == "local"
    keyed = []
    for c in candidates:  # one flat key per card: the sort is the hot part of a decision
        card, latency, elo = c.card, c.latency_s, c.elo
        per_image = c.cost_usd / count
        unrated = elo is None
        elo_key = 0.0 if unrated else -elo
        builtin = card.kind == "builtin"  # the demo card last, cooling cards after healthy ones
        pref = prefer is not None and (card.provider == "local") != prefer_local
        if strategy == "cost":
            c.score = 0.0 - per_image
            key = (builtin, c.cooling, per_image, pref, latency, unrated, elo_key, card.id)
        elif strategy == "quality":
            c.score = _NO_ELO if unrated else elo
            key = (builtin, c.cooling, unrated, elo_key, pref, per_image, latency, card.id)
        elif strategy == "speed":
            c.score = 0.0 - latency
            key = (builtin, c.cooling, latency, pref, per_image, unrated, elo_key, card.id)
        else:
            key = (builtin, c.cooling, -c.score, pref, per_image, latency, unrated, elo_key, card.id)
        keyed.append((key, c))
    keyed.sort(key=_first)
    return [c for _, c in keyed]


def _first(pair: tuple) -> tuple:
    return pair[0]


def balanced_utilities(candidates: list[Candidate], weights: dict[str, float], count: int) -> list[float]:
    """Weighted utility in [0, 1] per candidate.

    Quality is the chance of being preferred over the best-rated candidate (the Elo win
    probability, doubled so the best scores 1; unknown Elo scores 0), because an Elo gap means
    a preference rate, not a linear amount. Cost and latency are scaled min-max: 1 for the
    cheapest or fastest, 0 for the dearest or slowest. The demo card is left out of the
    scaling so its zero cost does not squash the real models' differences.
    """
    real = [c for c in candidates if c.card.kind != "builtin"] or candidates
    elos = [c.elo for c in real if c.elo is not None]
    best = max(elos) if elos else None
    w_q, w_c, w_s = (weights.get(k, 0.0) for k in ("quality", "cost", "speed"))
    total = w_q + w_c + w_s
    costs = [c.cost_usd / count for c in real]
    latencies = [c.latency_s for c in real]
    # whole columns at a time: a catalog of a hundred cards is ranked on every decision
    quality = [0.0 if c.elo is None or best is None else min(1.0, 2.0 / (1.0 + 10.0 ** ((best - c.elo) / 400.0)))
               for c in candidates]
    cheap = _down([c.cost_usd / count for c in candidates], min(costs), max(costs))
    fast = _down([c.latency_s for c in candidates], min(latencies), max(latencies))
    return [(w_q * q + w_c * c + w_s * s) / total for q, c, s in zip(quality, cheap, fast)]


def _down(values: list[float], lo: float, hi: float) -> list[float]:
    """1 at the low end, 0 at the high end, clipped (the demo card may lie outside)."""
    if hi <= lo:
        return [1.0] * len(values)
    span = hi - lo
    return [1.0 if value <= lo else 0.0 if value >= hi else (hi - value) / span for value in values]
