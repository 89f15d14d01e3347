"""`ModelCard`: what the router and the providers know about one model.

A card is data: price, Elo (with source and date), expected latency and capabilities. The
shipped table lives in `imagegen/data/catalog.json`; providers add cards of their own.
"""

from __future__ import annotations

import json
import math
from datetime import date
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MEGAPIXEL = 1024 * 1024  # Replicate counts a 1024x1024 image as 1 MP ("1 MP" = 1024x1024)


class Rating(BaseModel):
    """One published arena figure: the value as that arena printed it, on that date."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: float
    arena: str  # e.g. "Artificial Analysis text-to-image", "LMArena text-to-image"
    source: str = ""
    date: str = ""


class Elo(BaseModel):
    """The rating the router ranks by, never invented: ``value`` is None where no source has one.

    ``value`` is on the catalog's routing scale (`CatalogData.elo_scale`: one arena, one
    snapshot). A figure from another snapshot of the same arena is put on that scale only by a
    stated ``offset`` (``value = measured + offset``, the reason in ``offset_basis``); figures
    from other arenas stay in ``others``, shown but never ranked on.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: float | None = None
    arena: str = ""
    source: str = ""
    date: str = ""  # ISO date (or month) of the snapshot
    measured: float | None = None  # the figure as published, when an offset was applied
    offset: float = 0.0
    offset_basis: str = ""
    others: tuple[Rating, ...] = ()


class Price(BaseModel):
    """USD, in the units the provider bills by; any mix of them (local: all 0).

    ``per_image`` and ``per_megapixel`` are per *output* image / megapixel; inputs have their
    own units. ``tiers`` maps a value of the model input ``tier_input`` (e.g. ``resolution`` =
    ``"4K"``, ``quality`` = ``"high"``, ``go_fast`` = ``"false"``) to the units that tier
    changes. Megapixels count 1024x1024 as 1; ``megapixel_rounding="ceil"`` bills each image's
    megapixels rounded up (and at least ``min_input_megapixels`` per input image).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_image: float = 0.0
    per_megapixel: float = 0.0
    per_input_megapixel: float = 0.0
    per_input_image: float = 0.0
    per_run: float = 0.0  # a fixed fee per prediction
    per_gpu_second: float = 0.0
    gpu: str = ""  # the hardware per_gpu_second is the price of, e.g. "gpu-h100"
    megapixel_rounding: Literal["exact", "ceil"] = "exact"
    min_input_megapixels: float = 0.0
    tier_input: str = ""
    default_tier: str = ""
    tiers: dict[str, dict[str, float]] = Field(default_factory=dict)
    source: str = ""
    date: str = ""

    @model_validator(mode="after")
    def _tiers_name_units(self) -> Price:
        units = set(_UNIT_LABELS)
        for tier, overrides in self.tiers.items():
            unknown = sorted(set(overrides) - units)
            if unknown:
                raise ValueError(f"tier {tier!r}: {unknown[0]!r} is not a price unit ({', '.join(sorted(units))})")
        if self.tiers and not self.tier_input:
            raise ValueError("tiers need tier_input: the model input that selects the tier")
        return self

    def for_tier(self, tier: str | None) -> Price:
        """The price with ``tier``'s units laid over (the default tier when None or unknown)."""
        chosen = self.tiers.get(tier or "") or self.tiers.get(self.default_tier)
        return self.model_copy(update=chosen) if chosen else self

    @property
    def units(self) -> list[str]:
        """The units this price bills by, e.g. ``["$0.015/run", "$0.015/output MP"]``."""
        parts = [f"${getattr(self, name):g}/{label}" for name, label in _UNIT_LABELS.items()
                 if getattr(self, name)]
        if self.per_gpu_second and self.gpu:
            parts[-1] += f" ({self.gpu})"
        return parts

    def megapixels(self, pixels: float, minimum: float = 0.0) -> float:
        mp = max(pixels / MEGAPIXEL, minimum)
        return float(math.ceil(mp - 1e-9)) if self.megapixel_rounding == "ceil" else mp

    def estimate(self, *, images: int, output_pixels: float = MEGAPIXEL,
                 input_pixels: tuple[float, ...] = (), runs: int = 1, gpu_seconds: float = 0.0,
                 tier: str | None = None) -> float:
        """USD for ``runs`` predictions making ``images`` images of ``output_pixels`` each,
        each prediction reading images of ``input_pixels``, running ``gpu_seconds`` in all."""
        p = self.for_tier(tier)
        inputs_mp = sum(p.megapixels(px, p.min_input_megapixels) for px in input_pixels)
        cost = (p.per_run * runs + p.per_image * images
                + p.per_megapixel * p.megapixels(output_pixels) * images
                + (p.per_input_megapixel * inputs_mp + p.per_input_image * len(input_pixels)) * runs
                + p.per_gpu_second * gpu_seconds)
        return round(cost, 6)

    def charge(self, metrics: dict[str, Any] | None, *, runs: int = 1,
               tier: str | None = None) -> float | None:
        """USD from a prediction's ``metrics`` as Replicate bills it, or None when a metric a
        unit of this price needs is missing (then only an estimate can be given)."""
        p = self.for_tier(tier)
        metrics = metrics or {}
        total = p.per_run * runs
        for unit, metric in _UNIT_METRICS.items():
            rate = getattr(p, unit)
            if not rate:
                continue
            count = metrics.get(metric)
            if not isinstance(count, (int, float)) or isinstance(count, bool):
                return None
            total += rate * count
        return round(total, 6)


# Price unit -> how `imagegen models` shows it.
_UNIT_LABELS = {
    "per_run": "run", "per_image": "image", "per_megapixel": "output MP",
    "per_input_image": "input image", "per_input_megapixel": "input MP",
    "per_gpu_second": "GPU-second",
}
# Price unit -> the prediction metric Replicate bills it by (research note §7 "Billing rules").
# ``image_input_count`` is UNCONFIRMED: no captured billingConfig has a per-input-image line.
_UNIT_METRICS = {
    "per_image": "image_output_count", "per_megapixel": "image_output_megapixel_count",
    "per_input_megapixel": "image_input_megapixel_count", "per_input_image": "image_input_count",
    "per_gpu_second": "predict_time",
}


class Capabilities(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    txt2img: bool = True  # False: it needs an image to work on (an edit-only model)
    edit: bool = False  # follows the prompt as an instruction for init_image (FLUX Kontext...)
    max_reference_images: int = 0  # reference_images it takes besides init_image
    output_megapixels: tuple[float, ...] = ()  # output sizes it offers in MP; empty: by size
    negative_prompt: bool = False
    seed: bool = True
    lora: bool = False
    img2img: bool = False
    inpaint: bool = False
    controlnet: bool = False
    hires_fix: bool = False
    clip_skip: bool = False
    variation_seed: bool = False
    sampler: bool = False
    cfg: bool = True
    max_images_per_call: int = 1
    aspect_ratios: tuple[str, ...] = ()  # empty: any size within the limits below
    custom_size: bool = True
    min_side: int = 64
    max_side: int = 4096
    steps_range: tuple[int, int] | None = (1, 150)
    cfg_range: tuple[float, float] | None = (0.0, 30.0)
    output_formats: tuple[str, ...] = ("png", "jpeg", "webp")


class ModelCard(BaseModel):
    """One routable model. ``id`` is ``"<provider>:<model>"``.

    Frozen, as its parts are: a card is shared, not copied (the router remembers what it worked
    out per card object); `model_copy(update=...)` makes a changed one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    provider: str
    family: str = ""
    display_name: str = ""
    price: Price = Field(default_factory=Price)
    elo: Elo = Field(default_factory=Elo)
    latency_s: float = 10.0  # expected seconds for one image, before observations
    latency_source: str = ""  # where latency_s comes from (a measurement, or an assumption)
    default_steps: int | None = None
    capabilities: Capabilities = Field(default_factory=Capabilities)
    kind: Literal["builtin", "catalog", "user", "finetune"] = "catalog"
    notes: str = ""
    # The open weights it runs ("flux.1-dev"), when known: cards of the same weights in two places
    # (local and cloud) have one quality, so they share an Elo (see `elo_for`).
    weights: str = ""

    @model_validator(mode="after")
    def _id_names_provider(self) -> ModelCard:
        if not self.id.startswith(self.provider + ":"):
            raise ValueError(f"card id {self.id!r} must start with '{self.provider}:'")
        return self

    @property
    def model(self) -> str:
        """The provider's own name for the model (the id without the provider prefix)."""
        return self.id.split(":", 1)[1]


# -- the shipped table (imagegen/data/catalog.json) and a user's own table on top ----------------


class CatalogData(BaseModel):
    """A catalog file: cloud cards and Elo priors per local model family."""

    model_config = ConfigDict(extra="ignore")

    cards: list[ModelCard] = Field(default_factory=list)
    local_elo_priors: dict[str, Elo] = Field(default_factory=dict)
    elo_snapshot: dict[str, str] = Field(default_factory=dict)
    overrides: list[str] = Field(default_factory=list)  # card ids a user's file changed or added

    def card(self, card_id: str) -> ModelCard | None:
        return next((c for c in self.cards if c.id == card_id), None)

    def merged(self, other: CatalogData) -> CatalogData:
        """This table with ``other`` laid over it: cards by id, priors by family."""
        cards = {c.id: c for c in self.cards}
        cards.update({c.id: c for c in other.cards})
        return CatalogData(cards=list(cards.values()),
                           local_elo_priors={**self.local_elo_priors, **other.local_elo_priors},
                           elo_snapshot={**self.elo_snapshot, **other.elo_snapshot},
                           overrides=sorted({*self.overrides, *(c.id for c in other.cards)}))


def _read(path: Path | None) -> dict[str, Any]:
    if path is None:
        text = resources.files("imagegen").joinpath("data/catalog.json").read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    return json.loads(text)


@lru_cache(maxsize=1)
def _shipped() -> CatalogData:
    return CatalogData.model_validate(_read(None))


def load_catalog(path: str | Path | None = None) -> CatalogData:
    """The shipped table, with the user's own file (same JSON layout) laid over it when given.

    A user file may hold only the entries it changes, e.g. ``{"local_elo_priors": {"sdxl":
    {"value": 1020, "source": "my votes", "date": "2026-11-01"}}}``.
    """
    shipped = _shipped()
    if path is None:
        return shipped.model_copy(deep=True)
    user = _read(Path(path))
    cards = []
    for card in user.get("cards", []):  # a partial card fills its gaps from the shipped one
        base = shipped.card(card.get("id", ""))
        cards.append({**base.model_dump(), **card} if base is not None else card)
    return shipped.merged(CatalogData.model_validate({**user, "cards": cards}))


def user_catalog_path(home: str | Path) -> Path:
    """Where a user's own table lives: ``<IMAGEGEN_HOME>/catalog.json``."""
    return Path(home) / "catalog.json"


def load_user_catalog(home: str | Path | None) -> CatalogData:
    """The shipped table with ``<home>/catalog.json`` laid over it when that file exists."""
    path = user_catalog_path(home) if home is not None else None
    return load_catalog(path if path is not None and path.is_file() else None)


def cloud_cards(provider: str = "replicate", catalog: CatalogData | None = None) -> list[ModelCard]:
    """The shipped cards of one cloud provider (frozen: the same objects on every call)."""
    catalog = catalog or _shipped()
    return [c for c in catalog.cards if c.provider == provider]


def local_elo_prior(family: str, catalog: CatalogData | None = None) -> Elo:
    """The Elo prior for a local model family (``sd15``, ``sdxl``, ``demo``); unknown is None."""
    catalog = catalog or _shipped()
    prior = catalog.local_elo_priors.get(family)
    return prior if prior is not None else Elo(source=f"no Elo prior for family {family!r}")


def elo_for(card: ModelCard, catalog: CatalogData | None = None) -> Elo:
    """The card's own Elo, else that of a catalog card running the same weights (a local FLUX.1
    [dev] and Replicate's have one quality), else its family prior when it runs locally."""
    if card.elo.value is not None:
        return card.elo
    if card.weights:
        twin = same_weights_elo(card, catalog)
        if twin is not None:
            return twin
    if card.provider != "local":
        return card.elo
    prior = (catalog or _shipped()).local_elo_priors.get(card.family)
    return prior if prior is not None and prior.value is not None else card.elo


SHARED_ELO = "same weights"  # how a shared Elo's source starts


def same_weights_elo(card: ModelCard, catalog: CatalogData | None = None) -> Elo | None:
    """The rated Elo of another catalog card with ``card``'s weights, its source saying so."""
    for other in (catalog or _shipped()).cards:
        if other.weights == card.weights and other.id != card.id and other.elo.value is not None:
            return other.elo.model_copy(update={"source": f"{SHARED_ELO} ({card.weights}) as {other.id}: "
                                                          f"{other.elo.source}"})
    return None


# -- what a request's images ask of a card (shared by every provider's check) -------------------


def image_misses(needs: Any, caps: Capabilities) -> list[str]:
    """Why a card cannot take a request's images (``needs``: `RequestNeeds`): the init image
    as img2img, inpainting or an instruction edit (``needs.edit``), and reference images."""
    missing = []
    if needs.init_image:
        if needs.mask_image:
            if not caps.inpaint:
                missing.append("does not inpaint (mask_image)")
        elif needs.edit is True:
            if not caps.edit:
                missing.append("does not edit by instruction (edit=True needs a model that reads "
                               "the prompt as an instruction for init_image)")
        elif needs.edit is False:
            if not caps.img2img:
                missing.append("does not take an init image (img2img)")
        elif not (caps.img2img or caps.edit):
            missing.append("does not take an init image (img2img or instruction edit)")
    elif not caps.txt2img:
        missing.append("needs an image to edit (init_image): it does not make images from text alone")
    wanted = needs.reference_images
    if wanted > caps.max_reference_images:
        missing.append("takes no reference images" if caps.max_reference_images == 0 else
                       f"takes at most {caps.max_reference_images} reference images (got {wanted})")
    return missing


# -- how old the shipped figures are (`imagegen models --check`) ---------------------------------


def parse_date(text: str) -> date | None:
    """``2026-07-20``, ``2026-07`` or ``2026`` (the start of that month or year); else None."""
    parts = text.strip().lstrip("~").split("-")
    try:
        numbers = [int(p) for p in parts[:3]]
        return date(numbers[0], *(numbers[1:] + [1, 1])[:2]) if numbers else None
    except (ValueError, TypeError):
        return None


def stale_entries(cards: list[ModelCard], today: date, max_age_days: int = 365) -> list[tuple[str, str, str]]:
    """(card id, "price" or "Elo", why) for each price or Elo older than ``max_age_days`` or
    without a date. A null Elo has nothing to age and is not reported."""
    found = []
    for card in cards:
        if card.provider == "local" and not any(card.price.units):
            checks = [("Elo", card.elo.date, card.elo.value is not None)]
        else:
            checks = [("price", card.price.date, True), ("Elo", card.elo.date, card.elo.value is not None)]
        for what, when, applies in checks:
            if not applies:
                continue
            day = parse_date(when)
            if day is None:
                found.append((card.id, what, "no date recorded"))
            elif (today - day).days > max_age_days:
                found.append((card.id, what, f"dated {when}, {(today - day).days} days old"))
    return found
