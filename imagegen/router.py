"""Choosing a model for a request: filter by what the request needs, rank by a strategy.

`RoutePolicy` says what matters (cost, quality, speed, or a balance) and what is forbidden;
`RouteDecision` says what was chosen, what else could have served, and why others could not.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .catalog import SHARED_ELO, CatalogData, ModelCard, elo_for, load_user_catalog
from .errors import NoRouteError
from .health import Health, provider_key
from .ranking import Candidate, rank

if TYPE_CHECKING:
    from imagegen.providers.base import Prepared, Provider

    from .request import GenerateRequest, RequestNeeds

DEMO_NOTICE = ("using the built-in demo model; configure IMAGEGEN_MODELS_DIR or "
               "REPLICATE_API_TOKEN for real models")

STRATEGY_MEANING = {
    "cost": "cheapest estimated USD per image",
    "quality": "highest Elo",
    "speed": "lowest expected latency",
    "balanced": "best weighted utility of quality, cost and speed",
}
_WEIGHT_KEYS = ("quality", "cost", "speed")


class RoutePolicy(BaseModel):
    """What the router optimises and what it must never pick.

    ``unknown_elo`` says what to do with a card whose Elo is unknown: ``"last"`` keeps it but
    ranks it after every rated card on quality (and gives it no quality credit when balanced),
    ``"exclude"`` drops it, a number uses that value as your own prior. ``min_elo`` always
    excludes an unrated card, since it cannot be shown to meet the bar.
    ``elo_source``: the shipped table, your own arena ratings, or a blend weighted by votes.
    """

    model_config = ConfigDict(extra="forbid")

    strategy: Literal["cost", "quality", "speed", "balanced"] = "cost"
    weights: dict[str, float] = Field(default_factory=lambda: {"quality": 0.5, "cost": 0.3, "speed": 0.2})
    max_cost_per_image: float | None = Field(default=None, ge=0)
    max_latency_s: float | None = Field(default=None, gt=0)  # expected seconds for the whole request
    min_elo: float | None = None
    providers: list[str] | None = None  # allow-list of provider names
    exclude: list[str] = Field(default_factory=list)  # provider names or card ids
    local_only: bool = False
    prefer: Literal["local", "cloud"] | None = None  # the tie-break between equally good cards
    require_negative_prompt: bool = False  # a card that would drop the negative prompt is excluded
    unknown_elo: Literal["last", "exclude"] | float = "last"
    elo_source: Literal["shipped", "user", "blend"] = "shipped"
    blend_votes: float = Field(default=30.0, gt=0)  # effective votes at which user and shipped count equally
    max_attempts: int = Field(default=3, ge=1, le=10)

    @field_validator("weights")
    @classmethod
    def _known_weights(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(_WEIGHT_KEYS))
        if unknown:
            raise ValueError(f"unknown weight {unknown[0]!r}; use {', '.join(_WEIGHT_KEYS)}")
        if any(w < 0 or not math.isfinite(w) for w in value.values()):
            raise ValueError("weights must be finite and non-negative")
        if sum(value.values()) <= 0:
            raise ValueError("at least one weight must be positive")
        return value


@dataclass(slots=True)
class Exclusion:
    card: ModelCard
    reason: str


class RouteDecision(BaseModel):
    chosen: ModelCard
    candidates: list[Candidate]
    excluded: list[Exclusion] = Field(default_factory=list)
    strategy: str = "cost"
    notices: list[str] = Field(default_factory=list)  # policy-wide remarks, e.g. the demo notice

    def explain(self) -> str:
        meaning = STRATEGY_MEANING.get(self.strategy, "")
        lines = [f"chose {self.chosen.id} by {self.strategy}" + (f" ({meaning})" if meaning else "")]
        lines += [f"note: {n}" for n in self.notices]
        for i, c in enumerate(self.candidates):
            elo = f"Elo {c.elo:.0f}" if c.elo is not None else "Elo unknown"
            line = (f"  #{i + 1} {c.card.id}: score {c.score:.4g}, ${c.cost_usd:.4f}, "
                    f"~{c.latency_s:.1f}s, {elo}" + (f" ({c.elo_note})" if c.elo_note else ""))
            lines.append(line + "".join(f"\n      warning: {w}" for w in c.warnings))
        lines += [f"  excluded {e.card.id}: {e.reason}" for e in self.excluded]
        return "\n".join(lines)


UserRatings = Mapping[str, "tuple[float, int]"]  # card id -> (rating, games)
# A card whose latency_source starts with this carries its provider's current estimate (a worker
# pool's queue): the router's own per-card observations would lag it, so they do not replace it.
LIVE_LATENCY = "live:"


class Router:
    """Ranks capable cards; learns health and latency from what the client reports.

    ``catalog`` supplies local family Elo priors and the user's own card entries (default: the
    shipped table with ``<home>/catalog.json`` laid over it); a card the user's table changes is
    routed with the user's price, Elo, latency and capabilities. ``user_ratings`` maps card ids
    to (rating, games), or is a callable returning such a mapping, asked whenever a policy
    wants your ratings (`ImageGen` passes one that reads the arena under its home); none: no
    ratings of your own.
    """

    def __init__(self, *, catalog: CatalogData | None = None, home: Path | None = None,
                 user_ratings: UserRatings | Callable[[], UserRatings] | None = None,
                 health: Health | None = None,
                 clock: Callable[[], float] = time.monotonic, failure_threshold: int = 3,
                 cooldown_s: float = 60.0, latency_alpha: float = 0.3):
        self.catalog = catalog
        self.home = home
        self._user_ratings = user_ratings if callable(user_ratings) else dict(user_ratings or {})
        self._override_cache: tuple[CatalogData, dict[str, ModelCard]] | None = None
        self._shipped_elo: dict[str, Any] = {}  # card id -> (its Elo object, (value, note)); "" -> table
        self.health = health or Health(clock=clock, failure_threshold=failure_threshold,
                                       cooldown_s=cooldown_s, latency_alpha=latency_alpha)

    # -- observations from the client -------------------------------------------------

    def record_success(self, card: ModelCard, latency_s: float) -> None:
        """``latency_s``: observed seconds per image."""
        self.health.record_success(card.id, card.provider, latency_s)

    def record_failure(self, card: ModelCard) -> None:
        self.health.record_failure(card.id, card.provider)

    # -- what the client asks about one card ---------------------------------------------

    def effective_card(self, card: ModelCard) -> ModelCard:
        """The card as routed: the user's own table entry for it when there is one."""
        overrides = self._overrides()
        return overrides.get(card.id, card) if overrides else card

    def expected_latency_s(self, card: ModelCard, images: int = 1) -> float:
        """Expected seconds for ``images`` images: observed (EWMA) once the card has run."""
        if card.latency_source.startswith(LIVE_LATENCY):  # (`rank` has this inline)
            return card.latency_s * max(1, images)
        return self.health.latency(card.id, card.latency_s)[0] * max(1, images)

    # -- Elo sources -------------------------------------------------------------------

    @property
    def user_ratings(self) -> Mapping[str, tuple[float, int]]:
        """Your own ratings: the mapping given, or what the source given returns now."""
        source = self._user_ratings
        return source() if callable(source) else source

    def _priors(self) -> CatalogData:
        if self.catalog is None:
            self.catalog = load_user_catalog(self.home)
        return self.catalog

    def _overrides(self) -> dict[str, ModelCard]:
        catalog = self._priors()
        if self._override_cache is None or self._override_cache[0] is not catalog:
            wanted = set(catalog.overrides)
            self._override_cache = (catalog, {c.id: c for c in catalog.cards if c.id in wanted})
        return self._override_cache[1]

    def _elo_resolver(self, policy: RoutePolicy,
                      cards: list[ModelCard]) -> Callable[[ModelCard], tuple[float | None, str]]:
        catalog = self._priors()
        memo = self._shipped_elo
        if memo.get("") is not catalog:  # a new table: what was worked out no longer holds
            memo.clear()
            memo[""] = catalog

        def shipped(card: ModelCard) -> tuple[float | None, str]:
            # Worked out once per card (and its Elo object) while the table stays the same: a
            # card sharing another's weights would otherwise search the whole table each time.
            known = memo.get(card.id)
            if known is not None and known[0] is card.elo:
                return known[1]
            elo = elo_for(card, catalog)
            if elo.value is None:
                found: tuple[float | None, str] = (None, "")
            else:
                label = "shipped" if elo is card.elo else (
                    elo.source.split(":")[0] if elo.source.startswith(SHARED_ELO) else f"{card.family} prior")
                found = (elo.value, _dated(label, elo.date))
            memo[card.id] = (card.elo, found)  # the Elo object is held, so its id is never reused
            return found

        if policy.elo_source == "shipped":
            return shipped
        user = _share_by_weights(self.user_ratings, cards)
        if policy.elo_source == "user":
            return lambda card: ((user[card.id][0], f"your votes, {user[card.id][1]} games")
                                 if card.id in user else (None, ""))
        # blend: your ratings shifted onto the shipped scale, weighted by how many votes back them
        pairs = [(c.elo.value, user[c.id][0]) for c in cards if c.elo.value is not None and c.id in user]
        offset = sum(s - u for s, u in pairs) / len(pairs) if pairs else 0.0

        def blend(card: ModelCard) -> tuple[float | None, str]:
            base, note = shipped(card)
            if card.id not in user:
                return base, note
            rating, games = user[card.id]
            # confidence: the votes' information in even games (imagegen.arena.information);
            # a lopsided vote says less than a close one. Plain (rating, games) pairs count games.
            n = getattr(user[card.id], "effective_games", games)
            rating += offset
            if base is None:
                return rating, f"your votes, {games} games"
            w = n / (n + policy.blend_votes)
            return (1 - w) * base + w * rating, (f"blend: {note} + your votes ({games} games, {n:.1f} effective, "
                                                 f"weight {w:.2f})")

        return blend

    # -- the decision ------------------------------------------------------------------

    def decide(self, request: GenerateRequest, cards: list[ModelCard],
               providers: Mapping[str, Provider], policy: RoutePolicy,
               needs: RequestNeeds | None = None) -> RouteDecision:
        """Screen ``cards`` by the policy, have each provider prepare the request for its cards
        (once per provider, all its cards in one call), and rank what can serve it.

        ``needs``: of the request as the user wrote it, when the client has since resolved a
        random seed (a resolved seed is not a fixed one the model must honour).
        """
        overrides = self._overrides()
        if overrides:  # the user's own table wins over what a provider ships
            cards = [overrides.get(card.id, card) for card in cards]
        needs = request.needs() if needs is None else needs
        # card i's Prepared; a card the policy or a missing provider rules out gets one here,
        # with the reason as what it misses
        verdicts: list[Prepared | None] = [None] * len(cards)
        batches: dict[str, tuple[list[int], list[ModelCard]]] = {}  # provider -> positions, cards
        allowed = set(policy.providers) if policy.providers is not None else None
        denied = set(policy.exclude)
        restricted = policy.local_only or allowed is not None or denied
        for i, card in enumerate(cards):
            name = card.provider
            if restricted and ((policy.local_only and name != "local") or (allowed is not None and name not in allowed)
                               or name in denied or card.id in denied):
                verdicts[i] = _ruled_out(card, request, _policy_reason(card, policy))
                continue
            batch = batches.get(name)
            if batch is None:
                if name not in providers:
                    verdicts[i] = _ruled_out(card, request, f"provider {name!r} is not installed")
                    continue
                batch = batches[name] = ([], [])
            batch[0].append(i)
            batch[1].append(card)
        for name, (positions, batch_cards) in batches.items():
            for i, one in zip(positions, providers[name].prepare(request, batch_cards, needs), strict=True):
                verdicts[i] = one
        return self.rank(cards, verdicts, policy, needs)

    def rank(self, cards: list[ModelCard], verdicts: list[Prepared], policy: RoutePolicy,
             needs: RequestNeeds) -> RouteDecision:
        """Rank prepared cards under the policy's constraints. ``verdicts[i]``: card i's `Prepared`."""
        elo_of = self._elo_resolver(policy, cards)
        # shipped Elo straight from the resolver's memo (a call per card is a fifth of a decision)
        known_elo = (self._shipped_elo if policy.elo_source == "shipped" else {}).get
        fixed_prior = None if isinstance(policy.unknown_elo, str) else float(policy.unknown_elo)
        count = max(1, needs.images)
        needs_negative = policy.require_negative_prompt and needs.negative_prompt
        # the policy's limits as numbers the loop compares (text is built only to explain)
        # per image, as `_constraint_reason` compares it, so the two never disagree at the edge
        cost_limit = math.inf if policy.max_cost_per_image is None else policy.max_cost_per_image + 1e-12
        latency_limit = math.inf if policy.max_latency_s is None else policy.max_latency_s
        elo_floor = -math.inf if policy.min_elo is None else policy.min_elo
        unrated_ok = policy.min_elo is None and policy.unknown_elo != "exclude"
        cooling_now = self.health.cooling_now()
        observed = self.health.observed_latencies()
        candidates: list[Candidate] = []
        excluded: list[Exclusion] = []
        for card, verdict in zip(cards, verdicts, strict=True):
            if verdict.missing:
                excluded.append(Exclusion(card, "; ".join(verdict.missing)))
                continue
            if needs_negative and not card.capabilities.negative_prompt:
                excluded.append(Exclusion(card, "drops the negative prompt (require_negative_prompt is set)"))
                continue
            cost = verdict.cost_usd or 0.0
            latency = card.latency_s  # as `expected_latency_s`, inline
            if observed:
                seen = observed.get(card.id)
                if seen is not None and not card.latency_source.startswith(LIVE_LATENCY):
                    latency = seen[0]
            latency *= count
            known = known_elo(card.id)
            elo, note = known[1] if known is not None and known[0] is card.elo else elo_of(card)
            if elo is None and fixed_prior is not None:
                elo, note = fixed_prior, "your unknown_elo prior"
            if cost / count > cost_limit or latency > latency_limit or (not unrated_ok if elo is None else elo < elo_floor):
                excluded.append(Exclusion(card, _constraint_reason(
                    policy.max_cost_per_image, policy.max_latency_s, policy.min_elo, policy.unknown_elo,
                    cost / count, latency, elo)))
                continue
            # (a batch over max_images_per_call is the provider's to split)
            warnings = verdict.warnings  # copied only when something is added to it
            cooling = (cooling_now.get(card.id) or cooling_now.get(provider_key(card.provider))) if cooling_now else None
            if cooling:
                warnings = [*warnings, cooling + "; tried after healthy models"]
            candidates.append(Candidate(card, 0.0, cost, latency, warnings, elo, note, cooling is not None, verdict))
        if not candidates:
            raise NoRouteError("no model can serve this request",
                               [(e.card.id, e.reason) for e in excluded])
        ranked = rank(candidates, policy.strategy, policy.weights, count, policy.prefer)
        for c in reversed(ranked):  # the demo card ranks after every other: found from the end
            if c.card.kind != "builtin":
                break
            c.warnings = [*c.warnings, DEMO_NOTICE]
        notices = _notices(ranked, policy)
        return RouteDecision.model_construct(chosen=ranked[0].card, candidates=ranked,
                                             excluded=excluded, strategy=policy.strategy,
                                             notices=notices)


def _ruled_out(card: ModelCard, request: GenerateRequest, reason: str) -> Prepared:
    # imported here: the module brings asyncio, which `import imagegen` does without
    from imagegen.providers.base import Prepared

    return Prepared(card, request, [reason])


def _policy_reason(card: ModelCard, policy: RoutePolicy) -> str:
    if policy.local_only and card.provider != "local":
        return "local_only is set"
    if policy.providers is not None and card.provider not in policy.providers:
        return f"provider {card.provider!r} is not in the allowed providers ({', '.join(policy.providers)})"
    return "excluded by policy (exclude)"


@functools.lru_cache(maxsize=1024)  # a catalog repeats a few prices and latencies
def _constraint_reason(max_cost: float | None, max_latency: float | None, min_elo: float | None,
                       unknown_elo: str | float, cost_per_image: float, latency: float,
                       elo: float | None) -> str:
    """Why a card breaks the policy's limits (``max_cost`` and the rest: the policy's)."""
    if max_cost is not None and cost_per_image > max_cost + 1e-12:
        return f"estimated ${cost_per_image:.4f} per image is over max_cost_per_image ${max_cost:.4f}"
    if max_latency is not None and latency > max_latency:
        return f"expected {latency:.1f} s is over max_latency_s {max_latency:g} s"
    if elo is None:
        if min_elo is not None:
            return f"Elo unknown, so min_elo {min_elo:g} cannot be shown to hold"
        if unknown_elo == "exclude":
            return "Elo unknown (unknown_elo='exclude')"
    elif min_elo is not None and elo < min_elo:
        return f"Elo {elo:.0f} is under min_elo {min_elo:g}"
    return "breaks a policy constraint"  # not reached: rank() calls this only for a breach


def _notices(candidates: list[Candidate], policy: RoutePolicy) -> list[str]:
    notices = []
    if candidates[0].card.kind == "builtin":
        notices.append(DEMO_NOTICE)
    unrated = sum(c.elo is None for c in candidates) if policy.strategy in ("quality", "balanced") else 0
    if unrated:
        notices.append(f"{unrated} candidate(s) have no known Elo: ranked after rated ones on quality "
                       f"(unknown_elo={policy.unknown_elo!r})")
    if policy.elo_source != "shipped":
        notices.append(f"Elo from {policy.elo_source!r} ratings")
    notices += _same_weights_notices(candidates, policy)
    return notices


def _same_weights_notices(candidates: list[Candidate], policy: RoutePolicy) -> list[str]:
    """One line per model offered in more than one place (local and cloud cards of one set of
    weights): one quality, so the choice between them is cost and latency (and `prefer`)."""
    groups: dict[str, list[Candidate]] = {}
    for c in candidates:
        if c.card.weights:
            groups.setdefault(c.card.weights, []).append(c)
    notices = []
    for weights, group in groups.items():
        if len({c.card.provider for c in group}) < 2:
            continue
        places = ", ".join(f"{c.card.id} (${c.cost_usd:.4f}, ~{c.latency_s:.1f}s)" for c in group)
        tie = f"; ties go {policy.prefer}" if policy.prefer else ""
        notices.append(f"same weights ({weights}) in {len(group)} places: {places}; one Elo, so the choice "
                       f"between them is cost and latency{tie}")
    return notices


def _share_by_weights(user: UserRatings, cards: list[ModelCard]) -> UserRatings:
    """Your ratings with a card of the same weights as a rated one sharing its rating (the
    best-supported one when several are rated)."""
    groups: dict[str, list[str]] = {}
    for card in cards:
        if card.weights:
            groups.setdefault(card.weights, []).append(card.id)
    shared = {}
    for ids in groups.values():
        rated = [user[i] for i in ids if i in user]
        if rated and len(rated) < len(ids):
            best = max(rated, key=lambda r: r[1])
            shared.update({i: best for i in ids if i not in user})
    return {**user, **shared} if shared else user


def _dated(label: str, date: str) -> str:
    return f"{label}, {date}" if date else label
