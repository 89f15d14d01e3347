"""A `GenerateRequest` in one Flux model's own inputs: the predictions to create, and what changed.

Everything is decided here, before any call: sizes snap to the model's ratios, numbers to its
ranges, and whatever the model cannot honour becomes a warning (or, when it must, a miss).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagegen.catalog import ModelCard
from imagegen.prompt.translate import to_flux, unsupported_midjourney_options
from imagegen.request import GenerateRequest, parse_aspect_ratio

from ._schemas import (
    FORMAT_TO_REPLICATE,
    FluxModel,
    Target,
    _size_at_1mp,
    nearest_ratio,
    ratio_size,
    round_to,
    target_for,
)

_MANAGED = {"prompt": "the request's prompt", "seed": "the request's seed (image i gets seed+i)"}
_LORA_SCHEMES = ("https://", "http://", "huggingface.co/", "civitai.com/")


@dataclass
class PlannedPrediction:
    """One prediction to create; ``seeds`` has one entry per image it yields."""

    input: dict[str, Any]
    seeds: list[int | None]
    first_index: int


@dataclass
class Plan:
    target: Target
    predictions: list[PlannedPrediction]
    size: tuple[int, int]  # what the model renders
    output_ext: str  # what the model is asked for: webp, jpg, png
    convert_to: str | None  # request format when the model cannot give it
    steps: int | None
    guidance: float | None
    missing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def plan_request(request: GenerateRequest, card: ModelCard, seed: int | None = None) -> Plan:
    """Translate ``request`` for ``card``'s model; ``seed`` overrides an unset request seed."""
    target = target_for(card)
    flux = target.flux
    missing: list[str] = []
    warnings: list[str] = []
    prompt, prompt_warnings = to_flux(request)  # A1111 weights, BREAK, schedules: plain text
    # The generic capability check already reports the negative prompt.
    warnings += [w for w in prompt_warnings if not w.startswith("Flux does not take a negative prompt")]
    base: dict[str, Any] = {"prompt": prompt}

    size = _map_size(request, flux, base, warnings)
    steps = _map_steps(request, flux, base)
    guidance = _map_guidance(request, flux, card, base, warnings)
    output_ext, convert_to = _map_format(request, flux, card, base)
    _map_loras(request, flux, base, missing, warnings)
    _map_images(request, flux, base)
    _note_unsupported(request, flux, base, warnings)
    group = _apply_passthrough(request, flux, card, base, missing, warnings)

    first_seed = request.seed if request.seed_fixed else seed
    predictions = _split(request.image_count, group, first_seed, base, flux)
    return Plan(target, predictions, size, output_ext, convert_to, steps, guidance,
                missing, warnings)


# -- size -----------------------------------------------------------------------------------


def _map_size(request: GenerateRequest, flux: FluxModel, out: dict, warnings: list[str]) -> tuple[int, int]:
    default = ratio_size(flux, "1:1")
    if request.width is None and request.height is None and request.aspect_ratio is None:
        return default
    exact = request.width is not None or request.height is not None
    if not exact:
        ratio = request.aspect_ratio or "1:1"
        if ratio in flux.ratios:
            out["aspect_ratio"] = ratio
            return ratio_size(flux, ratio)
        rw, rh = parse_aspect_ratio(ratio)
        if flux.allows_custom:
            width, height = _size_at_1mp(rw / rh, flux.custom_multiple)
            out.update(aspect_ratio="custom", width=width, height=height)
            return width, height
        chosen = nearest_ratio(rw, rh, flux.ratios)
        out["aspect_ratio"] = chosen
        warnings.append(f"aspect_ratio {ratio} unavailable: using the nearest, {chosen}")
        return ratio_size(flux, chosen)

    width, height = request.size(base=1024)
    if flux.allows_custom:
        limits = flux.inputs["width"]
        w = min(max(round_to(width, flux.custom_multiple), int(limits.minimum)), int(limits.maximum))
        h = min(max(round_to(height, flux.custom_multiple), int(limits.minimum)), int(limits.maximum))
        ratio = next((r for r in flux.ratios if ratio_size(flux, r) == (w, h)), None)
        out.update({"aspect_ratio": ratio} if ratio else {"aspect_ratio": "custom", "width": w, "height": h})
        if (w, h) != (width, height):
            warnings.append(f"size {width}x{height} unavailable: {w}x{h} (multiples of "
                            f"{flux.custom_multiple}, {int(limits.minimum)}..{int(limits.maximum)} px)")
        return w, h

    chosen = nearest_ratio(width, height, flux.ratios)
    megapixels = "1"
    if "megapixels" in flux.inputs:
        full = ratio_size(flux, chosen)
        # The smaller render when the requested area is nearer 0.25 MP than 1 MP (log scale).
        if abs(math.log(width * height / (full[0] * full[1] / 4))) < abs(math.log(width * height / (full[0] * full[1]))):
            megapixels = "0.25"
            out["megapixels"] = "0.25"
    out["aspect_ratio"] = chosen
    rendered = ratio_size(flux, chosen, megapixels)
    if rendered != (width, height):
        warnings.append(f"size {width}x{height} unavailable: the model renders {chosen} at "
                        f"{rendered[0]}x{rendered[1]}")
    return rendered


# -- numbers, format, LoRA, images ------------------------------------------------------------


def _map_steps(request: GenerateRequest, flux: FluxModel, out: dict) -> int | None:
    if flux.steps_field is None:
        return None
    spec = flux.inputs[flux.steps_field]
    if request.steps is None:
        return spec.default
    # check_capabilities already warns about the clamp (the card carries the same range).
    steps = int(min(max(request.steps, spec.minimum), spec.maximum))
    out[flux.steps_field] = steps
    return steps


def _map_guidance(request: GenerateRequest, flux: FluxModel, card: ModelCard, out: dict,
                  warnings: list[str]) -> float | None:
    if flux.guidance_field is None:
        return None  # check_capabilities warns that cfg_scale is ignored
    spec = flux.inputs[flux.guidance_field]
    if request.cfg_scale is None:
        return spec.default
    guidance = min(max(request.cfg_scale, spec.minimum), spec.maximum)
    if guidance != request.cfg_scale:
        warnings.append(f"cfg_scale {request.cfg_scale:g} clamped to guidance {guidance:g} "
                        f"(model range {spec.minimum:g}..{spec.maximum:g})")
    out[flux.guidance_field] = guidance
    return guidance


def _map_format(request: GenerateRequest, flux: FluxModel, card: ModelCard,
                out: dict) -> tuple[str, str | None]:
    allowed = flux.inputs["output_format"].enum or ()
    wanted = FORMAT_TO_REPLICATE[request.output_format]
    if wanted in allowed:
        out["output_format"] = wanted
        return wanted, None
    # check_capabilities warns ("converted from" the card's first format); converted after download.
    first = FORMAT_TO_REPLICATE.get(card.capabilities.output_formats[0], "")
    fallback = first if first in allowed else allowed[0]
    out["output_format"] = fallback
    return fallback, request.output_format


def _map_loras(request: GenerateRequest, flux: FluxModel, out: dict, missing: list[str],
               warnings: list[str]) -> None:
    if not request.loras or not flux.lora_slots:
        return  # check_capabilities reports LoRAs on a model without any
    if len(request.loras) > len(flux.lora_slots):
        missing.append(f"takes at most {len(flux.lora_slots)} LoRA(s) "
                       f"(got {len(request.loras)})")
        return
    for lora, (weights_field, scale_field) in zip(request.loras, flux.lora_slots, strict=False):
        if not _fetchable_lora(lora.name):
            missing.append(f"LoRA {lora.name!r} is not a URL or a Replicate, Hugging Face or "
                           "CivitAI reference Replicate can fetch")
            continue
        spec = flux.inputs[scale_field]
        scale = min(max(lora.weight, spec.minimum), spec.maximum)
        if scale != lora.weight:
            warnings.append(f"LoRA {lora.name!r} weight {lora.weight:g} clamped to {scale:g} "
                            f"(model range {spec.minimum:g}..{spec.maximum:g})")
        out[weights_field] = lora.name
        out[scale_field] = scale


def _fetchable_lora(name: str) -> bool:
    if name.startswith(_LORA_SCHEMES):
        return True
    if name.endswith((".safetensors", ".ckpt", ".pt")) or Path(name).exists():
        return False  # a local file
    parts = name.split("/")
    return 2 <= len(parts) <= 3 and all(parts)  # owner/model[/version]


def _map_images(request: GenerateRequest, flux: FluxModel, out: dict) -> None:
    if request.init_image is None or not flux.image_fields:
        return  # check_capabilities reports img2img on a model without it
    out[flux.image_fields[0]] = request.init_image.to_data_url()
    if request.denoising_strength is not None:
        out[flux.image_fields[1]] = request.denoising_strength
    if request.mask_image is not None and len(flux.image_fields) > 2:
        out[flux.image_fields[2]] = request.mask_image.to_data_url()


def _note_unsupported(request: GenerateRequest, flux: FluxModel, out: dict, warnings: list[str]) -> None:
    """What check_capabilities does not already cover and Flux on Replicate cannot honour."""
    if request.vae:
        warnings.append(f"vae {request.vae!r} ignored: the model has its own")
    if request.scheduler and not request.sampler:
        warnings.append(f"scheduler {request.scheduler!r} ignored: the model uses its own")
    supported = frozenset()
    if "raw" in flux.inputs and request.midjourney is not None and request.midjourney.style == "raw":
        out["raw"] = True  # ultra's raw mode is what `--style raw` asks for
        supported = frozenset({"style"})
    warnings += unsupported_midjourney_options(request, supported)


# -- raw inputs and the split into predictions ----------------------------------------------


def _apply_passthrough(request: GenerateRequest, flux: FluxModel, card: ModelCard, out: dict,
                       missing: list[str], warnings: list[str]) -> int:
    """Lay ``provider_options["replicate"]`` over the inputs; returns images per prediction."""
    raw = dict(request.provider_options.get("replicate", {}))
    group = 1
    for key, value in raw.items():
        where = f"provider_options.replicate.{key}"
        if key in _MANAGED:
            missing.append(f"{where}: set by {_MANAGED[key]}")
            continue
        spec = flux.inputs.get(key)
        if spec is None:
            missing.append(f"{where}: not an input of {card.model} "
                           f"(inputs: {', '.join(sorted(flux.inputs))})")
            continue
        problem = spec.problem(value)
        if problem:
            missing.append(f"{where} {problem}")
            continue
        if key == "num_outputs":
            group = value
            if value > 1 and request.image_count > 1:
                warnings.append(f"{where}={value}: up to {value} images per prediction; only the "
                                "first image of each has a reproducible seed")
            continue
        if key in out and out[key] != value:
            warnings.append(f"{where}={value!r} overrides the translated {key}={out[key]!r}")
        out[key] = value
    return group


def _split(count: int, group: int, first_seed: int | None, base: dict, flux: FluxModel) -> list[PlannedPrediction]:
    """Image i gets seed s+i: one prediction per image unless several were asked per call."""
    group = max(1, min(group, flux.max_outputs))
    planned = []
    for start in range(0, count, group):
        n = min(group, count - start)
        payload = dict(base)
        seed = None if first_seed is None else first_seed + start
        if seed is not None:
            payload["seed"] = seed
        if n > 1:
            payload["num_outputs"] = n
        planned.append(PlannedPrediction(payload, [seed] + [None] * (n - 1), start))
    return planned
