"""Input schemas of the Replicate models the emulator knows, and Replicate-style validation.

Schemas follow the research note on Replicate (§7.3, §7.5, §9: cog-flux predict.py, the model
version pages and flux-fine-tuner train.py, read 2025-06..2025-07) and, for the 2026 catalog
(FLUX.1 Kontext/Krea/Fill, FLUX.2, Google, ByteDance, Ideogram, Recraft, Qwen, OpenAI, Stability,
MiniMax, Luma), the research note on that catalog. Error types and messages
follow the 422 bodies Replicate returns (gojsonschema wording: ``number_lte``, ``enum``, ...).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Field:
    """One model input. ``type`` is a JSON-schema type; ``format="uri"`` marks file inputs."""

    type: str
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[Any, ...] | None = None
    required: bool = False
    format: str | None = None  # "uri": an image URL (for an array: each item)
    max_items: int | None = None  # arrays


@dataclass(frozen=True)
class ModelSpec:
    """A model the emulator can run: its inputs, output shape and how it sizes images."""

    name: str  # owner/name
    version_id: str  # 64 hex
    inputs: dict[str, Field]
    output: str  # "list" (array of uri), "single" (one uri) or "training"
    size_rule: str = "cog-flux"  # "cog-flux", "pro", "ultra", "mp" (ratio at megapixels), "input"
    is_official: bool = True
    description: str = ""
    source: str = ""
    extra_version_ids: tuple[str, ...] = field(default=())
    count_field: str = "num_outputs"  # images per prediction (list outputs)
    count_gate: tuple[str, Any] | None = None  # count_field counts only when this input has this value
    fixed_format: str | None = None  # what a model without an output_format input returns
    mp_field: str | None = None  # "mp" rule: the input choosing the output megapixels
    mp_values: dict[str, float] = field(default_factory=dict)
    base_mp: float = 1.0


def synthetic_version_id(name: str) -> str:
    """A stable 64-hex version id for models whose real id was not recorded."""
    return hashlib.sha256(f"fake-replicate:{name}".encode()).hexdigest()


ASPECT_RATIOS = ("1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21")

# cog-flux predict.py: aspect ratio -> pixel size at 1 megapixel.
ASPECT_RATIO_SIZES: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024), "16:9": (1344, 768), "21:9": (1536, 640), "3:2": (1216, 832),
    "2:3": (832, 1216), "4:5": (896, 1088), "5:4": (1088, 896), "3:4": (896, 1152),
    "4:3": (1152, 896), "9:16": (768, 1344), "9:21": (640, 1536),
}

_FORMATS = ("webp", "jpg", "png")

_FLUX_COMMON: dict[str, Field] = {
    "prompt": Field("string", required=True),
    "aspect_ratio": Field("string", "1:1", enum=ASPECT_RATIOS),
    "num_outputs": Field("integer", 1, 1, 4),
    "seed": Field("integer"),
    "output_format": Field("string", "webp", enum=_FORMATS),
    "output_quality": Field("integer", 80, 0, 100),
    "disable_safety_checker": Field("boolean", False),
    "go_fast": Field("boolean", True),
    "megapixels": Field("string", "1", enum=("1", "0.25")),
}

_FLUX_DEV: dict[str, Field] = {
    **_FLUX_COMMON,
    "image": Field("string", format="uri"),
    "prompt_strength": Field("number", 0.8, 0, 1),
    "num_inference_steps": Field("integer", 28, 1, 50),
    "guidance": Field("number", 3, 0, 10),
}

_PRO_COMMON: dict[str, Field] = {
    "prompt": Field("string", required=True),
    "image_prompt": Field("string", format="uri"),
    "safety_tolerance": Field("integer", 2, 1, 6),
    "seed": Field("integer"),
    "prompt_upsampling": Field("boolean", False),
    "output_format": Field("string", "webp", enum=_FORMATS),
    "output_quality": Field("integer", 80, 0, 100),
}

# §7.5: inputs of a version trained by flux-fine-tuner (cog-flux HotswapPredictor).
TRAINED_VERSION_INPUTS: dict[str, Field] = {
    **{k: v for k, v in _FLUX_DEV.items() if k not in ("guidance",)},
    "aspect_ratio": Field("string", "1:1", enum=ASPECT_RATIOS + ("custom",)),
    "width": Field("integer", None, 256, 1440),
    "height": Field("integer", None, 256, 1440),
    "mask": Field("string", format="uri"),
    "model": Field("string", "dev", enum=("dev", "schnell")),
    "guidance_scale": Field("number", 3, 0, 10),
    "go_fast": Field("boolean", False),
    "replicate_weights": Field("string"),
    "lora_scale": Field("number", 1.0, -1, 3),
    "extra_lora": Field("string"),
    "extra_lora_scale": Field("number", 1.0, -1, 3),
}

# Trainer version ids seen in public code calling the trainer (2024-08 .. 2025-04); the
# API ran the latest trainer whichever of them was named (replicate-python issue #419).
_TRAINER_VERSIONS = (
    "b6af14222e6bd9be257cbc1ea4afda3cd0503e1133083b9d1de0364d8568e6ef",
    "4ffd32160efd92e956d39c5338a9b8fbafca58e03f791f6d8011f3e20e8ea6fa",
    "e440909d3512c31646ee2e0c7d6f6f4923224863a6a10c494606e79fb5844497",
    "26dce37af90b9d997eeb970d92e47de3064d46c300504ae376c75bef6a9022d2",
)

_OPTIMIZERS = ("prodigy", "adam8bit", "adamw8bit", "lion8bit", "adam", "adamw", "lion",
               "adagrad", "adafactor")

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "black-forest-labs/flux-schnell",
            # Seen in public code calling the model; the official route needs no version.
            "c846a69991daf4c0e5d016514849d14ee5b2e6846ce6b9d6f21369e564cfe51e",
            {**_FLUX_COMMON, "num_inference_steps": Field("integer", 4, 1, 4)},
            "list",
            source="cog-flux SchnellPredictor; replicate.com version page c846a699",
        ),
        ModelSpec(
            "black-forest-labs/flux-dev",
            "6e4a938f85952bdabcc15aa329178c4d681c52bf25a0342403287dc26944661d",
            _FLUX_DEV,
            "list",
            source="cog-flux DevPredictor",
        ),
        ModelSpec(
            "black-forest-labs/flux-dev-lora",
            synthetic_version_id("black-forest-labs/flux-dev-lora"),
            {
                **_FLUX_DEV,
                "lora_weights": Field("string"),
                "lora_scale": Field("number", 1.0, -1, 3),
                "extra_lora": Field("string"),
                "extra_lora_scale": Field("number", 1.0, -1, 3),
                "hf_api_token": Field("string"),
                "civitai_api_token": Field("string"),
            },
            "list",
            source="cog-flux DevLoraPredictor (live page not retrieved: UNCONFIRMED)",
        ),
        ModelSpec(
            "black-forest-labs/flux-pro",
            synthetic_version_id("black-forest-labs/flux-pro"),
            {
                **_PRO_COMMON,
                # The newer enum is UNCONFIRMED; this is the 1.1-pro list, which adds custom.
                "aspect_ratio": Field("string", "1:1", enum=(
                    "custom", "1:1", "16:9", "3:2", "2:3", "4:5", "5:4", "9:16", "3:4", "4:3")),
                "width": Field("integer", None, 256, 1440),
                "height": Field("integer", None, 256, 1440),
                "steps": Field("integer", 25, 1, 50),
                "guidance": Field("number", 3, 2, 5),
                "interval": Field("number", 2, 1, 4),
            },
            "single",
            size_rule="pro",
            source="replicate.com flux-pro version pages 84de981c, 2b8181d8",
        ),
        ModelSpec(
            "black-forest-labs/flux-1.1-pro",
            synthetic_version_id("black-forest-labs/flux-1.1-pro"),
            {
                **_PRO_COMMON,
                "aspect_ratio": Field("string", "1:1", enum=(
                    "custom", "1:1", "16:9", "3:2", "2:3", "4:5", "5:4", "9:16", "3:4", "4:3")),
                "width": Field("integer", None, 256, 1440),
                "height": Field("integer", None, 256, 1440),
            },
            "single",
            size_rule="pro",
            source="replicate.com flux-1.1-pro version page 96ccd0e7",
        ),
        ModelSpec(
            "black-forest-labs/flux-1.1-pro-ultra",
            synthetic_version_id("black-forest-labs/flux-1.1-pro-ultra"),
            {
                "prompt": Field("string", required=True),
                "image_prompt": Field("string", format="uri"),
                "image_prompt_strength": Field("number", 0.1, 0, 1),
                "aspect_ratio": Field("string", "1:1", enum=(
                    "21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16",
                    "9:21")),
                "safety_tolerance": Field("integer", 2, 1, 6),
                "seed": Field("integer"),
                "raw": Field("boolean", False),
                "output_format": Field("string", "jpg", enum=("jpg", "png")),
            },
            "single",
            size_rule="ultra",
            source="replicate.com flux-1.1-pro-ultra version page 352185db",
        ),
        ModelSpec(
            "ostris/flux-dev-lora-trainer",
            _TRAINER_VERSIONS[0],
            {
                # Not required by the schema; train() fails without it (see _lifecycle).
                "input_images": Field("string", format="uri"),
                "trigger_word": Field("string", "TOK"),
                "autocaption": Field("boolean", True),
                "autocaption_prefix": Field("string"),
                "autocaption_suffix": Field("string"),
                "steps": Field("integer", 1000, 3, 6000),
                "learning_rate": Field("number", 4e-4),
                "batch_size": Field("integer", 1),
                "resolution": Field("string", "512,768,1024"),
                "lora_rank": Field("integer", 16, 1, 128),
                "caption_dropout_rate": Field("number", 0.05, 0, 1),
                "optimizer": Field("string", "adamw8bit", enum=_OPTIMIZERS),
                "cache_latents_to_disk": Field("boolean", False),
                "layers_to_optimize_regex": Field("string"),
                "gradient_checkpointing": Field("boolean", False),
                "hf_repo_id": Field("string"),
                "hf_token": Field("string"),
                "wandb_api_key": Field("string"),
                "wandb_project": Field("string", "flux_train_replicate"),
                "wandb_run": Field("string"),
                "wandb_entity": Field("string"),
                "wandb_sample_interval": Field("integer", 100, 1),
                "wandb_sample_prompts": Field("string"),
                "wandb_save_interval": Field("integer", 100, 1),
                "skip_training_and_use_pretrained_hf_lora_url": Field("string"),
            },
            "training",
            is_official=False,
            source="replicate/flux-fine-tuner train.py @3dd14e3 (2025-06)",
            extra_version_ids=_TRAINER_VERSIONS[1:],
        ),
    )
}


# -- the 2026 catalog: FLUX.1 Kontext/Krea/Fill, FLUX.2, and the other vendors' official models --
# From the research note catalog_2026.md §2-§5 (replicate.com version pages, the nodetool-replicate
# mirror of Replicate's OpenAPI schemas @d21aa02). Version ids are the recorded ones where known.
# UNCONFIRMED there, and chosen here: output shapes marked (?) and what a model without an
# output_format input returns; item limits are enforced as 422s (they may be run-time failures).

_URI = "uri"
_MATCH = "match_input_image"
_JPG_PNG = ("jpg", "png")


def _prompt() -> Field:
    return Field("string", required=True)


def _images(max_items: int | None) -> Field:
    return Field("array", format=_URI, max_items=max_items)


_KONTEXT_RATIOS = (_MATCH, "1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "4:5", "5:4",
                   "21:9", "9:21", "2:1", "1:2")
_KONTEXT: dict[str, Field] = {
    "prompt": _prompt(), "input_image": Field("string", format=_URI),
    "aspect_ratio": Field("string", _MATCH, enum=_KONTEXT_RATIOS),
    "output_format": Field("string", "png", enum=_JPG_PNG),
    "safety_tolerance": Field("integer", 2, 0, 6), "prompt_upsampling": Field("boolean", False),
    "seed": Field("integer"),
}
_F2_RATIOS = (_MATCH, "custom", "1:1", "16:9", "3:2", "2:3", "4:5", "5:4", "9:16", "3:4", "4:3")
_F2_MP = {"0.5 MP": 0.5, "1 MP": 1.0, "2 MP": 2.0, "4 MP": 4.0}


def _flux2_inputs(max_images: int, **extra: Field) -> dict[str, Field]:
    return {
        "prompt": _prompt(), "input_images": _images(max_images),
        "aspect_ratio": Field("string", "1:1", enum=_F2_RATIOS),
        "resolution": Field("string", "1 MP", enum=(_MATCH, *_F2_MP)),
        "width": Field("integer", None, 256, 2048), "height": Field("integer", None, 256, 2048),
        "safety_tolerance": Field("integer", 2, 1, 5), "seed": Field("integer"),
        "output_format": Field("string", "webp", enum=_FORMATS),
        "output_quality": Field("integer", 80, 0, 100), **extra,
    }


_SAFETY = ("block_low_and_above", "block_medium_and_above", "block_only_high")
_BANANA_RATIOS = (_MATCH, "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
_K = {"1K": 1.0, "2K": 4.0, "4K": 16.0}
_IMAGEN: dict[str, Field] = {
    "prompt": _prompt(), "aspect_ratio": Field("string", "1:1", enum=("1:1", "9:16", "16:9", "3:4", "4:3")),
    "safety_filter_level": Field("string", "block_only_high", enum=_SAFETY),
    "output_format": Field("string", "jpg", enum=_JPG_PNG),
}
_SEEDREAM_RATIOS = (_MATCH, "1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3", "21:9")
_SEQUENTIAL = Field("string", "disabled", enum=("disabled", "auto"))
_IDEOGRAM: dict[str, Field] = {
    "prompt": _prompt(),
    "aspect_ratio": Field("string", "1:1", enum=("1:3", "3:1", "1:2", "2:1", "9:16", "16:9", "10:16",
                                                 "16:10", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "1:1")),
    "resolution": Field("string", "None"), "style_type": Field(
        "string", "None", enum=("None", "Auto", "General", "Realistic", "Design")),
    "style_preset": Field("string", "None"),
    "magic_prompt_option": Field("string", "Auto", enum=("Auto", "On", "Off")),
    "image": Field("string", format=_URI), "mask": Field("string", format=_URI),
    "style_reference_images": _images(None), "seed": Field("integer", None, None, 2147483647),
}
_PHOTON_RATIOS = ("1:1", "3:4", "4:3", "9:16", "16:9", "9:21", "21:9")
_PHOTON_WEIGHTS = {"image_reference_weight": Field("number", 0.85, 0, 1),
                   "style_reference_weight": Field("number", 0.85, 0, 1), "seed": Field("integer")}
_PHOTON_URLS = {name: Field("string", format=_URI) for name in (
    "image_reference_url", "style_reference_url", "character_reference_url")}


# Version ids in the nodetool-replicate mirror @d21aa02; the others are synthetic (official models
# are called by name and report version "hidden" anyway).
_RECORDED_VERSIONS = {
    "stability-ai/stable-diffusion-3.5-large": "2fdf9488b53c1e0fd3aef7b477def1c00d1856a38466733711f9c769942598f5",
    "luma/photon-flash": "8cee7d47f81d8f4f77c1aec44ffb3d1ce09d36388db637ceaa8a6cbcf30b63e1",
    "black-forest-labs/flux-schnell-lora": "83180e3ae073b7f87cd85b8bb649337412fd006d10db49e04ea5e821e87fbeb3",
    "black-forest-labs/flux-fill-pro": "41c767bcbfffe54ef8f05eb4d0100f9314790f7fc43a7b88d73ec06839deddb9",
    "recraft-ai/recraft-v3": "9507e61ddace8b3a238371b17a61be203747c5081ea6070fecd3c40d27318922",
    "qwen/qwen-image": "0bba9e70f78437359725e0989ead45ca8b09e6c12a070dfe9a09e6856b43a44d",
    "qwen/qwen-image-edit": "a072e0d160ef0501120a390f602404655e467a6f591f6574f5742df0b67cbba7",
    "bytedance/seedream-4": "cf7d431991436f19d1c8dad83fe463c729c816d7a21056c5105e75c84a0aa7e9",
    "google/imagen-4-fast": "efb61e33cffb69a1725083f675a44793929553f479918d01d6ce6e00efbee0d7",
    "ideogram-ai/ideogram-v3-turbo": "d9b3748f95c0fe3e71f010f8cc5d80e8f5252acd0e74b1c294ee889eea52a47b",
    "black-forest-labs/flux-kontext-pro": "897a70f5a7dbd8a0611413b3b98cf417b45f266bd595c571a22947619d9ae462",
    "minimax/image-01": "928f3bd6ac899108d0ab8cf7f91dfa39a03eda0175e94c9b4cd075776dececf0",
    "black-forest-labs/flux-2-pro": "ccb5e33141097816e6fab8c895e702fe4c619e4e07500885b71214e9f6382a5c",
    "black-forest-labs/flux-2-flex": "51d0412f4874be5ad0fc559a9174a33b24927cb12729d4e3abf5a4f98ba1a4bc",
    "openai/gpt-image-1.5": "118f53498ea7319519229b2d5bd0d4a69e3d77eb60d6292d5db38125534dc1ca",
    "black-forest-labs/flux-2-max": "9c23b0aaa98765a9676dbdda58b9c9915627751300747bad54cb1c11b135d3ca",
    "black-forest-labs/flux-2-klein-4b": "8e9c42d77b10a2a41af823ac4500f7545be6ebc4e745830fc3f3de10de200542",
    "google/nano-banana-2": "71516450bdbeafc41df33ad538bc8cc6a90f80038a563b1260531c02d694f4fd",
    "bytedance/seedream-4.5": "e563f451edd459e76456dc2b32d7d2c02176059629759923965f9e86494325f6",
    "bytedance/seedream-5-lite": "eeb2857d94c49a5bcbc9d6c6057416e1d3b1a2735a16e08e4def9bf7ee22ec71",
}


def _official(name: str, inputs: dict[str, Field], output: str, **kwargs: Any) -> ModelSpec:
    version = _RECORDED_VERSIONS.get(name) or synthetic_version_id(name)
    return ModelSpec(name, version, inputs, output, **kwargs)


_CATALOG_2026 = (
    _official("black-forest-labs/flux-schnell-lora", {
        **_FLUX_COMMON, "num_inference_steps": Field("integer", 4, 1, 4),
        "lora_weights": Field("string"), "lora_scale": Field("number", 1.0, -1, 3)}, "list", source="NT (?) list"),
    _official("black-forest-labs/flux-krea-dev", _FLUX_DEV, "list",
              source="api.core.today mirror; flux-dev layout (?)"),
    _official("black-forest-labs/flux-kontext-pro", _KONTEXT, "single", size_rule="mp",
              source="NT; replicate.com version page"),
    _official("black-forest-labs/flux-kontext-max", _KONTEXT, "single", size_rule="mp",
              source="replicate.com version page b94039e5; other fields as kontext-pro (?)"),
    _official("black-forest-labs/flux-kontext-dev", {
        "prompt": _prompt(), "input_image": Field("string", required=True, format=_URI),
        "aspect_ratio": Field("string", _MATCH, enum=_KONTEXT_RATIOS),
        "num_inference_steps": Field("integer", 30, 4, 50), "guidance": Field("number", 2.5, 0, 10),
        "seed": Field("integer"), "output_format": Field("string", "webp", enum=_FORMATS),
        "output_quality": Field("integer", 80, 0, 100), "disable_safety_checker": Field("boolean", False),
        "go_fast": Field("boolean", True)}, "single", size_rule="mp",
        source="replicate.com version page a1408d2c; docs.kkiai.com"),
    _official("black-forest-labs/flux-fill-pro", {
        "prompt": _prompt(), "image": Field("string", required=True, format=_URI),
        "mask": Field("string", format=_URI), "steps": Field("integer", 50, 15, 50),
        "guidance": Field("number", 60, 1.5, 100), "outpaint": Field("string", "None", enum=(
            "None", "Zoom out 1.5x", "Zoom out 2x", "Make square", "Left outpaint", "Right outpaint",
            "Top outpaint", "Bottom outpaint")),
        "safety_tolerance": Field("integer", 2, 1, 6), "prompt_upsampling": Field("boolean", False),
        "seed": Field("integer"), "output_format": Field("string", "jpg", enum=_JPG_PNG)},
        "single", size_rule="input",
        source="NT (?) single"),
    _official("black-forest-labs/flux-2-pro", _flux2_inputs(8), "single", size_rule="mp",
              mp_field="resolution", mp_values=_F2_MP, source="NT; replicate.com version page 285631b5"),
    _official("black-forest-labs/flux-2-flex", _flux2_inputs(
        10, steps=Field("integer", 30, 1, 50), guidance=Field("number", 4.5, 1.5, 10),
        prompt_upsampling=Field("boolean", True)), "single", size_rule="mp", mp_field="resolution",
        mp_values=_F2_MP, source="NT (?) single"),
    _official("black-forest-labs/flux-2-max", _flux2_inputs(8), "single", size_rule="mp",
              mp_field="resolution", mp_values=_F2_MP, source="NT; replicate.com version page"),
    _official("black-forest-labs/flux-2-dev", {
        "prompt": _prompt(), "input_images": _images(4), "go_fast": Field("boolean", True),
        "aspect_ratio": Field("string", "1:1", enum=_F2_RATIOS),
        "width": Field("integer", None, 256, 1440), "height": Field("integer", None, 256, 1440),
        "seed": Field("integer"), "output_format": Field("string", "webp", enum=_FORMATS),
        "output_quality": Field("integer", 80, 0, 100), "disable_safety_checker": Field("boolean", False)},
        "single", size_rule="mp", source="replicate.com version page 7bba46bd"),
    _official("black-forest-labs/flux-2-klein-4b", {
        "prompt": _prompt(), "images": _images(5),
        "aspect_ratio": Field("string", "1:1", enum=("1:1", "16:9", "9:16", "3:2", "2:3", "4:3", "3:4",
                                                     "5:4", "4:5", "21:9", "9:21", _MATCH)),
        "output_megapixels": Field("string", "1", enum=("0.25", "0.5", "1", "2", "4")),
        "seed": Field("integer"), "go_fast": Field("boolean", False),
        "output_format": Field("string", "jpg", enum=_FORMATS), "output_quality": Field("integer", 95, 0, 100),
        "disable_safety_checker": Field("boolean", False)}, "list", size_rule="mp",
        mp_field="output_megapixels", mp_values={"0.25": 0.25, "0.5": 0.5, "1": 1.0, "2": 2.0, "4": 4.0},
        count_field="", source="NT; replicate.com version page"),
    _official("google/nano-banana", {
        "prompt": _prompt(), "image_input": _images(None),
        "aspect_ratio": Field("string", "1:1", enum=_BANANA_RATIOS),
        "output_format": Field("string", "jpg", enum=_JPG_PNG)}, "single", size_rule="mp",
        source="replicate.com version page f0a9d34b; api.core.today"),
    _official("google/nano-banana-pro", {
        "prompt": _prompt(), "image_input": _images(14),
        "aspect_ratio": Field("string", _MATCH, enum=_BANANA_RATIOS),
        "resolution": Field("string", "2K", enum=tuple(_K)),
        "output_format": Field("string", "jpg", enum=_JPG_PNG),
        "safety_filter_level": Field("string", "block_only_high", enum=_SAFETY)}, "single",
        size_rule="mp", mp_field="resolution", mp_values=_K,
        source="replicate.com version page f5318740"),
    _official("google/nano-banana-2", {
        "prompt": _prompt(), "image_input": _images(14),
        "aspect_ratio": Field("string", _MATCH, enum=(
            _MATCH, "1:1", "1:4", "1:8", "2:3", "3:2", "3:4", "4:1", "4:3", "4:5", "5:4", "8:1", "9:16",
            "16:9", "21:9")),
        "resolution": Field("string", "1K", enum=tuple(_K)), "google_search": Field("boolean", False),
        "image_search": Field("boolean", False), "output_format": Field("string", "jpg", enum=_JPG_PNG)},
        "single", size_rule="mp", mp_field="resolution", mp_values=_K, source="NT (?) single"),
    _official("google/imagen-4", _IMAGEN, "single", size_rule="mp", source="NT (imagen-4-fast's enums)"),
    _official("google/imagen-4-fast", _IMAGEN, "single", size_rule="mp", source="NT"),
    _official("google/imagen-4-ultra", _IMAGEN, "single", size_rule="mp",
              source="replicate.com version page eb08b03f"),
    _official("bytedance/seedream-4", {
        "prompt": _prompt(), "image_input": _images(10),
        "size": Field("string", "2K", enum=("1K", "2K", "4K", "custom")),
        "width": Field("integer", 2048, 1024, 4096), "height": Field("integer", 2048, 1024, 4096),
        "aspect_ratio": Field("string", _MATCH, enum=_SEEDREAM_RATIOS),
        "sequential_image_generation": _SEQUENTIAL, "max_images": Field("integer", 1, 1, 15),
        "enhance_prompt": Field("boolean", True)}, "list", size_rule="mp",
        mp_field="size", mp_values=_K, count_field="max_images",
        count_gate=("sequential_image_generation", "auto"), fixed_format="jpg", source="NT (?) list"),
    _official("bytedance/seedream-4.5", {
        "prompt": _prompt(), "image_input": _images(14), "size": Field("string", "2K", enum=("2K", "4K")),
        "aspect_ratio": Field("string", _MATCH, enum=_SEEDREAM_RATIOS),
        "sequential_image_generation": _SEQUENTIAL, "max_images": Field("integer", 1, 1, 15),
        "disable_safety_checker": Field("boolean", False)}, "list", size_rule="mp", mp_field="size",
        mp_values={"2K": 4.0, "4K": 16.0}, count_field="max_images",
        count_gate=("sequential_image_generation", "auto"), fixed_format="jpg", source="NT (?) list"),
    _official("bytedance/seedream-5-lite", {
        "prompt": _prompt(), "image_input": _images(14), "size": Field("string", "2K", enum=("2K", "3K")),
        "aspect_ratio": Field("string", _MATCH, enum=_SEEDREAM_RATIOS),
        "sequential_image_generation": _SEQUENTIAL, "max_images": Field("integer", 1, 1, 15),
        "output_format": Field("string", "png", enum=("png", "jpeg"))}, "list", size_rule="mp",
        mp_field="size", mp_values={"2K": 4.0, "3K": 9.0}, count_field="max_images",
        count_gate=("sequential_image_generation", "auto"), source="NT (?) list"),
    _official("ideogram-ai/ideogram-v3-turbo", _IDEOGRAM, "single", size_rule="mp",
              fixed_format="png", source="NT (?) single"),
    _official("ideogram-ai/ideogram-v3-balanced", _IDEOGRAM, "single", size_rule="mp",
              fixed_format="png", source="turbo's schema (?)"),
    _official("ideogram-ai/ideogram-v3-quality", _IDEOGRAM, "single", size_rule="mp",
              fixed_format="png", source="turbo's schema (?)"),
    _official("recraft-ai/recraft-v3", {
        "prompt": _prompt(), "size": Field("string", "1024x1024"),
        "aspect_ratio": Field("string", "Not set", enum=(
            "Not set", "1:1", "4:3", "3:4", "3:2", "2:3", "16:9", "9:16", "1:2", "2:1", "7:5", "5:7",
            "4:5", "5:4", "3:5", "5:3")),
        "style": Field("string", "any")}, "single", size_rule="mp",
        fixed_format="webp", source="NT (?) single"),
    _official("qwen/qwen-image", {
        "prompt": _prompt(), "negative_prompt": Field("string", " "),
        "aspect_ratio": Field("string", "16:9", enum=("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3")),
        "image_size": Field("string", "optimize_for_quality", enum=("optimize_for_quality", "optimize_for_speed")),
        "image": Field("string", format=_URI), "strength": Field("number", 0.9, 0, 1),
        "num_inference_steps": Field("integer", 30, 1, 50), "guidance": Field("number", 3, 0, 10),
        "go_fast": Field("boolean", True), "enhance_prompt": Field("boolean", False),
        "lora_weights": Field("string"), "lora_scale": Field("number", 1.0),
        "extra_lora_weights": Field("array"), "extra_lora_scale": Field("array"),
        "replicate_weights": Field("string"), "output_format": Field("string", "webp", enum=_FORMATS),
        "output_quality": Field("integer", 80, 0, 100), "disable_safety_checker": Field("boolean", False),
        "seed": Field("integer")}, "list", size_rule="mp",
        count_field="", source="NT (?) list"),
    _official("qwen/qwen-image-edit", {
        "prompt": _prompt(), "image": Field("string", required=True, format=_URI),
        "go_fast": Field("boolean", True), "output_format": Field("string", "webp", enum=_FORMATS),
        "output_quality": Field("integer", 80, 0, 100), "disable_safety_checker": Field("boolean", False),
        "seed": Field("integer")}, "list", size_rule="input",
        count_field="", source="NT (?) list"),
    _official("openai/gpt-image-1.5", {
        "prompt": _prompt(), "input_images": _images(16),
        "quality": Field("string", "auto", enum=("low", "medium", "high", "auto")),
        "aspect_ratio": Field("string", "1:1", enum=("1:1", "3:2", "2:3")),
        "background": Field("string", "auto", enum=("auto", "transparent", "opaque")),
        "moderation": Field("string", "auto", enum=("auto", "low")),
        "input_fidelity": Field("string", "low", enum=("low", "high")),
        "number_of_images": Field("integer", 1, 1, 10),
        "output_format": Field("string", "webp", enum=("png", "jpeg", "webp")),
        "output_compression": Field("integer", 90, 0, 100), "openai_api_key": Field("string"),
        "user_id": Field("string")}, "list", size_rule="mp",
        count_field="number_of_images", source="NT (?) list"),
    _official("stability-ai/stable-diffusion-3.5-large", {
        "prompt": _prompt(), "negative_prompt": Field("string"),
        "aspect_ratio": Field("string", "1:1", enum=("16:9", "1:1", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21")),
        "cfg": Field("number", 5, 1, 10), "image": Field("string", format=_URI),
        "prompt_strength": Field("number", 0.85, 0, 1), "seed": Field("integer"),
        "output_format": Field("string", "webp", enum=_FORMATS)}, "single", size_rule="mp",
        source="NT (?) single"),
    _official("minimax/image-01", {
        "prompt": _prompt(),
        "aspect_ratio": Field("string", "1:1", enum=("1:1", "16:9", "4:3", "3:2", "2:3", "3:4", "9:16", "21:9")),
        "number_of_images": Field("integer", 1, 1, 9), "prompt_optimizer": Field("boolean", True),
        "subject_reference": Field("string", format=_URI)}, "list", size_rule="mp",
        count_field="number_of_images", fixed_format="jpg", source="NT (?) list"),
    _official("luma/photon", {
        "prompt": _prompt(), "aspect_ratio": Field("string", "16:9", enum=_PHOTON_RATIOS),
        **_PHOTON_URLS, **_PHOTON_WEIGHTS}, "single", size_rule="mp",
        fixed_format="jpg", source="replicate.com version page fe142c03"),
    _official("luma/photon-flash", {
        "prompt": _prompt(), "aspect_ratio": Field("string", "16:9", enum=_PHOTON_RATIOS),
        "image_reference": Field("string", format=_URI), "style_reference": Field("string", format=_URI),
        "character_reference": Field("string", format=_URI), **_PHOTON_URLS, **_PHOTON_WEIGHTS},
        "single", size_rule="mp", fixed_format="jpg", source="NT"),
)
MODELS.update({spec.name: spec for spec in _CATALOG_2026})


def _schema_type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def validate_input(inputs: dict[str, Field], given: Any, *, reject_unknown: bool) -> list[dict]:
    """Check ``given`` against ``inputs``; return Replicate ``invalid_fields`` entries."""
    if not isinstance(given, dict):
        expected, got = "object", _schema_type_of(given)
        return [{"type": "invalid_type", "field": "input",
                 "description": f"Invalid type. Expected: {expected}, given: {got}"}]
    problems: list[dict] = []
    for name, spec in inputs.items():
        if spec.required and name not in given:
            problems.append({"type": "required", "field": "input",
                             "description": f"{name} is required"})
    for name, value in given.items():
        found = inputs.get(name)
        if found is None:
            if reject_unknown:
                problems.append({"type": "additional_property_not_allowed", "field": "input",
                                 "description": f"Additional property {name} is not allowed"})
            continue
        problems.extend(_check_value(name, found, value))
    return problems


def _check_value(name: str, spec: Field, value: Any) -> list[dict]:
    where = f"input.{name}"
    got = _schema_type_of(value)
    type_ok = got == spec.type or (spec.type == "number" and got == "integer")
    if not type_ok:
        return [{"type": "invalid_type", "field": where,
                 "description": f"Invalid type. Expected: {spec.type}, given: {got}"}]
    if spec.type == "array":
        if spec.max_items is not None and len(value) > spec.max_items:
            return [{"type": "array_max_items", "field": where,
                     "description": f"Array must have at most {spec.max_items} items"}]
        for index, item in enumerate(value):
            if spec.format == "uri" and not isinstance(item, str):
                return [{"type": "invalid_type", "field": f"{where}.{index}",
                         "description": f"Invalid type. Expected: string, given: {_schema_type_of(item)}"}]
        return []
    if spec.enum is not None and value not in spec.enum:
        allowed = ", ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in spec.enum)
        return [{"type": "enum", "field": where,
                 "description": f"{name} must be one of the following: {allowed}"}]
    if spec.minimum is not None and value < spec.minimum:
        return [{"type": "number_gte", "field": where,
                 "description": f"Must be greater than or equal to {_number_text(spec.minimum)}"}]
    if spec.maximum is not None and value > spec.maximum:
        return [{"type": "number_lte", "field": where,
                 "description": f"Must be less than or equal to {_number_text(spec.maximum)}"}]
    return []


def with_defaults(inputs: dict[str, Field], given: dict) -> dict:
    """The input the model sees: ``given`` plus each field's default."""
    merged = {k: v.default for k, v in inputs.items() if v.default is not None}
    merged.update(given)
    return merged


def requested_size(spec: ModelSpec, effective: dict,
                   image_size: Callable[[str], tuple[int, int] | None] | None = None) -> tuple[int, int]:
    """The width and height the real model would render for this input (``image_size`` reads
    an input image's size from its URL, for models that follow their input image)."""
    if spec.size_rule in ("mp", "input"):
        return _megapixel_size(spec, effective, image_size or (lambda url: None))
    ratio = effective.get("aspect_ratio", "1:1")
    if ratio == "custom":
        step = 16 if spec.size_rule == "cog-flux" else 32
        width = int(effective.get("width") or 1024)
        height = int(effective.get("height") or 1024)
        return (max(step, round(width / step) * step), max(step, round(height / step) * step))
    width, height = ASPECT_RATIO_SIZES.get(ratio, (1024, 1024))
    if spec.size_rule == "ultra":
        # About 4 MP ("up to 2048x2048", 3rd-party): twice each side of the 1 MP size.
        return (width * 2, height * 2)
    if spec.size_rule == "cog-flux" and effective.get("megapixels") == "0.25":
        return (width // 2, height // 2)
    return (width, height)


def _megapixel_size(spec: ModelSpec, effective: dict,
                    image_size: Callable[[str], tuple[int, int] | None]) -> tuple[int, int]:
    """Models sized by aspect ratio and a megapixel preset, or by their first input image.
    Only the ratio and the area are modelled; real models' exact rounding is UNCONFIRMED."""
    first = next((size for size in map(image_size, input_image_urls(spec, effective)) if size), None)
    if spec.size_rule == "input":
        return first or (1024, 1024)
    ratio = str(effective.get("aspect_ratio", "1:1"))
    if ratio == "custom" or effective.get("size") == "custom":
        return (int(effective.get("width") or 1024), int(effective.get("height") or 1024))
    megapixels = spec.mp_values.get(str(effective.get(spec.mp_field or "", "")), spec.base_mp)
    if ratio == "match_input_image" or ":" not in ratio:
        shape = first[0] / first[1] if first and ratio == "match_input_image" else 1.0
    else:
        w, h = ratio.split(":")
        shape = int(w) / int(h)
    width = math.sqrt(megapixels * 1024 * 1024 * shape)
    return (max(16, round(width / 16) * 16), max(16, round(width / shape / 16) * 16))


def input_image_urls(spec: ModelSpec, effective: dict) -> list[str]:
    """Every image URL the input carries (string and array fields marked ``format="uri"``)."""
    urls: list[str] = []
    for name, field_spec in spec.inputs.items():
        value = effective.get(name)
        if field_spec.format != "uri" or value in (None, ""):
            continue
        urls.extend(str(v) for v in value) if isinstance(value, list) else urls.append(str(value))
    return urls


def output_count(spec: ModelSpec, effective: dict) -> int:
    """How many images one prediction returns."""
    if spec.output != "list" or not spec.count_field:
        return 1
    if spec.count_gate is not None and effective.get(spec.count_gate[0]) != spec.count_gate[1]:
        return 1
    return int(effective.get(spec.count_field, 1))


def output_extension(effective: dict, spec: ModelSpec | None = None) -> str:
    if spec is not None and spec.fixed_format and "output_format" not in spec.inputs:
        return spec.fixed_format
    return {"jpg": "jpg", "jpeg": "jpg", "png": "png"}.get(effective.get("output_format", "webp"), "webp")


def billing_metrics(spec: ModelSpec, images: int, size: tuple[int, int],
                    input_sizes: list[tuple[int, int] | None]) -> dict[str, int]:
    """The counts official models are billed by (research note on the 2026 catalog §7), with
    megapixels rounded up per image and each input at least 1 MP (third-party notes, UNCONFIRMED).
    An input whose size cannot be read counts as 1 MP."""
    if not spec.is_official:
        return {}
    def megapixels(width: int, height: int) -> int:
        return max(1, math.ceil(width * height / (1024 * 1024) - 1e-9))

    per_output = megapixels(*size)
    inputs = sum(megapixels(*known) if known else 1 for known in input_sizes)
    return {"image_output_count": images, "image_output_megapixel_count": per_output * images,
            "image_input_count": len(input_sizes), "image_input_megapixel_count": inputs}


def openapi_schema(inputs: dict[str, Field], output: str) -> dict:
    """A Cog-style ``openapi_schema`` for a version object."""
    properties: dict[str, dict] = {}
    for order, (name, spec) in enumerate(inputs.items()):
        prop: dict[str, Any] = {"type": spec.type, "title": name.replace("_", " ").title(),
                                "x-order": order}
        if spec.type == "array":
            prop["items"] = {"type": "string", "format": spec.format} if spec.format else {}
            if spec.max_items is not None:
                prop["maxItems"] = spec.max_items
        elif spec.format:
            prop["format"] = spec.format
        if spec.default is not None:
            prop["default"] = spec.default
        if spec.enum is not None:
            prop["enum"] = list(spec.enum)
        if spec.minimum is not None and math.isfinite(spec.minimum):
            prop["minimum"] = spec.minimum
        if spec.maximum is not None and math.isfinite(spec.maximum):
            prop["maximum"] = spec.maximum
        properties[name] = prop
    required = [n for n, s in inputs.items() if s.required]
    if output == "list":
        out: dict[str, Any] = {"type": "array", "items": {"type": "string", "format": "uri"}}
    elif output == "training":
        out = {"type": "object", "properties": {"weights": {"type": "string", "format": "uri"}}}
    else:
        out = {"type": "string", "format": "uri"}
    input_schema: dict[str, Any] = {"type": "object", "title": "Input", "properties": properties}
    if required:
        input_schema["required"] = required
    return {
        "openapi": "3.0.2",
        "info": {"title": "Cog", "version": "0.1.0"},
        "components": {"schemas": {"Input": input_schema, "Output": {**out, "title": "Output"}}},
    }
