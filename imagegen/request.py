"""`GenerateRequest`: one typed description of an image job, whatever the backend.

Fields use the AUTOMATIC1111 vocabulary. ``None`` means "the backend's default". Every check
raises pydantic's ``ValidationError`` naming the field.
"""

from __future__ import annotations

import base64
import io
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .errors import PromptSyntaxError
from .samplers import normalize_schedule, split_sampler

if TYPE_CHECKING:
    from PIL import Image

SEED_MAX = 2**32 - 1
_URL_PREFIXES = ("http://", "https://", "data:")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ImageInput(_Strict):
    """An input image given as a path, raw bytes, a PIL image or a URL (https or data:)."""

    url: str | None = None
    path: Path | None = None
    data: bytes | None = Field(default=None, repr=False)

    @model_validator(mode="before")
    @classmethod
    def _coerce(cls, value: Any) -> Any:
        if isinstance(value, (dict, ImageInput)):
            return value
        if isinstance(value, bytes):
            return {"data": value}
        if isinstance(value, Path):
            return {"path": value}
        if isinstance(value, str):
            return {"url": value} if value.startswith(_URL_PREFIXES) else {"path": Path(value)}
        if hasattr(value, "save") and hasattr(value, "size"):  # a PIL image
            buffer = io.BytesIO()
            value.save(buffer, format="PNG")
            return {"data": buffer.getvalue()}
        raise ValueError(f"expected a path, bytes, a PIL image or a URL, got {type(value).__name__}")

    @model_validator(mode="after")
    def _exactly_one(self) -> ImageInput:
        given = [name for name in ("url", "path", "data") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of url, path or data")
        if self.path is not None:
            shown = _shown_path(self.path)
            try:
                os.fsencode(self.path)  # a lone surrogate cannot name a file on this system
                found = self.path.is_file()
            except (OSError, ValueError) as exc:  # name too long, NUL, undecodable, no access
                reason = getattr(exc, "strerror", None) or "not a name this system can open"
                raise ValueError(f"image file cannot be used: {shown} ({reason})") from None
            if not found:
                raise ValueError(f"image file not found: {shown}")
        if self.url is not None and self.url.startswith("data:"):
            head, comma, payload = self.url.partition(",")
            if not comma or ";base64" not in head:
                raise ValueError("a data: URL image must be base64 ('data:image/png;base64,...')")
            try:
                base64.b64decode(payload, validate=True)
            except ValueError:
                raise ValueError("the data: URL image is not valid base64") from None
        return self

    def to_bytes(self) -> bytes:
        if self.data is not None:
            return self.data
        if self.path is not None:
            return self.path.read_bytes()
        assert self.url is not None
        if self.url.startswith("data:"):
            return base64.b64decode(self.url.split(",", 1)[1])
        raise ValueError("a remote image URL has no local bytes; the backend fetches it")

    def to_pil(self) -> Image.Image:
        from PIL import Image

        from .errors import ImageReadError

        try:
            image = Image.open(io.BytesIO(self.to_bytes()))
            image.load()
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            what = _shown_path(self.path) if self.path is not None else "the image given"
            raise ImageReadError(f"{what} is not a readable image ({type(exc).__name__})") from None
        return image

    def to_data_url(self) -> str:
        if self.url is not None:
            return self.url
        data = self.to_bytes()
        mime = "image/" + (self.to_pil().format or "png").lower()
        return f"data:{mime};base64," + base64.b64encode(data).decode()


class LoraRef(_Strict):
    """A LoRA by name (from the models dir), path, or URL, with its strength like `<lora:name:0.8>`."""

    name: str = Field(min_length=1)
    weight: float = Field(default=1.0, ge=-5.0, le=5.0)


class HiresFix(_Strict):
    """A1111 "Hires. fix": a second img2img pass on an upscaled first image."""

    scale: float = Field(default=2.0, ge=1.0, le=4.0)
    upscaler: str = "Latent"
    steps: int = Field(default=0, ge=0, le=150, description="0 means the same as the first pass")
    denoising_strength: float = Field(default=0.7, ge=0.0, le=1.0)
    resize_width: int | None = Field(default=None, ge=64, le=8192)
    resize_height: int | None = Field(default=None, ge=64, le=8192)


class ControlNetUnit(_Strict):
    """One ControlNet unit: a control image, or OpenPose keypoints rendered without a detector."""

    model: str = Field(min_length=1)
    image: ImageInput | None = None
    pose: dict[str, Any] | None = Field(default=None, description="OpenPose keypoint JSON")
    weight: float = Field(default=1.0, ge=0.0, le=2.0)
    guidance_start: float = Field(default=0.0, ge=0.0, le=1.0)
    guidance_end: float = Field(default=1.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _check(self) -> ControlNetUnit:
        if (self.image is None) == (self.pose is None):
            raise ValueError("give exactly one of image or pose")
        if self.guidance_start > self.guidance_end:
            raise ValueError("guidance_start must not exceed guidance_end")
        return self


class MidjourneyOptions(_Strict):
    """Midjourney-style parameters with no A1111 equivalent; backends honour or warn."""

    version: str | None = None
    niji: str | None = None
    stylize: int | None = Field(default=None, ge=0, le=1000)
    chaos: int | None = Field(default=None, ge=0, le=100)
    weird: int | None = Field(default=None, ge=0, le=3000)
    quality: float | None = Field(default=None, ge=0.25, le=4)
    tile: bool = False
    style: str | None = None
    stop: int | None = Field(default=None, ge=10, le=100)
    repeat: int | None = Field(default=None, ge=1, le=40)
    image_prompts: list[str] = Field(default_factory=list)
    image_weight: float | None = Field(default=None, ge=0, le=3)
    sref: list[str] = Field(default_factory=list)
    cref: list[str] = Field(default_factory=list)
    oref: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    def is_empty(self) -> bool:
        return self == MidjourneyOptions()


class GenerateRequest(_Strict):
    """One image job. ``None`` fields take the chosen backend's default."""

    prompt: str = Field(min_length=1)
    negative_prompt: str = ""
    width: int | None = Field(default=None, ge=64, le=4096)
    height: int | None = Field(default=None, ge=64, le=4096)
    aspect_ratio: str | None = Field(default=None, examples=["16:9"])
    steps: int | None = Field(default=None, ge=1, le=150)
    cfg_scale: float | None = Field(default=None, ge=0.0, le=30.0)
    sampler: str | None = Field(default=None, examples=["DPM++ 2M Karras", "Euler a"])
    scheduler: str | None = Field(default=None, examples=["Karras"])
    seed: int | None = Field(default=None, ge=-1, le=SEED_MAX, description="None or -1: random")
    variation_seed: int | None = Field(default=None, ge=-1, le=SEED_MAX,
                                       description="A1111 'Variation seed'; None or -1: random")
    variation_strength: float = Field(default=0.0, ge=0.0, le=1.0,
                                      description="A1111 'Variation strength': 0 = the seed's image, 1 = the variation seed's")
    batch_size: int = Field(default=1, ge=1, le=8)
    batch_count: int = Field(default=1, ge=1, le=100)
    model: str | None = Field(default=None, examples=["replicate:black-forest-labs/flux-schnell"])
    loras: list[LoraRef] = Field(default_factory=list)
    vae: str | None = None
    clip_skip: int | None = Field(default=None, ge=1, le=12, description="A1111 numbering: 1 = none")
    hires: HiresFix | None = None
    init_image: ImageInput | None = None
    denoising_strength: float | None = Field(default=None, ge=0.0, le=1.0)
    mask_image: ImageInput | None = None
    edit: bool | None = Field(
        default=None, description="True: the prompt is an instruction for init_image (instruction "
        "editing, e.g. FLUX Kontext); False: img2img (the prompt describes the output); None: either")
    reference_images: list[ImageInput] = Field(
        default_factory=list, max_length=16,
        description="images the prompt refers to ('the cat from image 1'); init_image is not one")
    output_megapixels: float | None = Field(
        default=None, gt=0, le=16.8, examples=[1.0, "2K"],
        description="output size in megapixels (1 MP = 1024x1024), or a preset 0.5K/1K/2K/3K/4K")
    controlnets: list[ControlNetUnit] = Field(default_factory=list)
    output_format: Literal["png", "jpeg", "webp"] = "png"
    midjourney: MidjourneyOptions | None = None
    provider_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description='raw passthrough per provider: {"replicate": {...}}'
    )

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("prompt must not be blank")
        return value

    @field_validator("width", "height")
    @classmethod
    def _multiple_of_8(cls, value: int | None) -> int | None:
        if value is not None and value % 8:
            raise ValueError(f"must be a multiple of 8 (got {value}; nearest {round(value / 8) * 8})")
        return value

    @field_validator("aspect_ratio")
    @classmethod
    def _ratio_shape(cls, value: str | None) -> str | None:
        if value is not None:
            parse_aspect_ratio(value)
        return value

    @field_validator("sampler")
    @classmethod
    def _known_sampler(cls, value: str | None) -> str | None:
        if value is not None:
            split_sampler(value)
        return value

    @field_validator("scheduler")
    @classmethod
    def _known_schedule(cls, value: str | None) -> str | None:
        return normalize_schedule(value) if value is not None else None

    @field_validator("output_megapixels", mode="before")
    @classmethod
    def _megapixel_preset(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().upper() in MEGAPIXEL_PRESETS:
            return MEGAPIXEL_PRESETS[value.strip().upper()]
        return value

    @field_validator("model", "vae")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> GenerateRequest:
        if self.aspect_ratio and self.width and self.height:
            rw, rh = parse_aspect_ratio(self.aspect_ratio)
            # Sizes are multiples of 8, so allow the rounding that forces.
            if abs(self.width / self.height - rw / rh) > 8 / min(self.width, self.height):
                raise ValueError(
                    f"aspect_ratio {self.aspect_ratio} contradicts width/height {self.width}x{self.height}"
                )
        if self.mask_image is not None and self.init_image is None:
            raise ValueError("mask_image needs init_image (inpainting paints into an image)")
        if self.denoising_strength is not None and self.init_image is None:
            raise ValueError(
                "denoising_strength applies to init_image (img2img); for hires fix use hires.denoising_strength"
            )
        if self.edit is not None and self.init_image is None:
            raise ValueError("edit says how to read init_image (True: the prompt is an instruction "
                             "for it; False: img2img), so it needs init_image")
        if self.output_megapixels is not None and self.width and self.height:
            raise ValueError("give either width and height or output_megapixels, not both")
        return self

    # -- derived values ---------------------------------------------------------------

    @property
    def seed_fixed(self) -> bool:
        return self.seed is not None and self.seed != -1

    @property
    def image_count(self) -> int:
        return self.batch_size * self.batch_count

    def size(self, base: int = 512) -> tuple[int, int]:
        """Width and height, filling gaps from aspect_ratio at about base×base pixels (at
        ``output_megapixels`` when that is set)."""
        if self.output_megapixels is not None:
            base = round(math.sqrt(self.output_megapixels) * 1024)
        if self.width and self.height:
            return self.width, self.height
        rw, rh = parse_aspect_ratio(self.aspect_ratio) if self.aspect_ratio else (1, 1)
        if self.width:
            return self.width, _round8(self.width * rh / rw)
        if self.height:
            return _round8(self.height * rw / rh), self.height
        # About base×base pixels, but never a side under 64 px (that would bend the ratio).
        scale = max(math.sqrt(base * base / (rw * rh)), 64 / min(rw, rh))
        return _round8(rw * scale), _round8(rh * scale)

    def needs(self) -> RequestNeeds:
        """What any backend must know about this request, derived once (the router asks this
        for every card of a catalog, so it is computed once per decision, not once per card)."""
        width, height = self.size()
        return RequestNeeds(
            width=width, height=height, images=self.image_count,
            init_image=self.init_image is not None, mask_image=self.mask_image is not None,
            controlnet=bool(self.controlnets), lora=bool(self.loras), seed_fixed=self.seed_fixed,
            hires=self.hires is not None, negative_prompt=bool(self.negative_prompt),
            clip_skip=self.clip_skip not in (None, 1), sampler=self.sampler,
            cfg_scale=self.cfg_scale is not None, steps=self.steps, output_format=self.output_format,
            variation=self.variation_strength > 0,
            edit=self.edit if self.init_image is not None else None,
            reference_images=len(self.reference_images), megapixels=self.output_megapixels,
        )

    # -- other front ends -------------------------------------------------------------

    @classmethod
    def from_midjourney(cls, text: str, **overrides: Any) -> GenerateRequest:
        """Parse a Midjourney-style prompt (`--ar 9:16 --no text --seed 7`); ``overrides`` set
        request fields on top."""
        from .prompt.midjourney import parse_midjourney

        return cls._from_midjourney_prompt(parse_midjourney(text), overrides)

    @classmethod
    def expand_midjourney(cls, text: str, **overrides: Any) -> list[GenerateRequest]:
        """Every job of a permutation/--repeat prompt (at most 40).

        With a fixed seed *s*, repeat *k* starts at seed *s + k × images per job* (*s + k* for one
        image, as Midjourney varies it), so no repeat pays for an image another one already made.
        """
        from .prompt.midjourney_request import expand_jobs

        requests = []
        for prompt, k in expand_jobs(text):
            request = cls._from_midjourney_prompt(prompt, overrides)
            if k and request.seed_fixed:
                request.seed = (request.seed + k * request.image_count) % (SEED_MAX + 1)
            requests.append(request)
        return requests

    @classmethod
    def _from_midjourney_prompt(cls, prompt: Any, overrides: dict[str, Any]) -> GenerateRequest:
        from .prompt.midjourney_request import midjourney_fields

        fields = midjourney_fields(prompt)
        if not fields["prompt"] and "prompt" not in overrides:
            raise PromptSyntaxError("the prompt has no positive text to generate from (only images or "
                                    "negative '::' parts)", column=1)
        options = MidjourneyOptions(**fields.pop("midjourney"))
        fields["midjourney"] = None if options.is_empty() else options
        return cls(**{**fields, **overrides})

    @classmethod
    def from_infotext(cls, text: str, *, include_model: bool = False, **overrides: Any) -> GenerateRequest:
        """Rebuild a request from A1111 "parameters" text. The checkpoint and VAE names are
        used only with ``include_model`` (as `local:<name>`), since they rarely exist elsewhere."""
        from .prompt.infotext import infotext_fields

        return cls(**{**infotext_fields(text, include_model=include_model), **overrides})


class RequestNeeds(NamedTuple):
    """A request's derived values: its size (at the 512 px base), image count, and which
    capabilities it asks of a model. Immutable, and cheap to build once per decision."""

    width: int
    height: int
    images: int
    init_image: bool
    mask_image: bool
    controlnet: bool
    lora: bool
    seed_fixed: bool
    hires: bool
    negative_prompt: bool
    clip_skip: bool  # a CLIP skip other than none
    sampler: str | None
    cfg_scale: bool
    steps: int | None
    output_format: str
    variation: bool  # a variation seed with a strength above 0
    edit: bool | None  # how init_image is read: True instruction edit, False img2img, None either
    reference_images: int  # how many reference images
    megapixels: float | None  # the output size asked in megapixels


# Resolution presets as image models name them (nano-banana, Seedream): the side of a square.
MEGAPIXEL_PRESETS = {"0.5K": 0.25, "1K": 1.0, "2K": 4.0, "3K": 9.0, "4K": 16.0}

ASPECT_PART_MAX = 10_000  # "W:H" sides beyond this are typos, and would overflow float sizes


def parse_aspect_ratio(value: str) -> tuple[int, int]:
    parts = value.strip().split(":")
    # ASCII digits only: str.isdigit() also takes '²' and '١', which int() rejects or misreads.
    if len(parts) != 2 or not all(p.strip().isascii() and p.strip().isdigit() for p in parts):
        raise ValueError(f"aspect_ratio must look like 'W:H' with positive integers, got {value[:40]!r}")
    if any(len(p.strip()) > 6 for p in parts):
        raise ValueError(f"aspect_ratio sides must be at most {ASPECT_PART_MAX}, got {value[:40]!r}")
    w, h = int(parts[0]), int(parts[1])
    if w <= 0 or h <= 0:
        raise ValueError(f"aspect_ratio parts must be positive, got {value!r}")
    if w > ASPECT_PART_MAX or h > ASPECT_PART_MAX:
        raise ValueError(f"aspect_ratio sides must be at most {ASPECT_PART_MAX}, got {value!r}")
    return w, h


def _shown_path(path: Path) -> str:
    """A path for a message: a lone surrogate or control character shown escaped (pydantic
    cannot carry a lone surrogate in an error, and a terminal should not get raw controls)."""
    text = str(path)
    shown = text if text.isprintable() and text.encode("utf-8", "replace").decode() == text else ascii(text)
    return shown if len(shown) <= 120 else shown[:117] + "..."


def _round8(value: float) -> int:
    return max(64, min(4096, int(round(value / 8)) * 8))
