"""The `Provider` protocol every backend implements, and a base class with the shared parts.

A provider knows only its own API: which models it serves (`ModelCard`s), how it would serve a
request on each of them (`prepare`: what it cannot honour, what it changes, what it costs, and
its own plan, worked out once) and how to run that plan (`generate`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from imagegen.catalog import MEGAPIXEL, image_misses

if TYPE_CHECKING:
    from imagegen.catalog import Capabilities, ModelCard
    from imagegen.request import GenerateRequest, RequestNeeds
    from imagegen.result import GenerateResult
    from imagegen.settings import Settings


@dataclass
class Progress:
    """One progress event: a denoising step, or a wait on a cloud job."""

    stage: str  # "load", "step", "hires", "queued", "running", "download"
    step: int = 0
    total: int = 0
    image_index: int = 0
    message: str = ""


# Raise imagegen.errors.UserCancelledError from the callback to stop between steps.
ProgressCallback = Callable[[Progress], None]


@dataclass(slots=True)
class Prepared:
    """One card's answer to one request, worked out once: what it cannot honour (``missing``
    excludes the card), what it changes or ignores (``warnings``), the estimated cost of the
    whole request, and the provider's own plan for it, which `generate` runs as it is."""

    card: ModelCard
    request: GenerateRequest
    missing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    cost_usd: float | None = None  # None while something is missing
    plan: Any = None

    @property
    def ok(self) -> bool:
        return not self.missing


@runtime_checkable
class Provider(Protocol):
    name: str

    def models(self) -> list[ModelCard]: ...

    def card_for(self, model: str) -> ModelCard | None:
        """A card for a model reference not in `models()` (a file path, a fine-tune version)."""
        ...

    def prepare(self, request: GenerateRequest, cards: list[ModelCard],
                needs: RequestNeeds) -> list[Prepared]:
        """One `Prepared` per card, in order. ``needs``: ``request.needs()`` of the request as
        the user wrote it (the client may have resolved a random seed since)."""
        ...

    def generate(self, prepared: Prepared, *, progress: ProgressCallback | None = None) -> GenerateResult: ...

    async def agenerate(self, prepared: Prepared, *,
                        progress: ProgressCallback | None = None) -> GenerateResult: ...

    def close(self) -> None: ...


class BaseProvider:
    """Shared defaults: capability checks from the card, price-based cost, async via a thread.

    An adapter adds its own checks and plan by overriding `prepare_one` (per card) or `prepare`
    (when work can be shared across cards), and runs a plan in `generate`.
    """

    name = "base"

    def __init__(self, settings: Settings | None = None):
        from imagegen.settings import Settings

        self.settings = settings or Settings()

    def models(self) -> list[ModelCard]:
        return []

    def card_for(self, model: str) -> ModelCard | None:
        return None

    def prepare(self, request: GenerateRequest, cards: list[ModelCard],
                needs: RequestNeeds | None = None) -> list[Prepared]:
        """`prepare_one` per card; by default the generic check and price estimate, worked out
        for all the cards at once (`generic_verdicts`)."""
        needs = request.needs() if needs is None else needs  # derived once for all the cards
        if type(self).prepare_one is not BaseProvider.prepare_one:  # an adapter's own per-card rules
            return [self.prepare_one(request, card, needs) for card in cards]
        return [Prepared(card, request, [*missing] if missing else [], [*warnings] if warnings else [], cost)
                for card, (missing, warnings, cost) in zip(cards, generic_verdicts(cards, needs))]

    def prepare_one(self, request: GenerateRequest, card: ModelCard,
                    needs: RequestNeeds | None = None) -> Prepared:
        """The generic check and price estimate for one card (override to add rules per card)."""
        (missing, warnings, cost), = generic_verdicts([card], request.needs() if needs is None else needs)
        return Prepared(card, request, list(missing), list(warnings), cost)

    def generate(self, prepared: Prepared, *, progress: ProgressCallback | None = None) -> GenerateResult:
        raise NotImplementedError

    async def agenerate(self, prepared: Prepared, *,
                        progress: ProgressCallback | None = None) -> GenerateResult:
        return await asyncio.to_thread(self.generate, prepared, progress=progress)

    # Calling a provider directly (tests, benchmarks) rather than through ImageGen's router:
    def run(self, request: GenerateRequest, card: ModelCard, *,
            progress: ProgressCallback | None = None) -> GenerateResult:
        """Prepare ``request`` for ``card`` and generate it; `ConfigError` if the card cannot."""
        return self.generate(self.prepare(request, [card])[0], progress=progress)

    async def arun(self, request: GenerateRequest, card: ModelCard, *,
                   progress: ProgressCallback | None = None) -> GenerateResult:
        return await self.agenerate(self.prepare(request, [card])[0], progress=progress)

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def runnable(prepared: Prepared) -> Prepared:
    """``prepared`` itself, or `ConfigError` when its card cannot serve its request."""
    if not prepared.ok:
        from imagegen.errors import ConfigError

        raise ConfigError(f"{prepared.card.id} cannot serve this request: {'; '.join(prepared.missing)}")
    return prepared


def price_estimate(card: ModelCard, width: int, height: int, images: int) -> float:
    """USD for ``images`` images at ``width`` x ``height`` from the card's price units (per run,
    image, megapixel, GPU second)."""
    # One prediction per image, no input images: an adapter that knows better prices its plan.
    price = card.price
    if not price.tiers and price.megapixel_rounding == "exact":  # the common case, priced inline
        # the same sum, in the same order, as Price.estimate
        cost = (price.per_run * images + price.per_image * images
                + price.per_megapixel * (width * height / MEGAPIXEL) * images
                + price.per_gpu_second * (card.latency_s * images))
        return round(cost, 6)
    return price.estimate(images=images, output_pixels=width * height, runs=images,
                          gpu_seconds=card.latency_s * images)


def check_capabilities(request: GenerateRequest, card: ModelCard,
                       needs: RequestNeeds | None = None) -> Prepared:
    """The generic part of preparing: hard needs vs. a card's capabilities (``missing``), softer
    ones as warnings; no cost yet.

    ``needs``: ``request.needs()`` when the caller already has it (checking many cards).
    """
    missing, warnings, _ = generic_verdicts([card], request.needs() if needs is None else needs)[0]
    return Prepared(card, request, list(missing), list(warnings))


Verdict = tuple[tuple[str, ...], tuple[str, ...], "float | None"]  # (missing, warnings, cost)

# The generic verdicts worked out so far, per request needs and card object (cards are frozen,
# and providers hand out the same card objects on every call). The router screens every card of
# a catalog on every decision, mostly for the same few needs. An entry holds its card, so the
# card's id is not reused while the entry is kept.
_VERDICTS: dict[RequestNeeds, dict[int, tuple[ModelCard, Verdict]]] = {}
_NEEDS_KEPT = 64  # needs remembered; past that the memo starts again
_CARDS_KEPT = 4096  # cards remembered per needs (a provider may make new cards per call)


def generic_verdicts(cards: list[ModelCard], needs: RequestNeeds) -> list[Verdict]:
    """Per card: (missing, warnings, cost) from the card alone: its capabilities against
    ``needs`` and, when nothing is missing, `price_estimate`."""
    known = _VERDICTS.get(needs)
    if known is None:
        if len(_VERDICTS) >= _NEEDS_KEPT:
            _VERDICTS.clear()
        known = _VERDICTS[needs] = {}
    elif len(known) >= _CARDS_KEPT:
        known.clear()
    out = []
    for card in cards:
        entry = known.get(id(card))
        if entry is None or entry[0] is not card:
            missing, warnings = _screen(card.capabilities, needs)
            cost = None if missing else price_estimate(card, needs.width, needs.height, needs.images)
            entry = known[id(card)] = (card, (missing, warnings, cost))
        out.append(entry[1])
    return out


def _screen(caps: Capabilities, n: RequestNeeds) -> tuple[tuple[str, ...], tuple[str, ...]]:
    hard: list[str] = []
    if n.init_image or n.reference_images or not caps.txt2img:  # (most requests: text alone)
        hard.extend(image_misses(n, caps))  # init image (img2img, inpaint, edit), references
    if n.controlnet and not caps.controlnet:
        hard.append("has no ControlNet")
    if n.lora and not caps.lora:
        hard.append("does not load LoRAs")
    if n.seed_fixed and not caps.seed:
        hard.append("does not honour a fixed seed")
    if n.hires and not caps.hires_fix:
        hard.append("has no hires fix")
    width, height = n.width, n.height
    if not caps.aspect_ratios or caps.custom_size:
        if max(width, height) > caps.max_side or min(width, height) < caps.min_side:
            hard.append(f"size {width}x{height} is outside {caps.min_side}..{caps.max_side} px")

    soft: list[str] = []
    if n.negative_prompt and not caps.negative_prompt:
        soft.append("negative_prompt ignored: the model does not take one")
    if n.clip_skip and not caps.clip_skip:
        soft.append("clip_skip ignored: the model has no CLIP skip")
    if n.variation and not caps.variation_seed:
        soft.append("variation seed ignored: the model has no seed variations")
    if n.sampler and not caps.sampler:
        soft.append(f"sampler {n.sampler!r} ignored: the model uses its own")
    if n.cfg_scale and not caps.cfg:
        soft.append("cfg_scale ignored: the model has no guidance setting")
    steps = n.steps
    if steps is not None and caps.steps_range is None:
        soft.append("steps ignored: the model has a fixed step count")
    elif steps is not None and not caps.steps_range[0] <= steps <= caps.steps_range[1]:
        lo, hi = caps.steps_range
        soft.append(f"steps {steps} clamped to {max(lo, min(hi, steps))} (model range {lo}..{hi})")
    if n.output_format not in caps.output_formats:
        soft.append(f"output_format {n.output_format} unavailable: converted from "
                    f"{caps.output_formats[0]}")
    return tuple(hard), tuple(soft)
