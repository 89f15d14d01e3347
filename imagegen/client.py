"""`ImageGen`: the facade. Resolves the model (or asks the router), checks the budget, calls
the provider (falling back to the next candidate on failure) and accounts cost.

As in httpx, every decision is made once in shared code; only the provider call differs
between `generate` and `agenerate`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import TYPE_CHECKING, Any

from .catalog import ModelCard
from .errors import BudgetExceededError, ConfigError, NoRouteError, ProviderError
from .request import SEED_MAX, GenerateRequest, RequestNeeds
from .router import Candidate, Exclusion, RouteDecision, RoutePolicy, Router
from .settings import Settings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable, Iterator

    from imagegen.providers.base import ProgressCallback, Provider

    from .result import GenerateResult

log = logging.getLogger("imagegen")
OVER_BUDGET = "over the budget left"  # how a budget exclusion's reason starts


class ImageGen:
    """One API over local and cloud image models.

    ``providers``: instances to use (default: every provider registered under the
    `imagegen.providers` entry points). ``budget_usd``: total spend allowed for this client.
    Other keyword arguments override settings (e.g. ``replicate_api_token=...``).
    """

    def __init__(self, *, providers: list[Provider] | None = None, policy: RoutePolicy | None = None,
                 budget_usd: float | None = None, settings: Settings | None = None,
                 router: Router | None = None, **setting_overrides: Any):
        self.settings = settings or Settings(**setting_overrides)
        if providers is None:
            from .plugins import load_providers

            self.providers = load_providers(self.settings)
        else:
            self.providers = {p.name: p for p in providers}
        self.policy = policy or RoutePolicy()
        if router is None:
            from .arena._router_ratings import ArenaRatings

            router = Router(home=self.settings.home, user_ratings=ArenaRatings(self.settings.home))
        self.router = router
        self.budget_usd = budget_usd
        self.spent_usd = 0.0
        self._reserved_usd = 0.0  # estimates of calls in flight, so concurrent calls share the budget
        # One lock over spent_usd, _reserved_usd and usage: a check and its reservation, and a
        # charge and its release, are each one step for every thread.
        self._budget_lock = threading.RLock()
        self.usage: dict[str, dict[str, float]] = {}  # card id -> {"images", "cost_usd", "calls"}
        self._finetune_charges: dict[str, float] = {}  # job id -> USD counted in spent_usd

    # -- catalog ---------------------------------------------------------------------

    def models(self) -> list[ModelCard]:
        cards: list[ModelCard] = []
        for provider in self.providers.values():
            cards.extend(provider.models())
        return cards

    def card(self, model: str) -> ModelCard:
        """The card for a model reference: a card id, a provider-specific reference, or a bare
        name. A ``provider:model`` reference asks only that provider."""
        provider_name, _, rest = model.partition(":")
        provider = self.providers.get(provider_name) if rest else None
        if provider is not None:
            for card in provider.models():
                if card.id == model:
                    return card
            card = provider.card_for(rest)
            if card is not None:
                return card
        elif provider_name and rest and "/" not in provider_name:
            raise ConfigError(f"model {model!r}: no provider named {provider_name!r} is installed "
                              f"(installed: {', '.join(self.providers) or 'none'})")
        cards = self.models()
        for card in cards:
            if card.id == model:
                return card
        matches = [c for c in cards if c.model == model or c.model.split("/")[-1] == model]
        if len(matches) == 1:
            return matches[0]
        hint = f"; ambiguous between {', '.join(c.id for c in matches)}" if matches else ""
        raise ConfigError(f"unknown model {model!r}{hint}; `imagegen models` lists the known ones")

    # -- routing ---------------------------------------------------------------------

    def route(self, request: GenerateRequest | str, *, policy: RoutePolicy | None = None) -> RouteDecision:
        """Which model would serve ``request``, the ranked alternatives, and why others cannot."""
        request = self._as_request(request)
        return self._decide(request, request.needs(), policy or self.policy)

    def _decide(self, request: GenerateRequest, needs: RequestNeeds, policy: RoutePolicy) -> RouteDecision:
        """Prepare ``request`` on the explicit model, or on every card the policy allows, and rank."""
        if not request.model:
            return self._within_budget(self.router.decide(request, self.models(), self.providers, policy, needs))
        card = self.router.effective_card(self.card(request.model))
        prepared = self._provider(card).prepare(request, [card], needs)[0]
        if not prepared.ok:
            raise NoRouteError(f"model {card.id} cannot serve this request",
                               [(card.id, "; ".join(prepared.missing))])
        candidate = Candidate(card=card, score=0.0, cost_usd=prepared.cost_usd or 0.0,
                              latency_s=self.router.expected_latency_s(card, request.image_count),
                              warnings=prepared.warnings, prepared=prepared)
        return RouteDecision(chosen=card, candidates=[candidate], strategy="explicit model")

    def _within_budget(self, decision: RouteDecision) -> RouteDecision:
        """The budget left is a constraint on each request: a candidate whose estimate exceeds
        it is excluded (with the reason), so the router falls to one that fits instead of
        refusing. The reservation before each call still enforces the budget."""
        if self.budget_usd is None:
            return decision
        remaining = self.budget_usd - self.spent_usd - self._reserved_usd
        fits = [c for c in decision.candidates if self._hold_for(c) <= remaining + 1e-12]
        if len(fits) == len(decision.candidates):
            return decision
        if not fits:
            cheapest = min(decision.candidates, key=lambda c: c.cost_usd)
            raise BudgetExceededError(
                f"{cheapest.card.id}, the cheapest model for this request, would cost about "
                f"${cheapest.cost_usd:.4f}; ${remaining:.4f} of the ${self.budget_usd:.2f} budget is left",
                estimate_usd=cheapest.cost_usd, remaining_usd=remaining)
        over = [Exclusion(c.card, f"{OVER_BUDGET}: would cost about ${c.cost_usd:.4f}; ${remaining:.4f} "
                                  f"of the ${self.budget_usd:.2f} budget is left")
                for c in decision.candidates if self._hold_for(c) > remaining + 1e-12]
        return decision.model_copy(update={"chosen": fits[0].card, "candidates": fits,
                                           "excluded": [*decision.excluded, *over]})

    @property
    def usage_by_provider(self) -> dict[str, dict[str, float]]:
        """`usage` summed per provider: {"calls", "images", "cost_usd"}."""
        totals: dict[str, dict[str, float]] = {}
        for card_id, usage in self.usage.items():
            total = totals.setdefault(card_id.split(":", 1)[0], {"calls": 0, "images": 0, "cost_usd": 0.0})
            for key, value in usage.items():
                total[key] += value
        return totals

    # -- generation ------------------------------------------------------------------

    def generate(self, request: GenerateRequest | str, *, policy: RoutePolicy | None = None,
                 progress: ProgressCallback | None = None, **overrides: Any) -> GenerateResult:
        """Generate images. ``request`` may be a Midjourney-style string; keyword arguments
        override request fields (``gen.generate("a cat", seed=7)``)."""
        request, decision, policy = self._plan(request, policy, overrides)
        errors: list[tuple[str, str]] = []
        down: set[str] = set()  # providers that failed as a whole: their other models are skipped
        for candidate in self._attempts(decision, policy, down):
            provider = self._provider(candidate.card)
            reserved = self._reserve_budget(candidate)
            started = time.perf_counter()
            try:
                result = provider.generate(candidate.prepared, progress=progress)
                self._charge(result, candidate)  # while the reservation still holds
            except ProviderError as exc:
                if not self._failed(candidate, exc, errors, down):
                    raise
                continue
            finally:
                self._release_budget(reserved)
            return self._finish(result, request, candidate, decision, errors, started)
        raise NoRouteError("every candidate failed", errors + _over_budget(decision))

    async def agenerate(self, request: GenerateRequest | str, *, policy: RoutePolicy | None = None,
                        progress: ProgressCallback | None = None, **overrides: Any) -> GenerateResult:
        """`generate` for asyncio code; safe inside a running loop."""
        request, decision, policy = self._plan(request, policy, overrides)
        errors: list[tuple[str, str]] = []
        down: set[str] = set()  # providers that failed as a whole: their other models are skipped
        for candidate in self._attempts(decision, policy, down):
            provider = self._provider(candidate.card)
            reserved = self._reserve_budget(candidate)
            started = time.perf_counter()
            try:
                result = await provider.agenerate(candidate.prepared, progress=progress)
                self._charge(result, candidate)  # while the reservation still holds
            except ProviderError as exc:
                if not self._failed(candidate, exc, errors, down):
                    raise
                continue
            finally:
                self._release_budget(reserved)
            return self._finish(result, request, candidate, decision, errors, started)
        raise NoRouteError("every candidate failed", errors + _over_budget(decision))

    # -- bulk (imagegen.bulk) --------------------------------------------------------

    def map(self, requests: Iterable[GenerateRequest | str], *, concurrency: int = 4,
            policy: RoutePolicy | None = None, progress: Callable[[Any], None] | None = None,
            return_exceptions: bool = False) -> Iterator[GenerateResult]:
        """Generate many requests, ``concurrency`` at a time, each routed as `generate` routes
        it (pool workers, local and cloud models together, under the budget); yields results
        as they finish, ``result.raw["index"]`` being the request's position. ``progress``
        gets one `Progress(stage="done", step=finished, total=...)` per request. A failure
        stops the rest and raises, unless ``return_exceptions`` (then it is yielded instead)."""
        from .bulk import map_sync

        return map_sync(self, requests, concurrency=concurrency, policy=policy, progress=progress,
                        return_exceptions=return_exceptions)

    def amap(self, requests: Iterable[GenerateRequest | str], *, concurrency: int = 4,
             policy: RoutePolicy | None = None, progress: Callable[[Any], None] | None = None,
             return_exceptions: bool = False) -> AsyncIterator[GenerateResult]:
        """`map` for asyncio code: ``async for result in gen.amap(requests): ...``."""
        from .bulk import amap

        return amap(self, requests, concurrency=concurrency, policy=policy, progress=progress,
                    return_exceptions=return_exceptions)

    # -- fine-tunes (imagegen.finetune) ----------------------------------------------

    def finetune(self, request: Any) -> Any:
        """Start a LoRA fine-tune (`FineTuneRequest` or its fields) on the trainer it names
        (a provider's); returns the `FineTuneJob`, already in the store."""
        from .finetune import start_finetune

        return start_finetune(self, request)

    def jobs(self) -> list[Any]:
        """Every stored fine-tune job (any process's), newest first."""
        from .finetune import JobStore

        return JobStore.for_client(self).list()

    def job(self, job_id: str) -> Any:
        """A stored fine-tune job by its id or its trainer's training id."""
        from .finetune import JobStore

        return JobStore.for_client(self).get(job_id)

    # -- lifetime --------------------------------------------------------------------

    def close(self) -> None:
        for provider in self.providers.values():
            provider.close()

    def __enter__(self) -> ImageGen:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> ImageGen:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        budget = f", budget_usd={self.budget_usd}" if self.budget_usd is not None else ""
        return f"ImageGen(providers={list(self.providers)}, strategy={self.policy.strategy!r}{budget})"

    # -- shared decisions ------------------------------------------------------------

    @staticmethod
    def _as_request(request: GenerateRequest | str, overrides: dict[str, Any] | None = None) -> GenerateRequest:
        if isinstance(request, str):
            request = GenerateRequest.from_midjourney(request)
        if overrides:
            request = GenerateRequest.model_validate({**request.model_dump(exclude_unset=True), **overrides})
        return request

    def _plan(self, request: GenerateRequest | str, policy: RoutePolicy | None,
              overrides: dict[str, Any]) -> tuple[GenerateRequest, RouteDecision, RoutePolicy]:
        request = self._as_request(request, overrides)
        policy = policy or self.policy
        needs = request.needs()  # as asked: a seed drawn below is not one a model must honour
        updates: dict[str, Any] = {}
        if not request.seed_fixed:
            # Drawn once, before preparing, so a fallback draws the same images and the result
            # can say which seed.
            updates["seed"] = random.randint(0, SEED_MAX)
        if request.variation_strength > 0 and request.variation_seed in (None, -1):
            updates["variation_seed"] = random.randint(0, SEED_MAX)
        if updates:
            request = request.model_copy(update=updates)
        return request, self._decide(request, needs, policy), policy

    @staticmethod
    def _attempts(decision: RouteDecision, policy: RoutePolicy, down: set[str]) -> Iterator[Candidate]:
        """The candidates to try in order: at most ``policy.max_attempts``, not counting the
        models skipped because their provider failed as a whole (``down``, filled as they fail)."""
        tries = policy.max_attempts
        for candidate in decision.candidates:
            if tries == 0:
                return
            if candidate.card.provider not in down:
                tries -= 1
                yield candidate

    def _provider(self, card: ModelCard) -> Provider:
        try:
            return self.providers[card.provider]
        except KeyError:
            raise ConfigError(f"provider {card.provider!r} for {card.id} is not installed") from None

    #: Per-second-priced models hold this many times their estimate while they run (their
    #: charge is only known afterwards; see `check_budget`).
    PER_SECOND_HOLD = 2.0

    def check_budget(self, estimate_usd: float, what: str) -> None:
        """Raise `BudgetExceededError` if spending ``estimate_usd`` on ``what`` would exceed the
        budget (calls in flight count against it too).

        What the budget guarantees: a call starts only if its hold fits in what is left after
        every charge counted and every call in flight (checked and reserved under one lock, so
        concurrent calls cannot both take the last dollars). For models priced per image or per
        megapixel the hold is the price itself, so ``spent_usd`` never passes ``budget_usd``.
        For models priced per GPU-second the charge depends on how long the prediction runs:
        the hold is `PER_SECOND_HOLD` times the estimate, and the actual charge (from the
        prediction's metrics) is what counts afterwards; only a prediction running longer than
        that many times its expected time can take ``spent_usd`` past the budget, and the
        next call is then refused. Paid predictions whose outputs could not be fetched count too.
        """
        if self.budget_usd is None:
            return
        with self._budget_lock:
            remaining = self.budget_usd - self.spent_usd - self._reserved_usd
            if estimate_usd > remaining + 1e-12:
                raise BudgetExceededError(
                    f"{what} would cost about ${estimate_usd:.4f}; "
                    f"${remaining:.4f} of the ${self.budget_usd:.2f} budget is left",
                    estimate_usd=estimate_usd, remaining_usd=remaining)

    def _hold_for(self, candidate: Candidate) -> float:
        """What a call on ``candidate`` holds against the budget while it runs."""
        if candidate.card.price.per_gpu_second > 0:
            return candidate.cost_usd * self.PER_SECOND_HOLD
        return candidate.cost_usd

    def _reserve_budget(self, candidate: Candidate) -> float:
        """Refuse before spending; else hold the estimate until the call ends (returned). The
        check and the hold are one step under the budget lock."""
        if self.budget_usd is None:
            return 0.0
        hold = self._hold_for(candidate)
        with self._budget_lock:
            self.check_budget(hold, candidate.card.id)
            self._reserved_usd += hold
        return hold

    def _release_budget(self, held: float) -> None:
        if held:
            with self._budget_lock:
                self._reserved_usd -= held

    def _charge(self, result: GenerateResult, candidate: Candidate) -> None:
        """Count a result's cost (called before its hold is released, so no other thread sees
        the budget free of both)."""
        self.record_spend(candidate.card.id, result.cost_usd, images=len(result.images))

    def _failed(self, candidate: Candidate, exc: ProviderError, errors: list[tuple[str, str]],
                down: set[str]) -> bool:
        """Record a failure (and what it was charged); True when the next candidate may be
        tried. A provider-scope failure (unreachable, refused credentials) marks the whole
        provider ``down``: its other models are skipped, another provider's are tried."""
        if exc.cost_usd:
            # Paid even though it failed (e.g. outputs that could not be downloaded).
            self.record_spend(candidate.card.id, exc.cost_usd, images=0)
        self.router.record_failure(candidate.card)
        errors.append((candidate.card.id, str(exc)))
        log.warning("%s failed: %s", candidate.card.id, exc)
        if exc.scope == "provider":
            down.add(candidate.card.provider)
        return exc.retryable

    def _finish(self, result: GenerateResult, request: GenerateRequest, candidate: Candidate,
                decision: RouteDecision, errors: list[tuple[str, str]], started: float) -> GenerateResult:
        result.latency_s = result.latency_s or time.perf_counter() - started
        self.router.record_success(candidate.card, result.latency_s / max(1, len(result.images)))
        warnings = list(candidate.warnings) + [f"fell back after {card}: {e}" for card, e in errors]
        result.warnings = list(dict.fromkeys(warnings + result.warnings))
        result.provider = result.provider or candidate.card.provider
        result.model = result.model or candidate.card.id
        result.route = decision
        return result

    def record_spend(self, card_id: str, cost_usd: float, images: int = 0, calls: int = 1) -> None:
        """Count a paid call (or, with ``calls=0``, a correction to one) against the budget and in `usage`."""
        with self._budget_lock:
            self.spent_usd += cost_usd
            usage = self.usage.setdefault(card_id, {"calls": 0, "images": 0, "cost_usd": 0.0})
            usage["calls"] += calls
            usage["images"] += images
            usage["cost_usd"] += cost_usd

    def charge_finetune(self, job_id: str, card_id: str, cost_usd: float, *, settle: bool = False) -> None:
        """Count a training this client started under its trainer's card id (``usage``): its
        estimate at the start, then (``settle``) the actual cost once known. Settling a job this
        client did not start does nothing."""
        if settle and job_id not in self._finetune_charges:
            return
        counted = self._finetune_charges.get(job_id)
        if counted != cost_usd:
            self.record_spend(card_id, cost_usd - (counted or 0.0), calls=int(counted is None))
            self._finetune_charges[job_id] = cost_usd


def _over_budget(decision: RouteDecision) -> list[tuple[str, str]]:
    """The candidates the budget ruled out, for the error when every other one failed."""
    return [(e.card.id, e.reason) for e in decision.excluded if e.reason.startswith(OVER_BUDGET)]
