"""The `Provider` protocol every backend implements, and a base class with the shared parts.

A provider knows only its own API: which models it serves (`ModelCard`s), what of a request a
card cannot honour (`check`), what a call costs (`estimate_cost`) and how to run it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from imagegen.catalog import ModelCard
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


# Raise imagegen.errors.CancelledError from the callback to stop between steps.
ProgressCallback = Callable[[Progress], None]


@dataclass
class CheckResult:
    """What a card cannot honour: ``missing`` excludes it, ``warnings`` go into the result."""

    missing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

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

    def check(self, request: GenerateRequest, card: ModelCard) -> CheckResult: ...

    def estimate_cost(self, request: GenerateRequest, card: ModelCard) -> float: ...

    def generate(self, request: GenerateRequest, card: ModelCard, *,
                 progress: ProgressCallback | None = None) -> GenerateResult: ...

    async def agenerate(self, request: GenerateRequest, card: ModelCard, *,
                        progress: ProgressCallback | None = None) -> GenerateResult: ...

    def close(self) -> None: ...


class BaseProvider:
    """Shared defaults: price-based cost, capability checks from the card, async via a thread."""

    name = "base"

    def __init__(self, settings: Settings | None = None):
        from imagegen.settings import Settings

        self.settings = settings or Settings()

    def models(self) -> list[ModelCard]:
        return []

    def card_for(self, model: str) -> ModelCard | None:
        return None

    def check(self, request: GenerateRequest, card: ModelCard) -> CheckResult:
        return check_capabilities(request, card)

    def estimate_cost(self, request: GenerateRequest, card: ModelCard) -> float:
        width, height = request.size()
        return price_estimate(card, width, height, request.image_count)

    def check_many(self, request: GenerateRequest, cards: list[ModelCard],
                   needs: RequestNeeds | None = None) -> list[tuple[CheckResult, float | None]]:
        """`check` for each card and, where nothing is missing, `estimate_cost`.

        The router asks this once per provider per decision instead of twice per card, so the
        request's needs are derived once, not once per card. A subclass that overrides only
        `check` or `estimate_cost` has its own method called per card, as the router would.
        """
        needs = request.needs() if needs is None else needs
        own_check = type(self).check is not BaseProvider.check
        cost_of = self.cost_function(request, needs)
        results: list[tuple[CheckResult, float | None]] = []
        for card in cards:
            check = self.check(request, card) if own_check else check_capabilities(request, card, needs)
            results.append((check, None if check.missing else cost_of(card)))
        return results

    def cost_function(self, request: GenerateRequest, needs: RequestNeeds) -> Callable[[ModelCard], float]:
        """`estimate_cost` for this request as a function of the card: the price formula on
        needs already derived, or the subclass's own `estimate_cost` when it has one."""
        if type(self).estimate_cost is BaseProvider.estimate_cost:
            return lambda card: price_estimate(card, needs.width, needs.height, needs.images)
        return partial(self.estimate_cost, request)

    def generate(self, request: GenerateRequest, card: ModelCard, *,
                 progress: ProgressCallback | None = None) -> GenerateResult:
        raise NotImplementedError

    async def agenerate(self, request: GenerateRequest, card: ModelCard, *,
                        progress: ProgressCallback | None = None) -> GenerateResult:
        return await asyncio.to_thread(self.generate, request, card, progress=progress)

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def price_estimate(card: ModelCard, width: int, height: int, images: int) -> float:
    """USD for ``images`` images at ``width`` x ``height`` from the card's price (per image,
    per megapixel and per GPU second)."""
    price = card.price
    per_image = price.per_image + price.per_megapixel * width * height / 1e6
    per_image += price.per_gpu_second * card.latency_s
    return round(per_image * images, 6)


def check_capabilities(request: GenerateRequest, card: ModelCard,
                       needs: RequestNeeds | None = None) -> CheckResult:
    """The generic part of `check`: hard needs vs. a card's capabilities, softer ones as warnings.

    ``needs``: ``request.needs()`` when the caller already has it (checking many cards).
    """
    n = request.needs() if needs is None else needs
    caps = card.capabilities
    result = CheckResult()
    hard = result.missing
    if n.init_image and not caps.img2img:
        hard.append("does not take an init image (img2img)")
    if n.mask_image and not caps.inpaint:
        hard.append("does not inpaint (mask_image)")
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

    soft = result.warnings
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
    return result
