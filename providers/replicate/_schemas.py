"""What each Replicate Flux model accepts: input schemas, sizing rules, and fine-tune cards.

Schemas come from cog-flux predict.py and the replicate.com version pages (research note on
Replicate §7.5, §9, read 2025-06..2025-07). Prices and capabilities of the official models are
the shipped cards in `imagegen/data/catalog.json`; fine-tuned versions get a card from here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from imagegen.catalog import Capabilities, Elo, ModelCard, Price, cloud_cards

SCHEMA_SOURCE = "cog-flux predict.py @51e81e0 and replicate.com version pages (2025-07)"

# cog-flux predict.py: aspect ratio -> pixel size at 1 megapixel.
RATIO_SIZES: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024), "16:9": (1344, 768), "21:9": (1536, 640), "3:2": (1216, 832),
    "2:3": (832, 1216), "4:5": (896, 1088), "5:4": (1088, 896), "3:4": (896, 1152),
    "4:3": (1152, 896), "9:16": (768, 1344), "9:21": (640, 1536),
}
FLUX_RATIOS = tuple(RATIO_SIZES)
PRO_RATIOS = ("custom", "1:1", "16:9", "3:2", "2:3", "4:5", "5:4", "9:16", "3:4", "4:3")
ULTRA_RATIOS = ("21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16", "9:21")

# Replicate spells JPEG "jpg"; requests use the file-format names png/jpeg/webp.
FORMAT_TO_REPLICATE = {"png": "png", "jpeg": "jpg", "webp": "webp"}
REPLICATE_TO_FORMAT = {v: k for k, v in FORMAT_TO_REPLICATE.items()}

H100_PER_SECOND = Price(
    per_gpu_second=0.001525,
    source="replicate.com/pricing: gpu-h100 $0.001525/s; 'Flux fine-tunes run on H100s' "
           "(snapshot date unknown)",
    date="")


@dataclass(frozen=True)
class Input:
    """One model input as the version's OpenAPI schema declares it."""

    type: str  # "string", "integer", "number", "boolean"
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[Any, ...] | None = None
    default: Any = None

    def problem(self, value: Any) -> str | None:
        """Why ``value`` would fail Replicate's validation, or None."""
        kinds = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,)}
        if isinstance(value, bool) and self.type != "boolean" or not isinstance(value, kinds[self.type]):
            return f"must be a {self.type}, got {value!r}"
        if self.enum is not None and value not in self.enum:
            return f"must be one of {', '.join(map(str, self.enum))}; got {value!r}"
        if self.minimum is not None and value < self.minimum:
            return f"must be at least {self.minimum:g}; got {value}"
        if self.maximum is not None and value > self.maximum:
            return f"must be at most {self.maximum:g}; got {value}"
        return None


_COMMON = {
    "prompt": Input("string"),
    "aspect_ratio": Input("string", enum=FLUX_RATIOS, default="1:1"),
    "num_outputs": Input("integer", 1, 4, default=1),
    "seed": Input("integer"),
    "output_format": Input("string", enum=("webp", "jpg", "png"), default="webp"),
    "output_quality": Input("integer", 0, 100, default=80),
    "disable_safety_checker": Input("boolean", default=False),
    "go_fast": Input("boolean", default=True),
    "megapixels": Input("string", enum=("1", "0.25"), default="1"),
}
_DEV = {
    **_COMMON,
    "image": Input("string"),
    "prompt_strength": Input("number", 0, 1, default=0.8),
    "num_inference_steps": Input("integer", 1, 50, default=28),
    "guidance": Input("number", 0, 10, default=3),
}
_LORA = {
    "lora_weights": Input("string"), "lora_scale": Input("number", -1, 3, default=1.0),
    "extra_lora": Input("string"), "extra_lora_scale": Input("number", -1, 3, default=1.0),
}
_PRO = {
    "prompt": Input("string"),
    "image_prompt": Input("string"),
    "aspect_ratio": Input("string", enum=PRO_RATIOS, default="1:1"),
    "width": Input("integer", 256, 1440), "height": Input("integer", 256, 1440),
    "safety_tolerance": Input("integer", 1, 6, default=2),
    "seed": Input("integer"),
    "prompt_upsampling": Input("boolean", default=False),
    "output_format": Input("string", enum=("webp", "jpg", "png"), default="webp"),
    "output_quality": Input("integer", 0, 100, default=80),
}


@dataclass(frozen=True)
class FluxModel:
    """How to talk to one model: its inputs and the names it gives the request's ideas."""

    inputs: dict[str, Input]
    output: str  # "list" (array of URIs) or "single" (one URI)
    size_rule: str  # "cog-flux" (ratios, megapixels), "custom" (ratios or custom WxH), "ultra"
    steps_field: str | None = None
    guidance_field: str | None = None
    custom_multiple: int = 32  # width/height granularity with aspect_ratio "custom"
    lora_slots: tuple[tuple[str, str], ...] = ()  # (weights field, scale field) in order
    image_fields: tuple[str, ...] = ()  # ("image", "prompt_strength"[, "mask"])
    source: str = SCHEMA_SOURCE
    notes: str = ""

    @property
    def max_outputs(self) -> int:
        spec = self.inputs.get("num_outputs")
        return int(spec.maximum) if spec and spec.maximum else 1

    @property
    def ratios(self) -> tuple[str, ...]:
        return tuple(r for r in self.inputs["aspect_ratio"].enum or () if r != "custom")

    @property
    def allows_custom(self) -> bool:
        return "custom" in (self.inputs["aspect_ratio"].enum or ())

    def default(self, name: str) -> Any:
        spec = self.inputs.get(name)
        return spec.default if spec else None


MODELS: dict[str, FluxModel] = {
    "black-forest-labs/flux-schnell": FluxModel(
        {**_COMMON, "num_inference_steps": Input("integer", 1, 4, default=4)}, "list",
        "cog-flux", steps_field="num_inference_steps"),
    "black-forest-labs/flux-dev": FluxModel(
        _DEV, "list", "cog-flux", steps_field="num_inference_steps", guidance_field="guidance",
        image_fields=("image", "prompt_strength")),
    "black-forest-labs/flux-dev-lora": FluxModel(
        {**_DEV, **_LORA, "hf_api_token": Input("string"), "civitai_api_token": Input("string")},
        "list", "cog-flux", steps_field="num_inference_steps", guidance_field="guidance",
        lora_slots=(("lora_weights", "lora_scale"), ("extra_lora", "extra_lora_scale")),
        image_fields=("image", "prompt_strength"),
        notes="live schema not retrieved (UNCONFIRMED); cog-flux DevLoraPredictor"),
    "black-forest-labs/flux-pro": FluxModel(
        {**_PRO, "steps": Input("integer", 1, 50, default=25),
         "guidance": Input("number", 2, 5, default=3), "interval": Input("number", 1, 4, default=2)},
        "single", "custom", steps_field="steps", guidance_field="guidance",
        notes="newer aspect_ratio enum UNCONFIRMED: the 1.1-pro list (with custom) is assumed"),
    "black-forest-labs/flux-1.1-pro": FluxModel(_PRO, "single", "custom"),
    "black-forest-labs/flux-1.1-pro-ultra": FluxModel(
        {"prompt": Input("string"), "image_prompt": Input("string"),
         "image_prompt_strength": Input("number", 0, 1, default=0.1),
         "aspect_ratio": Input("string", enum=ULTRA_RATIOS, default="1:1"),
         "safety_tolerance": Input("integer", 1, 6, default=2), "seed": Input("integer"),
         "raw": Input("boolean", default=False),
         "output_format": Input("string", enum=("jpg", "png"), default="jpg")},
        "single", "ultra", notes="about 4 MP; no width/height, steps or guidance"),
}

# A version trained by flux-fine-tuner runs cog-flux's HotswapPredictor (research note §7.5).
TRAINED_VERSION = FluxModel(
    {**{k: v for k, v in _DEV.items() if k != "guidance"},
     "aspect_ratio": Input("string", enum=FLUX_RATIOS + ("custom",), default="1:1"),
     "width": Input("integer", 256, 1440), "height": Input("integer", 256, 1440),
     "mask": Input("string"), "model": Input("string", enum=("dev", "schnell"), default="dev"),
     "guidance_scale": Input("number", 0, 10, default=3), "go_fast": Input("boolean", default=False),
     "replicate_weights": Input("string"), **_LORA},
    "list", "custom", steps_field="num_inference_steps", guidance_field="guidance_scale",
    custom_multiple=16, lora_slots=(("extra_lora", "extra_lora_scale"),),
    image_fields=("image", "prompt_strength", "mask"),
    source="cog-flux HotswapPredictor (model-cog-configs/hotswap-lora.yaml @51e81e0, 2025-07)",
    notes="the version's own LoRA is built in; request LoRAs go to extra_lora")

_VERSION_REF = re.compile(r"^(?P<name>[\w.-]+/[\w.-]+):(?P<version>[0-9a-f]{64})$")


@dataclass(frozen=True)
class Target:
    """Where a prediction is created: an official model by name, or a version id."""

    model: str  # owner/name
    version: str | None = None
    flux: FluxModel = field(default=TRAINED_VERSION, compare=False)


def target_for(card: ModelCard) -> Target:
    ref = card.model
    if ref in MODELS:
        return Target(ref, None, MODELS[ref])
    found = _VERSION_REF.match(ref)
    if found:
        return Target(found["name"], found["version"], TRAINED_VERSION)
    raise KeyError(ref)


def official_cards() -> list[ModelCard]:
    """The shipped cards of the Flux models this adapter can translate for."""
    return [c for c in cloud_cards("replicate") if c.model in MODELS]


def finetune_card(ref: str) -> ModelCard | None:
    """A card for ``owner/name:<64-hex version>``, a LoRA version trained on Replicate."""
    found = _VERSION_REF.match(ref)
    if not found:
        return None
    flux = TRAINED_VERSION
    return ModelCard(
        id=f"replicate:{ref}", provider="replicate", family="flux",
        display_name=f"{found['name']} (fine-tune {found['version'][:8]})",
        price=H100_PER_SECOND,
        elo=Elo(source="a user's fine-tune has no published rating"),
        latency_s=8.0, latency_source="assumption: FLUX.1 [dev] at 28 steps on one H100",
        default_steps=28,
        capabilities=Capabilities(
            negative_prompt=False, seed=True, lora=True, img2img=True, inpaint=True, cfg=True,
            max_images_per_call=flux.max_outputs, aspect_ratios=FLUX_RATIOS, custom_size=True,
            min_side=256, max_side=1440, steps_range=(1, 50), cfg_range=(0.0, 10.0),
            output_formats=("webp", "jpeg", "png")),
        kind="finetune", notes=flux.notes)


def ratio_of(name: str) -> float:
    w, h = name.split(":")
    return int(w) / int(h)


def nearest_ratio(width: float, height: float, ratios: tuple[str, ...]) -> str:
    """The listed ratio closest to width:height (in log space, so 2:1 and 1:2 are symmetric)."""
    target = math.log(width / height)
    return min(ratios, key=lambda r: abs(math.log(ratio_of(r)) - target))


def ratio_size(flux: FluxModel, ratio: str, megapixels: str = "1") -> tuple[int, int]:
    """The pixel size a model renders for an aspect ratio (pro/ultra sizes are UNCONFIRMED)."""
    width, height = RATIO_SIZES.get(ratio) or _size_at_1mp(ratio_of(ratio), 16)
    if flux.size_rule == "ultra":
        return width * 2, height * 2
    if megapixels == "0.25":
        return width // 2, height // 2
    return width, height


def _size_at_1mp(ratio: float, multiple: int) -> tuple[int, int]:
    width = math.sqrt(1024 * 1024 * ratio)
    return (round_to(width, multiple), round_to(width / ratio, multiple))


def round_to(value: float, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)
