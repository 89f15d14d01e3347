"""`ModelCard`: what the router and the providers know about one model.

A card is data: price, Elo (with source and date), expected latency and capabilities. The
shipped table lives in `imagegen/data/catalog.json`; providers add cards of their own.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Elo(BaseModel):
    """An arena rating, never invented: ``value`` is None where no source has one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: float | None = None
    source: str = ""
    date: str = ""  # ISO date of the snapshot


class Price(BaseModel):
    """USD; any mix of per image, per megapixel, per GPU-second (local: 0)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_image: float = 0.0
    per_megapixel: float = 0.0
    per_gpu_second: float = 0.0
    source: str = ""
    date: str = ""


class Capabilities(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

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
    """One routable model. ``id`` is ``"<provider>:<model>"``."""

    model_config = ConfigDict(extra="forbid")

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
    """The shipped cards of one cloud provider (fresh copies: callers may change them)."""
    catalog = catalog or _shipped()
    return [c.model_copy(deep=True) for c in catalog.cards if c.provider == provider]


def local_elo_prior(family: str, catalog: CatalogData | None = None) -> Elo:
    """The Elo prior for a local model family (``sd15``, ``sdxl``, ``demo``); unknown is None."""
    catalog = catalog or _shipped()
    prior = catalog.local_elo_priors.get(family)
    return prior if prior is not None else Elo(source=f"no Elo prior for family {family!r}")


def elo_for(card: ModelCard, catalog: CatalogData | None = None) -> Elo:
    """The card's own Elo, else its family prior when it runs locally."""
    if card.elo.value is not None or card.provider != "local":
        return card.elo
    prior = local_elo_prior(card.family, catalog)
    return prior if prior.value is not None else card.elo
