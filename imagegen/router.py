"""Choosing a model for a request: filter by what the request needs, rank by a strategy.

`RoutePolicy` says what matters (cost, quality, speed, or a balance) and what is forbidden;
`RouteDecision` says what was chosen, what else could have served, and why others could not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from .catalog import ModelCard
from .errors import NoRouteError

if TYPE_CHECKING:
    from providers.base import Provider

    from .request import GenerateRequest


class RoutePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: Literal["cost", "quality", "speed", "balanced"] = "cost"
    max_cost_per_image: float | None = Field(default=None, ge=0)
    max_latency_s: float | None = Field(default=None, gt=0)
    min_elo: float | None = None
    providers: list[str] | None = None  # allow-list of provider names
    exclude: list[str] = Field(default_factory=list)  # provider names or card ids
    local_only: bool = False
    max_attempts: int = Field(default=3, ge=1, le=10)


class Candidate(BaseModel):
    card: ModelCard
    score: float
    cost_usd: float
    latency_s: float
    warnings: list[str] = Field(default_factory=list)


class Exclusion(BaseModel):
    card: ModelCard
    reason: str


class RouteDecision(BaseModel):
    chosen: ModelCard
    candidates: list[Candidate]
    excluded: list[Exclusion] = Field(default_factory=list)
    strategy: str = "cost"

    def explain(self) -> str:
        lines = [f"chose {self.chosen.id} by {self.strategy}"]
        lines += [f"  #{i + 1} {c.card.id}: score {c.score:.4g}, ${c.cost_usd:.4f}, ~{c.latency_s:.1f}s"
                  for i, c in enumerate(self.candidates)]
        lines += [f"  excluded {e.card.id}: {e.reason}" for e in self.excluded]
        return "\n".join(lines)


class Router:
    """Ranks capable cards. Stateless apart from what the client feeds it."""

    def decide(self, request: GenerateRequest, cards: list[ModelCard],
               providers: dict[str, Provider], policy: RoutePolicy) -> RouteDecision:
        candidates: list[Candidate] = []
        excluded: list[Exclusion] = []
        for card in cards:
            reason = self._policy_reason(card, policy)
            provider = providers.get(card.provider)
            if reason is None and provider is None:
                reason = f"provider {card.provider!r} is not installed"
            if reason is not None:
                excluded.append(Exclusion(card=card, reason=reason))
                continue
            check = provider.check(request, card)
            if not check.ok:
                excluded.append(Exclusion(card=card, reason="; ".join(check.missing)))
                continue
            cost = provider.estimate_cost(request, card)
            candidates.append(Candidate(card=card, score=-cost, cost_usd=cost,
                                        latency_s=card.latency_s, warnings=check.warnings))
        if not candidates:
            raise NoRouteError("no model can serve this request",
                               [(e.card.id, e.reason) for e in excluded])
        candidates.sort(key=lambda c: (c.cost_usd, c.latency_s))
        return RouteDecision(chosen=candidates[0].card, candidates=candidates, excluded=excluded,
                             strategy=policy.strategy)

    @staticmethod
    def _policy_reason(card: ModelCard, policy: RoutePolicy) -> str | None:
        if policy.local_only and card.provider != "local":
            return "local_only is set"
        if policy.providers is not None and card.provider not in policy.providers:
            return f"provider {card.provider!r} is not in the allowed providers"
        if card.provider in policy.exclude or card.id in policy.exclude:
            return "excluded by policy"
        return None

    # Observations from the client; the router uses them for health and latency.
    def record_success(self, card: ModelCard, latency_s: float) -> None:
        pass

    def record_failure(self, card: ModelCard) -> None:
        pass
