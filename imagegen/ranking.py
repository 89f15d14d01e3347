"""Ordering capable cards by a routing strategy.

Every order is total and deterministic: the built-in demo card comes last, cards cooling down
come after healthy ones, then the strategy's key, then the policy's `prefer` (local or cloud),
then the cheaper, faster, better-rated card, and finally the card id.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import Field

from .catalog import ModelCard

_NO_ELO = 0.0  # the quality score of an unrated card: below every Elo, and JSON-safe


# A plain dataclass, not a pydantic model: a decision over a large catalog makes one per card,
# and pydantic still validates and serialises it as a field of RouteDecision.
@dataclass(slots=True)
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
        for c, score in zip(candidates, balanced_utilities(candidates, weights)):
            c.score = score
    # One flat key per card, built in one pass per strategy (the sort is the hot part of a
    # decision). It leads with one number that puts the demo card last and cooling cards after
    # healthy ones; the `prefer` term is True for the kind of card (local or cloud) not preferred.
    local_first = prefer == "local"
    if strategy == "cost":
        for c in candidates:
            c.score = 0.0 - c.cost_usd / count
        keys = [((c.card.kind == "builtin") * 2 + c.cooling, c.cost_usd,
                 prefer is not None and (c.card.provider == "local") != local_first,
                 c.latency_s, c.elo is None, -(c.elo or 0.0), c.card.id) for c in candidates]
    elif strategy == "quality":
        for c in candidates:
            c.score = _NO_ELO if c.elo is None else c.elo
        keys = [((c.card.kind == "builtin") * 2 + c.cooling, c.elo is None, -(c.elo or 0.0),
                 prefer is not None and (c.card.provider == "local") != local_first,
                 c.cost_usd, c.latency_s, c.card.id) for c in candidates]
    elif strategy == "speed":
        for c in candidates:
            c.score = 0.0 - c.latency_s
        keys = [((c.card.kind == "builtin") * 2 + c.cooling, c.latency_s,
                 prefer is not None and (c.card.provider == "local") != local_first,
                 c.cost_usd, c.elo is None, -(c.elo or 0.0), c.card.id) for c in candidates]
    else:
        keys = [((c.card.kind == "builtin") * 2 + c.cooling, -c.score,
                 prefer is not None and (c.card.provider == "local") != local_first,
                 c.cost_usd, c.latency_s, c.elo is None, -(c.elo or 0.0), c.card.id) for c in candidates]
    order = sorted(range(len(candidates)), key=keys.__getitem__)
    return [candidates[i] for i in order]


def balanced_utilities(candidates: list[Candidate], weights: dict[str, float]) -> list[float]:
    """Weighted utility in [0, 1] per candidate.

    Quality is the chance of being preferred over the best-rated candidate (the Elo win
    probability, doubled so the best scores 1; unknown Elo scores 0), because an Elo gap means
    a preference rate, not a linear amount. Cost and latency are scaled min-max: 1 for the
    cheapest or fastest, 0 for the dearest or slowest. The demo card is left out of the
    scaling so its zero cost does not squash the real models' differences.
    """
    real = [c for c in candidates if c.card.kind != "builtin"] or candidates
    best = max([c.elo for c in real if c.elo is not None], default=None)
    w_q, w_c, w_s = (weights.get(k, 0.0) for k in ("quality", "cost", "speed"))
    total = w_q + w_c + w_s
    # Scaled on the whole request's cost (min-max scaling is the same per image or per
    # request); an empty range scores 1 for all, the demo card too (lo = inf).
    costs = [c.cost_usd for c in real]
    latencies = [c.latency_s for c in real]
    c_lo, c_hi = min(costs), max(costs)
    s_lo, s_hi = min(latencies), max(latencies)
    c_inv = 1.0 / (c_hi - c_lo) if c_hi > c_lo else 0.0
    s_inv = 1.0 / (s_hi - s_lo) if s_hi > s_lo else 0.0
    c_lo = c_lo if c_inv else math.inf
    s_lo = s_lo if s_inv else math.inf
    # quality by Elo value: a catalog repeats ratings (shared weights, family priors)
    quality = {None: 0.0}
    if best is not None:
        for c in candidates:
            if c.elo not in quality:
                quality[c.elo] = min(1.0, 2.0 / (1.0 + 10.0 ** ((best - c.elo) / 400.0)))
    w_q, w_c, w_s = w_q / total, w_c / total, w_s / total
    # one expression per card, the clipping inline: this runs for every card of a catalog
    return [w_q * quality[c.elo]
            + w_c * (1.0 if c.cost_usd <= c_lo else 0.0 if c.cost_usd >= c_hi else (c_hi - c.cost_usd) * c_inv)
            + w_s * (1.0 if c.latency_s <= s_lo else 0.0 if c.latency_s >= s_hi else (s_hi - c.latency_s) * s_inv)
            for c in candidates]
