"""Ordering capable cards by a routing strategy.

Every order is total and deterministic: the built-in demo card comes last, cards cooling down
come after healthy ones, then the strategy's key, then the cheaper, faster, better-rated card,
and finally the card id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .catalog import ModelCard
    from .router import Candidate, RoutePolicy

    Row = tuple[ModelCard, float, float, "float | None", str, list[str], bool]

_NO_ELO = 0.0  # the quality score of an unrated card: below every Elo, and JSON-safe


def rank(rows: list[Row], policy: RoutePolicy, count: int) -> list[Candidate]:
    """``rows``: (card, cost_usd, latency_s, elo, elo_note, warnings, cooling) per capable card."""
    from .router import Candidate

    strategy = policy.strategy
    scores = balanced_utilities(rows, policy.weights, count) if strategy == "balanced" else None
    keyed = []
    for i, (card, cost, latency, elo, note, warnings, cooling) in enumerate(rows):
        per_image = cost / count
        unrated = elo is None
        elo_key = 0.0 if unrated else -elo
        first = (card.kind == "builtin", cooling)  # the demo card last, cooling cards after healthy
        if strategy == "cost":
            score, key = 0.0 - per_image, (*first, per_image, latency, unrated, elo_key, card.id)
        elif strategy == "quality":
            score, key = (_NO_ELO if unrated else elo), (*first, unrated, elo_key, per_image, latency, card.id)
        elif strategy == "speed":
            score, key = 0.0 - latency, (*first, latency, per_image, unrated, elo_key, card.id)
        else:
            score = scores[i]
            key = (*first, -score, per_image, latency, unrated, elo_key, card.id)
        keyed.append((key, Candidate(card, score, cost, latency, warnings, elo, note)))
    keyed.sort(key=lambda pair: pair[0])
    return [candidate for _, candidate in keyed]


def balanced_utilities(rows: list[Row], weights: dict[str, float], count: int) -> list[float]:
    """Weighted utility in [0, 1] per row.

    Quality is the chance of being preferred over the best-rated candidate (the Elo win
    probability, doubled so the best scores 1; unknown Elo scores 0), because an Elo gap means
    a preference rate, not a linear amount. Cost and latency are scaled min-max: 1 for the
    cheapest or fastest, 0 for the dearest or slowest. The demo card is left out of the
    scaling so its zero cost does not squash the real models' differences.
    """
    real = [r for r in rows if r[0].kind != "builtin"] or rows
    costs = [r[1] / count for r in real]
    latencies = [r[2] for r in real]
    elos = [r[3] for r in real if r[3] is not None]
    best = max(elos) if elos else None
    w_q, w_c, w_s = (weights.get(k, 0.0) for k in ("quality", "cost", "speed"))
    total = w_q + w_c + w_s
    lo_c, hi_c, lo_l, hi_l = min(costs), max(costs), min(latencies), max(latencies)
    # whole columns at a time: a catalog of a hundred cards is ranked on every decision
    quality = [0.0 if r[3] is None or best is None else min(1.0, 2.0 / (1.0 + 10.0 ** ((best - r[3]) / 400.0)))
               for r in rows]
    cheap = _down([r[1] / count for r in rows], lo_c, hi_c)
    fast = _down([r[2] for r in rows], lo_l, hi_l)
    return [(w_q * q + w_c * c + w_s * s) / total for q, c, s in zip(quality, cheap, fast)]


def _down(values: list[float], lo: float, hi: float) -> list[float]:
    """1 at the low end, 0 at the high end, clipped (the demo card may lie outside)."""
    if hi <= lo:
        return [1.0] * len(values)
    span = hi - lo
    return [1.0 if value <= lo else 0.0 if value >= hi else (hi - value) / span for value in values]
