"""`ModelCard`: what the router and the providers know about one model.

A card is data: price, Elo (with source and date), expected latency and capabilities. The
shipped table lives in `imagegen/data/catalog.json`; providers add cards of their own.
"""

from __future__ import annotations

from typing import Literal

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
