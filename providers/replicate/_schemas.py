"""What each Replicate image model accepts: one schema table per model, and fine-tune cards.

A `ModelSchema` is data: the model's inputs (names, types, ranges, enums, defaults, as its
OpenAPI schema declares them) and which input carries each idea of a request (the image to
edit, reference images, steps, guidance, size, LoRAs...). `_translate.py` reads these tables;
no model has code of its own there. Sources: the research notes on Replicate (§9) and on the
2026 catalog (§2-§5: replicate.com version pages, cog-flux, and the nodetool-replicate mirror
of Replicate's OpenAPI schemas @d21aa02). Where a note says UNCONFIRMED, so does ``notes``.
Prices and capabilities are the shipped cards in `imagegen/data/catalog.json`; fine-tuned
versions get a card from here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from imagegen.catalog import Capabilities, Elo, ModelCard, Price, cloud_cards

SCHEMA_SOURCE = "cog-flux predict.py @51e81e0 and replicate.com version pages (2025-07)"
NT = "nodetool-replicate generate.py @d21aa02 (2026-04-23), from Replicate's OpenAPI schemas"

# cog-flux predict.py: aspect ratio -> pixel size at 1 megapixel.
RATIO_SIZES: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024), "16:9": (1344, 768), "21:9": (1536, 640), "3:2": (1216, 832),
    "2:3": (832, 1216), "4:5": (896, 1088), "5:4": (1088, 896), "3:4": (896, 1152),
    "4:3": (1152, 896), "9:16": (768, 1344), "9:21": (640, 1536),
}
FLUX_RATIOS = tuple(RATIO_SIZES)
PRO_RATIOS = ("custom", "1:1", "16:9", "3:2", "2:3", "4:5", "5:4", "9:16", "3:4", "4:3")
ULTRA_RATIOS = ("21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16", "9:21")
MATCH = "match_input_image"  # the enum value that keeps an input image's shape

# Replicate spells JPEG "jpg"; requests use the file-format names png/jpeg/webp.
FORMAT_TO_REPLICATE = {"png": "png", "jpeg": "jpg", "webp": "webp"}
REPLICATE_TO_FORMAT = {v: k for k, v in FORMAT_TO_REPLICATE.items()} | {"jpeg": "jpeg"}

H100_PER_SECOND = Price(
    per_gpu_second=0.001525, gpu="gpu-h100",
    source="replicate.com/pricing: gpu-h100 $0.001525/s; 'Flux fine-tunes run on H100s' "
           "(snapshot date unknown)",
    date="")


@dataclass(frozen=True)
class Input:
    """One model input as the version's OpenAPI schema declares it."""

    type: str  # "string", "integer", "number", "boolean", "array" (of URI strings)
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[Any, ...] | None = None
    default: Any = None
    max_items: int | None = None  # arrays
    required: bool = False

    def problem(self, value: Any) -> str | None:
        """Why ``value`` would fail Replicate's validation, or None."""
        kinds = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
                 "array": (list, tuple)}
        if isinstance(value, bool) and self.type != "boolean" or not isinstance(value, kinds[self.type]):
            return f"must be a {self.type}, got {value!r}"
        if isinstance(value, (list, tuple)):
            if self.max_items is not None and len(value) > self.max_items:
                return f"takes at most {self.max_items} items; got {len(value)}"
            return None
        if self.enum is not None and value not in self.enum:
            return f"must be one of {', '.join(map(str, self.enum))}; got {value!r}"
        if isinstance(value, (int, float)):  # strings and booleans have no range
            if self.minimum is not None and value < self.minimum:
                return f"must be at least {self.minimum:g}; got {value}"
            if self.maximum is not None and value > self.maximum:
                return f"must be at most {self.maximum:g}; got {value}"
        return None


def S(default: Any = None, enum: tuple | None = None, required: bool = False) -> Input:  # noqa: N802
    return Input("string", enum=enum, default=default, required=required)


def I(lo: float | None = None, hi: float | None = None, default: Any = None) -> Input:  # noqa: N802, E743
    return Input("integer", lo, hi, default=default)


def N(lo: float | None = None, hi: float | None = None, default: Any = None) -> Input:  # noqa: N802
    return Input("number", lo, hi, default=default)


def B(default: bool | None = None) -> Input:  # noqa: N802
    return Input("boolean", default=default)


def A(max_items: int | None) -> Input:  # noqa: N802
    return Input("array", max_items=max_items)


@dataclass(frozen=True)
class ModelSchema:
    """How to talk to one model: its inputs, and which of them carries each request idea.

    Size: ``size_rule`` is "cog-flux" (ratio table at 1 MP, ``megapixels`` "1"/"0.25"),
    "ultra" (the cog-flux table doubled, about 4 MP), or "ratio" (the ratio at the model's
    megapixels, sides rounded to ``size_multiple``; exact pixel sizes UNCONFIRMED). With
    ``aspect_ratio="custom"`` in the enum, ``width``/``height`` give any size in their range.
    ``megapixel_field`` chooses among ``megapixel_values`` (enum value -> MP).
    """

    inputs: dict[str, Input]
    output: str  # "list" (array of URIs) or "single" (one URI)
    size_rule: str = "ratio"
    steps_field: str | None = None
    guidance_field: str | None = None
    custom_multiple: int = 32  # width/height granularity with aspect_ratio "custom"
    size_multiple: int = 16
    lora_slots: tuple[tuple[str, str], ...] = ()  # (weights field, scale field) in order
    image_fields: tuple[str, ...] = ()  # img2img/inpaint: (image, strength or "", mask or "")
    edit_field: str | None = None  # the image an instruction edits (a string, or the list below)
    reference_field: str | None = None  # content references the prompt can name
    style_reference_field: str | None = None  # style-only references (Midjourney --sref)
    character_reference_field: str | None = None  # a character/face reference (--cref)
    negative_field: str | None = None
    megapixel_field: str | None = None
    megapixel_values: dict[str, float] = field(default_factory=dict)
    base_megapixels: float = 1.0  # without a megapixel field
    count_field: str | None = None  # images per prediction, for provider_options only
    source: str = SCHEMA_SOURCE
    notes: str = ""

    @property
    def max_outputs(self) -> int:
        spec = self.inputs.get(self.count_field or "")
        return int(spec.maximum) if spec and spec.maximum else 1

    @property
    def ratios(self) -> tuple[str, ...]:
        spec = self.inputs.get("aspect_ratio")
        return tuple(r for r in (spec.enum or ()) if ":" in r) if spec else ()

    @property
    def allows_custom(self) -> bool:
        spec = self.inputs.get("aspect_ratio")
        return spec is not None and "custom" in (spec.enum or ()) and "width" in self.inputs

    @property
    def matches_input(self) -> bool:
        spec = self.inputs.get("aspect_ratio")
        return spec is not None and MATCH in (spec.enum or ())

    @property
    def takes_seed(self) -> bool:
        return "seed" in self.inputs

    def list_limit(self, name: str | None) -> int:
        """How many images input ``name`` takes: its max_items, 1 for a string, 0 if absent."""
        spec = self.inputs.get(name or "")
        if spec is None:
            return 0
        if spec.type == "array":
            return spec.max_items if spec.max_items is not None else 16
        return 1

    def default(self, name: str) -> Any:
        spec = self.inputs.get(name)
        return spec.default if spec else None

    def format_name(self, request_format: str) -> str | None:
        """The model's spelling of png/jpeg/webp, or None when it cannot give that format."""
        allowed = self.inputs["output_format"].enum or () if "output_format" in self.inputs else ()
        for name in (FORMAT_TO_REPLICATE[request_format], request_format):
            if name in allowed:
                return name
        return None


FluxModel = ModelSchema  # the name this table had when it held the FLUX.1 models only

_FORMATS = ("webp", "jpg", "png")
_JPG_PNG = ("jpg", "png")

# -- FLUX.1 (cog-flux and BFL's pro models) --------------------------------------------------

_COMMON = {
    "prompt": S(required=True),
    "aspect_ratio": S("1:1", FLUX_RATIOS),
    "num_outputs": I(1, 4, 1),
    "seed": I(),
    "output_format": S("webp", _FORMATS),
    "output_quality": I(0, 100, 80),
    "disable_safety_checker": B(False),
    "go_fast": B(True),
    "megapixels": S("1", ("1", "0.25")),
}
_DEV = {
    **_COMMON,
    "image": S(),
    "prompt_strength": N(0, 1, 0.8),
    "num_inference_steps": I(1, 50, 28),
    "guidance": N(0, 10, 3),
}
_LORA = {
    "lora_weights": S(), "lora_scale": N(-1, 3, 1.0),
    "extra_lora": S(), "extra_lora_scale": N(-1, 3, 1.0),
}
_PRO = {
    "prompt": S(required=True),
    "image_prompt": S(),
    "aspect_ratio": S("1:1", PRO_RATIOS),
    "width": I(256, 1440), "height": I(256, 1440),
    "safety_tolerance": I(1, 6, 2),
    "seed": I(),
    "prompt_upsampling": B(False),
    "output_format": S("webp", _FORMATS),
    "output_quality": I(0, 100, 80),
}
_COG_MP = {"1": 1.0, "0.25": 0.25}
_COG: dict[str, Any] = dict(size_rule="cog-flux", megapixel_field="megapixels", megapixel_values=_COG_MP,
            count_field="num_outputs")
_KONTEXT_RATIOS = (MATCH, "1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "4:5", "5:4",
                   "21:9", "9:21", "2:1", "1:2")
_KONTEXT = {
    "prompt": S(required=True),
    "input_image": S(),
    "aspect_ratio": S(MATCH, _KONTEXT_RATIOS),
    "output_format": S("png", _JPG_PNG),
    "safety_tolerance": I(0, 6, 2),
    "prompt_upsampling": B(False),
    "seed": I(),
}

# -- FLUX.2 ----------------------------------------------------------------------------------

_F2_RATIOS = (MATCH, "custom", "1:1", "16:9", "3:2", "2:3", "4:5", "5:4", "9:16", "3:4", "4:3")
_F2_MP = {"0.5 MP": 0.5, "1 MP": 1.0, "2 MP": 2.0, "4 MP": 4.0}


def _flux2(max_images: int, **extra: Input) -> dict[str, Input]:
    return {
        "prompt": S(required=True),
        "input_images": A(max_images),
        "aspect_ratio": S("1:1", _F2_RATIOS),
        "resolution": S("1 MP", (MATCH, *_F2_MP)),
        "width": I(256, 2048), "height": I(256, 2048),
        "safety_tolerance": I(1, 5, 2),
        "seed": I(),
        "output_format": S("webp", _FORMATS),
        "output_quality": I(0, 100, 80),
        **extra,
    }


_F2: dict[str, Any] = dict(size_rule="ratio", custom_multiple=16, edit_field="input_images",
           reference_field="input_images", megapixel_field="resolution", megapixel_values=_F2_MP)
_KLEIN_MP = {"0.25": 0.25, "0.5": 0.5, "1": 1.0, "2": 2.0, "4": 4.0}
_KLEIN = {
    "prompt": S(required=True),
    "images": A(5),
    "aspect_ratio": S("1:1", ("1:1", "16:9", "9:16", "3:2", "2:3", "4:3", "3:4", "5:4", "4:5",
                              "21:9", "9:21", MATCH)),
    "output_megapixels": S("1", tuple(_KLEIN_MP)),
    "seed": I(),
    "go_fast": B(False),
    "output_format": S("jpg", _FORMATS),
    "output_quality": I(0, 100, 95),
    "disable_safety_checker": B(False),
}

# -- other vendors ---------------------------------------------------------------------------

_SAFETY = ("block_low_and_above", "block_medium_and_above", "block_only_high")
_BANANA_RATIOS = (MATCH, "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
_K_MP = {"1K": 1.0, "2K": 4.0, "4K": 16.0}
_IMAGEN = {
    "prompt": S(required=True),
    "aspect_ratio": S("1:1", ("1:1", "9:16", "16:9", "3:4", "4:3")),
    "safety_filter_level": S("block_only_high", _SAFETY),
    "output_format": S("jpg", _JPG_PNG),
}
_SEEDREAM_RATIOS = (MATCH, "1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3", "21:9")
_SEEDREAM: dict[str, Any] = dict(edit_field="image_input", reference_field="image_input", megapixel_field="size")
_IDEOGRAM = {
    "prompt": S(required=True),
    "aspect_ratio": S("1:1", ("1:3", "3:1", "1:2", "2:1", "9:16", "16:9", "10:16", "16:10", "2:3",
                              "3:2", "3:4", "4:3", "4:5", "5:4", "1:1")),
    "resolution": S("None"),  # 69 fixed WxH values; not used by the translation
    "style_type": S("None", ("None", "Auto", "General", "Realistic", "Design")),
    "style_preset": S("None"),  # 62 named presets
    "magic_prompt_option": S("Auto", ("Auto", "On", "Off")),
    "image": S(), "mask": S(),
    "style_reference_images": A(None),
    "seed": I(None, 2147483647),
}
_RECRAFT_RATIOS = ("Not set", "1:1", "4:3", "3:4", "3:2", "2:3", "16:9", "9:16", "1:2", "2:1", "7:5",
                   "5:7", "4:5", "5:4", "3:5", "5:3")
_PHOTON_RATIOS = ("1:1", "3:4", "4:3", "9:16", "16:9", "9:21", "21:9")

MODELS: dict[str, ModelSchema] = {
    # FLUX.1 ---------------------------------------------------------------------------------
    "black-forest-labs/flux-schnell": ModelSchema(
        {**_COMMON, "num_inference_steps": I(1, 4, 4)}, "list", **_COG,
        steps_field="num_inference_steps"),
    "black-forest-labs/flux-dev": ModelSchema(
        _DEV, "list", **_COG, steps_field="num_inference_steps", guidance_field="guidance",
        image_fields=("image", "prompt_strength")),
    "black-forest-labs/flux-dev-lora": ModelSchema(
        {**_DEV, **_LORA, "hf_api_token": S(), "civitai_api_token": S()},
        "list", **_COG, steps_field="num_inference_steps", guidance_field="guidance",
        lora_slots=(("lora_weights", "lora_scale"), ("extra_lora", "extra_lora_scale")),
        image_fields=("image", "prompt_strength"),
        notes="live schema not retrieved (UNCONFIRMED); cog-flux DevLoraPredictor"),
    "black-forest-labs/flux-schnell-lora": ModelSchema(
        {**_COMMON, "num_inference_steps": I(1, 4, 4), "lora_weights": S(), "lora_scale": N(-1, 3, 1.0)},
        "list", **_COG, steps_field="num_inference_steps",
        lora_slots=(("lora_weights", "lora_scale"),), source=NT,
        notes="output shape assumed a list like flux-schnell (UNCONFIRMED)"),
    "black-forest-labs/flux-krea-dev": ModelSchema(
        _DEV, "list", **_COG, steps_field="num_inference_steps", guidance_field="guidance",
        image_fields=("image", "prompt_strength"), source="api.core.today mirror (2026)",
        notes="fields per the mirror; defaults, enums and output shape assumed from flux-dev "
              "(UNCONFIRMED)"),
    "black-forest-labs/flux-pro": ModelSchema(
        {**_PRO, "steps": I(1, 50, 25), "guidance": N(2, 5, 3), "interval": N(1, 4, 2)},
        "single", "cog-flux", steps_field="steps", guidance_field="guidance",
        notes="newer aspect_ratio enum UNCONFIRMED: the 1.1-pro list (with custom) is assumed"),
    "black-forest-labs/flux-1.1-pro": ModelSchema(_PRO, "single", "cog-flux"),
    "black-forest-labs/flux-1.1-pro-ultra": ModelSchema(
        {"prompt": S(required=True), "image_prompt": S(),
         "image_prompt_strength": N(0, 1, 0.1),
         "aspect_ratio": S("1:1", ULTRA_RATIOS),
         "safety_tolerance": I(1, 6, 2), "seed": I(),
         "raw": B(False),
         "output_format": S("jpg", _JPG_PNG)},
        "single", "ultra", base_megapixels=4.0, notes="about 4 MP; no width/height, steps or guidance"),
    "black-forest-labs/flux-kontext-pro": ModelSchema(
        _KONTEXT, "single", edit_field="input_image", source=NT),
    "black-forest-labs/flux-kontext-max": ModelSchema(
        _KONTEXT, "single", edit_field="input_image",
        source="replicate.com version page b94039e5 (prompt, input_image, aspect_ratio, seed)",
        notes="the other fields are assumed to mirror kontext-pro (UNCONFIRMED)"),
    "black-forest-labs/flux-kontext-dev": ModelSchema(
        {"prompt": S(required=True), "input_image": S(required=True),
         "aspect_ratio": S(MATCH, _KONTEXT_RATIOS),
         "num_inference_steps": I(4, 50, 30), "guidance": N(0, 10, 2.5), "seed": I(),
         "output_format": S("webp", _FORMATS), "output_quality": I(0, 100, 80),
         "disable_safety_checker": B(False), "go_fast": B(True)},
        "single", edit_field="input_image", steps_field="num_inference_steps",
        guidance_field="guidance", source="replicate.com version page a1408d2c; docs.kkiai.com",
        notes="the aspect_ratio enum is assumed to be kontext-pro's; go_fast is from one mirror "
              "only (UNCONFIRMED)"),
    "black-forest-labs/flux-fill-pro": ModelSchema(
        {"prompt": S(required=True), "image": S(required=True), "mask": S(),
         "steps": I(15, 50, 50), "guidance": N(1.5, 100, 60),
         "outpaint": S("None", ("None", "Zoom out 1.5x", "Zoom out 2x", "Make square",
                                "Left outpaint", "Right outpaint", "Top outpaint", "Bottom outpaint")),
         "safety_tolerance": I(1, 6, 2), "prompt_upsampling": B(False), "seed": I(),
         "output_format": S("jpg", _JPG_PNG)},
        "single", steps_field="steps", guidance_field="guidance", image_fields=("image", "", "mask"),
        source=NT, notes="renders at the input image's size; output shape assumed one URI "
                         "(UNCONFIRMED)"),
    # FLUX.2 ---------------------------------------------------------------------------------
    "black-forest-labs/flux-2-pro": ModelSchema(_flux2(8), "single", **_F2, source=NT),
    "black-forest-labs/flux-2-flex": ModelSchema(
        _flux2(10, steps=I(1, 50, 30), guidance=N(1.5, 10, 4.5), prompt_upsampling=B(True)),
        "single", **_F2, steps_field="steps", guidance_field="guidance", source=NT,
        notes="output shape assumed one URI like its siblings (UNCONFIRMED)"),
    "black-forest-labs/flux-2-max": ModelSchema(_flux2(8), "single", **_F2, source=NT),
    "black-forest-labs/flux-2-dev": ModelSchema(
        {"prompt": S(required=True), "input_images": A(4), "go_fast": B(True),
         "aspect_ratio": S("1:1", _F2_RATIOS),
         "width": I(256, 1440), "height": I(256, 1440), "seed": I(),
         "output_format": S("webp", _FORMATS), "output_quality": I(0, 100, 80),
         "disable_safety_checker": B(False)},
        "single", edit_field="input_images", reference_field="input_images",
        source="replicate.com version page 7bba46bd"),
    "black-forest-labs/flux-2-klein-4b": ModelSchema(
        _KLEIN, "list", edit_field="images", reference_field="images",
        megapixel_field="output_megapixels", megapixel_values=_KLEIN_MP, source=NT),
    # Google -----------------------------------------------------------------------------------
    "google/nano-banana": ModelSchema(
        {"prompt": S(required=True), "image_input": A(3),
         "aspect_ratio": S("1:1", _BANANA_RATIOS), "output_format": S("jpg", _JPG_PNG)},
        "single", edit_field="image_input", reference_field="image_input",
        source="replicate.com version page f0a9d34b; api.core.today mirror",
        notes="the schema sets no image limit; 3 is Google's documented maximum for Gemini 2.5 "
              "Flash Image (UNCONFIRMED on Replicate)"),
    "google/nano-banana-pro": ModelSchema(
        {"prompt": S(required=True), "image_input": A(14),
         "aspect_ratio": S(MATCH, _BANANA_RATIOS), "resolution": S("2K", tuple(_K_MP)),
         "output_format": S("jpg", _JPG_PNG), "safety_filter_level": S("block_only_high", _SAFETY)},
        "single", edit_field="image_input", reference_field="image_input",
        megapixel_field="resolution", megapixel_values=_K_MP,
        source="replicate.com version page f5318740; api.core.today mirror",
        notes="defaults differ between sources (aspect_ratio match_input_image or 4:3, "
              "output_format jpg or png): the translation always sends both"),
    "google/nano-banana-2": ModelSchema(
        {"prompt": S(required=True), "image_input": A(14),
         "aspect_ratio": S(MATCH, (MATCH, "1:1", "1:4", "1:8", "2:3", "3:2", "3:4", "4:1", "4:3",
                                   "4:5", "5:4", "8:1", "9:16", "16:9", "21:9")),
         "resolution": S("1K", tuple(_K_MP)), "google_search": B(False), "image_search": B(False),
         "output_format": S("jpg", _JPG_PNG)},
        "single", edit_field="image_input", reference_field="image_input",
        megapixel_field="resolution", megapixel_values=_K_MP, source=NT,
        notes="output shape one URI (UNCONFIRMED)"),
    "google/imagen-4": ModelSchema(_IMAGEN, "single", source=NT,
                                   notes="enums assumed to be imagen-4-fast's (UNCONFIRMED)"),
    "google/imagen-4-fast": ModelSchema(_IMAGEN, "single", source=NT),
    "google/imagen-4-ultra": ModelSchema(_IMAGEN, "single", source="replicate.com version page eb08b03f"),
    # ByteDance --------------------------------------------------------------------------------
    "bytedance/seedream-4": ModelSchema(
        {"prompt": S(required=True), "image_input": A(10),
         "size": S("2K", ("1K", "2K", "4K", "custom")),
         "width": I(1024, 4096, 2048), "height": I(1024, 4096, 2048),
         "aspect_ratio": S(MATCH, _SEEDREAM_RATIOS),
         "sequential_image_generation": S("disabled", ("disabled", "auto")),
         "max_images": I(1, 15, 1), "enhance_prompt": B(True)},
        "list", **_SEEDREAM, megapixel_values=_K_MP, source=NT,
        notes="output assumed a list (max_images implies one; UNCONFIRMED); width/height only "
              "with size=custom"),
    "bytedance/seedream-4.5": ModelSchema(
        {"prompt": S(required=True), "image_input": A(14), "size": S("2K", ("2K", "4K")),
         "aspect_ratio": S(MATCH, _SEEDREAM_RATIOS),
         "sequential_image_generation": S("disabled", ("disabled", "auto")),
         "max_images": I(1, 15, 1), "disable_safety_checker": B(False)},
        "list", **_SEEDREAM, megapixel_values={"2K": 4.0, "4K": 16.0}, source=NT,
        notes="output assumed a list (UNCONFIRMED); no 1K size"),
    "bytedance/seedream-5-lite": ModelSchema(
        {"prompt": S(required=True), "image_input": A(14), "size": S("2K", ("2K", "3K")),
         "aspect_ratio": S(MATCH, _SEEDREAM_RATIOS),
         "sequential_image_generation": S("disabled", ("disabled", "auto")),
         "max_images": I(1, 15, 1), "output_format": S("png", ("png", "jpeg"))},
        "list", **_SEEDREAM, megapixel_values={"2K": 4.0, "3K": 9.0}, source=NT,
        notes="output assumed a list (UNCONFIRMED)"),
    # Ideogram, Recraft -------------------------------------------------------------------------
    "ideogram-ai/ideogram-v3-turbo": ModelSchema(
        _IDEOGRAM, "single", image_fields=("image", "", "mask"),
        style_reference_field="style_reference_images", source=NT,
        notes="output shape one URI (UNCONFIRMED); black mask pixels are inpainted"),
    "ideogram-ai/ideogram-v3-balanced": ModelSchema(
        _IDEOGRAM, "single", image_fields=("image", "", "mask"),
        style_reference_field="style_reference_images", source=NT,
        notes="schema assumed identical to ideogram-v3-turbo (UNCONFIRMED)"),
    "ideogram-ai/ideogram-v3-quality": ModelSchema(
        _IDEOGRAM, "single", image_fields=("image", "", "mask"),
        style_reference_field="style_reference_images", source=NT,
        notes="schema assumed identical to ideogram-v3-turbo (UNCONFIRMED)"),
    "recraft-ai/recraft-v3": ModelSchema(
        {"prompt": S(required=True), "size": S("1024x1024"),
         "aspect_ratio": S("Not set", _RECRAFT_RATIOS), "style": S("any")},
        "single", source=NT, notes="output shape one URI (UNCONFIRMED); 'size' ignored once an "
                                   "aspect ratio is set"),
    # Qwen -------------------------------------------------------------------------------------
    "qwen/qwen-image": ModelSchema(
        {"prompt": S(required=True), "negative_prompt": S(" "),
         "aspect_ratio": S("16:9", ("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3")),
         "image_size": S("optimize_for_quality", ("optimize_for_quality", "optimize_for_speed")),
         "image": S(), "strength": N(0, 1, 0.9),
         "num_inference_steps": I(1, 50, 30), "guidance": N(0, 10, 3), "go_fast": B(True),
         "enhance_prompt": B(False), "lora_weights": S(), "lora_scale": N(None, None, 1.0),
         "replicate_weights": S(), "output_format": S("webp", _FORMATS),
         "output_quality": I(0, 100, 80), "disable_safety_checker": B(False), "seed": I()},
        "list", steps_field="num_inference_steps", guidance_field="guidance",
        image_fields=("image", "strength"), negative_field="negative_prompt",
        lora_slots=(("lora_weights", "lora_scale"),), source=NT,
        notes="output assumed a list like other cog models (UNCONFIRMED)"),
    "qwen/qwen-image-edit": ModelSchema(
        {"prompt": S(required=True), "image": S(required=True), "go_fast": B(True),
         "output_format": S("webp", _FORMATS), "output_quality": I(0, 100, 80),
         "disable_safety_checker": B(False), "seed": I()},
        "list", edit_field="image", source=NT,
        notes="renders at the input image's shape; output assumed a list (UNCONFIRMED)"),
    # OpenAI, Stability, MiniMax, Luma ----------------------------------------------------------
    "openai/gpt-image-1.5": ModelSchema(
        {"prompt": S(required=True), "input_images": A(16),
         "quality": S("auto", ("low", "medium", "high", "auto")),
         "aspect_ratio": S("1:1", ("1:1", "3:2", "2:3")),
         "background": S("auto", ("auto", "transparent", "opaque")),
         "moderation": S("auto", ("auto", "low")), "input_fidelity": S("low", ("low", "high")),
         "number_of_images": I(1, 10, 1), "output_format": S("webp", ("png", "jpeg", "webp")),
         "output_compression": I(0, 100, 90), "openai_api_key": S(), "user_id": S()},
        "list", edit_field="input_images", reference_field="input_images",
        count_field="number_of_images", source=NT,
        notes="sizes are OpenAI's (1024x1024, 1536x1024, 1024x1536); output assumed a list "
              "(number_of_images; UNCONFIRMED); at most 16 input images is OpenAI's limit "
              "(UNCONFIRMED on Replicate)"),
    "stability-ai/stable-diffusion-3.5-large": ModelSchema(
        {"prompt": S(required=True), "negative_prompt": S(),
         "aspect_ratio": S("1:1", ("16:9", "1:1", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21")),
         "cfg": N(1, 10, 5), "image": S(), "prompt_strength": N(0, 1, 0.85), "seed": I(),
         "output_format": S("webp", _FORMATS)},
        "single", guidance_field="cfg", image_fields=("image", "prompt_strength"),
        negative_field="negative_prompt", source=NT,
        notes="no steps input in this version; output shape one URI (UNCONFIRMED)"),
    "minimax/image-01": ModelSchema(
        {"prompt": S(required=True),
         "aspect_ratio": S("1:1", ("1:1", "16:9", "4:3", "3:2", "2:3", "3:4", "9:16", "21:9")),
         "number_of_images": I(1, 9, 1), "prompt_optimizer": B(True), "subject_reference": S()},
        "list", character_reference_field="subject_reference", count_field="number_of_images",
        source=NT, notes="output assumed a list (UNCONFIRMED); subject_reference is a face image"),
    "luma/photon": ModelSchema(
        {"prompt": S(required=True), "aspect_ratio": S("16:9", _PHOTON_RATIOS),
         "image_reference_url": S(), "style_reference_url": S(), "character_reference_url": S(),
         "image_reference_weight": N(0, 1, 0.85), "style_reference_weight": N(0, 1, 0.85),
         "seed": I()},
        "single", reference_field="image_reference_url", style_reference_field="style_reference_url",
        character_reference_field="character_reference_url",
        source="replicate.com version page fe142c03"),
    "luma/photon-flash": ModelSchema(
        {"prompt": S(required=True), "aspect_ratio": S("16:9", _PHOTON_RATIOS),
         "image_reference": S(), "style_reference": S(), "character_reference": S(),
         "image_reference_url": S(), "style_reference_url": S(), "character_reference_url": S(),
         "image_reference_weight": N(0, 1, 0.85), "style_reference_weight": N(0, 1, 0.85),
         "seed": I()},
        "single", reference_field="image_reference", style_reference_field="style_reference",
        character_reference_field="character_reference", source=NT,
        notes="the *_url fields are kept as deprecated aliases"),
}

# A version trained by flux-fine-tuner runs cog-flux's HotswapPredictor (research note §7.5).
TRAINED_VERSION = ModelSchema(
    {**{k: v for k, v in _DEV.items() if k != "guidance"},
     "aspect_ratio": S("1:1", FLUX_RATIOS + ("custom",)),
     "width": I(256, 1440), "height": I(256, 1440),
     "mask": S(), "model": S("dev", ("dev", "schnell")),
     "guidance_scale": N(0, 10, 3), "go_fast": B(False),
     "replicate_weights": S(), **_LORA},
    "list", **_COG, steps_field="num_inference_steps", guidance_field="guidance_scale",
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
    flux: ModelSchema = field(default=TRAINED_VERSION, compare=False)

    @property
    def schema(self) -> ModelSchema:
        return self.flux


def target_for(card: ModelCard) -> Target:
    ref = card.model
    if ref in MODELS:
        return Target(ref, None, MODELS[ref])
    found = _VERSION_REF.match(ref)
    if found:
        return Target(found["name"], found["version"], TRAINED_VERSION)
    raise KeyError(ref)


def official_cards() -> list[ModelCard]:
    """The shipped cards of the models this adapter can translate for."""
    return [c for c in cloud_cards("replicate") if c.model in MODELS]


def finetune_card(ref: str) -> ModelCard | None:
    """A card for ``owner/name:<64-hex version>``, a LoRA version trained on Replicate."""
    found = _VERSION_REF.match(ref)
    if not found:
        return None
    schema = TRAINED_VERSION
    return ModelCard(
        id=f"replicate:{ref}", provider="replicate", family="flux",
        display_name=f"{found['name']} (fine-tune {found['version'][:8]})",
        price=H100_PER_SECOND,
        elo=Elo(source="a user's fine-tune has no published rating"),
        latency_s=8.0, latency_source="assumption: FLUX.1 [dev] at 28 steps on one H100",
        default_steps=28,
        capabilities=Capabilities(
            negative_prompt=False, seed=True, lora=True, img2img=True, inpaint=True, cfg=True,
            max_images_per_call=schema.max_outputs, aspect_ratios=FLUX_RATIOS, custom_size=True,
            min_side=256, max_side=1440, steps_range=(1, 50), cfg_range=(0.0, 10.0),
            output_megapixels=(0.25, 1.0), output_formats=("webp", "jpeg", "png")),
        kind="finetune", notes=schema.notes)


# -- sizes -------------------------------------------------------------------------------------


def ratio_of(name: str) -> float:
    w, h = name.split(":")
    return int(w) / int(h)


def nearest_ratio(width: float, height: float, ratios: tuple[str, ...]) -> str:
    """The listed ratio closest to width:height (in log space, so 2:1 and 1:2 are symmetric)."""
    target = math.log(width / height)
    return min(ratios, key=lambda r: abs(math.log(ratio_of(r)) - target))


def nearest_megapixels(wanted: float, values: dict[str, float]) -> str:
    """The enum value whose megapixels are closest to ``wanted`` (log scale)."""
    return min(values, key=lambda k: (abs(math.log(values[k] / wanted)), -values[k]))


def default_megapixels(schema: ModelSchema) -> float:
    """The megapixels a model renders when not asked for a size preset."""
    default = schema.default(schema.megapixel_field) if schema.megapixel_field else None
    return schema.megapixel_values.get(default, schema.base_megapixels) if default else schema.base_megapixels


def ratio_size(schema: ModelSchema, ratio: str, megapixels: float | str | None = None) -> tuple[int, int]:
    """The pixel size a model renders for an aspect ratio at ``megapixels`` (its own default
    when None). Only the cog-flux table is exact; other sizes are UNCONFIRMED estimates."""
    if isinstance(megapixels, str):
        megapixels = schema.megapixel_values.get(megapixels, _COG_MP.get(megapixels, 1.0))
    if megapixels is None:
        megapixels = default_megapixels(schema)
    if schema.size_rule in ("cog-flux", "ultra") and ratio in RATIO_SIZES:
        width, height = RATIO_SIZES[ratio]
        if schema.size_rule == "ultra":
            return width * 2, height * 2
        if megapixels <= 0.25:
            return width // 2, height // 2
        return width, height
    return size_at(ratio_of(ratio), megapixels, schema.size_multiple)


def size_at(ratio: float, megapixels: float, multiple: int = 16) -> tuple[int, int]:
    """Width and height of ``ratio`` (w/h) at ``megapixels`` (1 MP = 1024x1024)."""
    width = math.sqrt(megapixels * 1024 * 1024 * ratio)
    return (round_to(width, multiple), round_to(width / ratio, multiple))


def _size_at_1mp(ratio: float, multiple: int) -> tuple[int, int]:
    return size_at(ratio, 1.0, multiple)


def round_to(value: float, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)
