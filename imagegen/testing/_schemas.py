"""Input schemas of the Replicate models the emulator knows, and Replicate-style validation.

Schemas follow the research note on Replicate (§7.3, §7.5, §9: cog-flux predict.py, the model
version pages and flux-fine-tuner train.py, read 2025-06..2025-07). Error types and messages
follow the 422 bodies Replicate returns (gojsonschema wording: ``number_lte``, ``enum``, ...).
"""

from __future__ import annotations

import hashlib
import math
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
    format: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A model the emulator can run: its inputs, output shape and how it sizes images."""

    name: str  # owner/name
    version_id: str  # 64 hex
    inputs: dict[str, Field]
    output: str  # "list" (array of uri), "single" (one uri) or "training"
    size_rule: str = "cog-flux"  # "cog-flux", "pro" or "ultra"
    is_official: bool = True
    description: str = ""
    source: str = ""
    extra_version_ids: tuple[str, ...] = field(default=())


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


def requested_size(spec: ModelSpec, effective: dict) -> tuple[int, int]:
    """The width and height the real model would render for this input."""
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


def output_extension(effective: dict) -> str:
    return {"jpg": "jpg", "png": "png"}.get(effective.get("output_format", "webp"), "webp")


def openapi_schema(inputs: dict[str, Field], output: str) -> dict:
    """A Cog-style ``openapi_schema`` for a version object."""
    properties: dict[str, dict] = {}
    for order, (name, spec) in enumerate(inputs.items()):
        prop: dict[str, Any] = {"type": spec.type, "title": name.replace("_", " ").title(),
                                "x-order": order}
        if spec.format:
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
