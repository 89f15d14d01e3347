"""A `GenerateRequest` in one model's own inputs: the predictions to create, and what changed.

Everything is decided here, before any call, from the model's schema table (`_schemas.MODELS`):
sizes snap to the model's ratios and megapixel presets, numbers to its ranges, images go to the
inputs that carry them, and whatever the model cannot honour becomes a warning (or, when it
must, a miss). No model has code of its own here.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagegen.catalog import MEGAPIXEL, ModelCard, image_misses
from imagegen.prompt.translate import to_flux, unsupported_midjourney_options
from imagegen.request import GenerateRequest, parse_aspect_ratio

from ._schemas import (
    MATCH,
    ModelSchema,
    Target,
    default_megapixels,
    nearest_megapixels,
    nearest_ratio,
    ratio_size,
    round_to,
    size_at,
    target_for,
)

if TYPE_CHECKING:
    from imagegen.request import ImageInput, RequestNeeds

_MANAGED = {"prompt": "the request's prompt", "seed": "the request's seed (image i gets seed+i)"}
_LORA_SCHEMES = ("https://", "http://", "huggingface.co/", "civitai.com/")
_URL = ("https://", "http://", "data:")


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
    output_ext: str | None  # what the model is asked for (webp, jpg, png); None: it decides
    convert_to: str | None  # request format when the model cannot give it
    steps: int | None
    guidance: float | None
    missing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    input_pixels: tuple[float, ...] = ()  # the images each prediction reads, in pixels

    @property
    def image_count(self) -> int:
        return sum(len(p.seeds) for p in self.predictions)

    def tier(self, card: ModelCard) -> str | None:
        """The price tier this plan selects on ``card`` (the value of its tier input)."""
        name = card.price.tier_input
        if not name or not self.predictions:
            return None
        value = self.predictions[0].input.get(name, self.target.flux.default(name))
        return None if value is None else str(value).lower() if isinstance(value, bool) else str(value)

    def estimate_usd(self, card: ModelCard) -> float:
        """The request's cost in ``card``'s price units: runs, output and input megapixels,
        images, and GPU seconds (the card's expected latency per image)."""
        images = self.image_count
        return card.price.estimate(
            images=images, output_pixels=self.size[0] * self.size[1],
            input_pixels=self.input_pixels, runs=len(self.predictions),
            gpu_seconds=card.latency_s * images, tier=self.tier(card))

    def charge_usd(self, card: ModelCard, metrics: list[dict | None]) -> float | None:
        """What Replicate bills for the predictions' ``metrics`` (one per prediction run), or
        None when any lacks a metric the card's price needs."""
        tier = self.tier(card)
        total = 0.0
        for one in metrics:
            charge = card.price.charge(one, tier=tier)
            if charge is None:
                return None
            total += charge
        return round(total, 6)


def plan_request(request: GenerateRequest, card: ModelCard, seed: int | None = None, *,
                 needs: RequestNeeds | None = None, prompt: tuple[str, list[str]] | None = None) -> Plan:
    """Translate ``request`` for ``card``'s model; ``seed`` overrides an unset request seed.
    ``needs`` and ``prompt`` (``to_flux(request)``): the parts that are the same for every
    model, when the caller translates one request for many."""
    target = target_for(card)
    schema = target.flux
    missing: list[str] = []
    warnings: list[str] = []
    # A1111 weights, BREAK, schedules: plain text
    prompt, prompt_warnings = to_flux(request) if prompt is None else prompt
    # The generic capability check reports a negative prompt a model does not take.
    warnings += [w for w in prompt_warnings if not w.startswith("Flux does not take a negative prompt")]
    base: dict[str, Any] = {"prompt": prompt}
    if schema.negative_field and request.negative_prompt.strip():
        base[schema.negative_field] = request.negative_prompt

    images = _Images(request, schema, card, base, missing, warnings)
    images.map(request.needs() if needs is None else needs)
    size = _map_size(request, schema, base, warnings, images.shape_source)
    steps = _map_steps(request, schema, base)
    guidance = _map_guidance(request, schema, base, warnings)
    output_ext, convert_to = _map_format(request, schema, card, base)
    _map_loras(request, schema, base, missing, warnings)
    _note_unsupported(request, schema, base, warnings, images.midjourney_mapped)
    group = _apply_passthrough(request, schema, card, base, missing, warnings)

    first_seed = request.seed if request.seed_fixed else seed
    predictions = _split(request.image_count, group, first_seed, base, schema)
    return Plan(target, predictions, size, output_ext, convert_to, steps, guidance,
                _unique(missing), _unique(warnings), tuple(images.pixels))


# -- images: init image (img2img, inpaint, instruction edit) and references -------------------


class _Images:
    """Puts the request's images where the model takes them, and says what that changes."""

    def __init__(self, request: GenerateRequest, schema: ModelSchema, card: ModelCard,
                 out: dict, missing: list[str], warnings: list[str]):
        self.request, self.schema, self.card, self.out = request, schema, card, out
        self.missing, self.warnings = missing, warnings
        self.pixels: list[float] = []  # of every image sent, for the price of input megapixels
        self.shape_source: tuple[int, int] | None = None  # the edited image's size, if known
        self.midjourney_mapped: set[str] = set()
        self.lists: dict[str, list[str]] = {}

    def map(self, needs: RequestNeeds) -> None:
        request, schema = self.request, self.schema
        self.missing.extend(image_misses(needs, self.card.capabilities))
        if request.init_image is not None:
            self._init_image(request.init_image)
        for image in request.reference_images:
            self._send(schema.reference_field, image, "reference_images")
        self._midjourney()
        for name, urls in self.lists.items():
            self.out[name] = urls

    def _init_image(self, image: ImageInput) -> None:
        request, schema = self.request, self.schema
        img_field, strength_field, mask_field = (list(schema.image_fields) + ["", "", ""])[:3]
        if request.mask_image is not None:
            if img_field and mask_field:
                self.out[img_field] = image.to_data_url()
                self.out[mask_field] = request.mask_image.to_data_url()
                self._count(image)
                self._strength(strength_field)
                self.shape_source = _image_size(image)
            return  # image_misses names a model that does not inpaint
        img2img = bool(img_field and strength_field)
        if request.edit is not True and img2img:
            self.out[img_field] = image.to_data_url()
            self._count(image)
            self._strength(strength_field)
            return
        if request.edit is not False and schema.edit_field:
            if request.edit is None:
                self.warnings.append(
                    "init_image is edited by instruction: the model reads the prompt as an instruction "
                    "for the image, not as a description of the whole output (set edit=False to keep "
                    "to img2img models, edit=True to say so)")
            if request.denoising_strength is not None:
                self.warnings.append(f"denoising_strength {request.denoising_strength:g} ignored: the "
                                     "model edits by instruction and has no strength")
            self._send(schema.edit_field, image, "init_image")
            self.shape_source = _image_size(image)

    def _strength(self, strength_field: str) -> None:
        strength = self.request.denoising_strength
        if strength is None:
            return
        if strength_field:
            self.out[strength_field] = strength
        else:
            self.warnings.append(f"denoising_strength {strength:g} ignored: the model repaints the "
                                 "masked area with no strength setting")

    def _send(self, name: str | None, image: ImageInput | str, what: str) -> bool:
        """Add ``image`` to input ``name`` (a list, or a string for one image); False when full."""
        schema = self.schema
        limit = schema.list_limit(name)
        if not name or limit == 0:
            return False  # image_misses already says the model takes no such images
        urls = self.lists.setdefault(name, []) if schema.inputs[name].type == "array" else None
        taken = len(urls) if urls is not None else int(name in self.out)
        if taken >= limit:
            if what in ("init_image", "reference_images"):
                self.missing.append(f"takes at most {limit} input image(s) in {name} (init_image and "
                                    "reference_images together)")
            return False
        url = image if isinstance(image, str) else image.to_data_url()
        if urls is not None:
            urls.append(url)
        else:
            self.out[name] = url
        self._count(image)
        return True

    def _count(self, image: ImageInput | str) -> None:
        size = None if isinstance(image, str) else _image_size(image)
        self.pixels.append(float(size[0] * size[1]) if size else float(MEGAPIXEL))

    def _midjourney(self) -> None:
        """Midjourney image prompts, --sref and --cref as the model's reference inputs."""
        options = self.request.midjourney
        if options is None:
            return
        schema = self.schema
        content = schema.reference_field
        groups = [
            ("image_prompts", list(options.image_prompts), content,
             "Midjourney image prompt(s) sent as reference images: the model reads them as images "
             "the prompt may name ('image 1'), not as a blend of image and text; --iw is ignored"),
            ("sref", [ref.rpartition("::")[0] or ref for ref in options.sref],
             schema.style_reference_field or content,
             "--sref sent as a style reference image: weights and style codes do not carry over"
             if schema.style_reference_field else
             "--sref sent as a reference image: the model may copy its content, not only its style "
             "(say 'in the style of image N' in the prompt)"),
            ("cref", list(options.cref), schema.character_reference_field or content,
             "--cref sent as a character reference image; --cw is ignored"
             if schema.character_reference_field else
             "--cref sent as a reference image: the model is not told it is a character to keep"),
        ]
        for name, refs, target, note in groups:
            urls = [ref for ref in refs if ref.startswith(_URL)]
            if not urls or not target:
                continue
            sent = [url for url in urls if self._send(target, url, name)]
            if sent:
                self.warnings.append(note + ("" if len(sent) == len(refs) else
                                             f" ({len(sent)} of {len(refs)} sent: the rest are "
                                             "not image URLs or over the model's limit)"))
            if len(sent) == len(refs):
                self.midjourney_mapped.add(name)


def _image_size(image: ImageInput) -> tuple[int, int] | None:
    """Width and height from the image header, when its bytes are at hand (not a remote URL)."""
    try:
        from PIL import Image

        data = image.to_bytes()
        with Image.open(io.BytesIO(data)) as opened:
            return opened.size
    except Exception:  # noqa: BLE001 - a remote URL, or bytes PIL cannot read: size unknown
        return None


# -- size -----------------------------------------------------------------------------------


def _map_size(request: GenerateRequest, schema: ModelSchema, out: dict, warnings: list[str],
              source: tuple[int, int] | None) -> tuple[int, int]:
    megapixels = _map_megapixels(request, schema, out, warnings)
    if "aspect_ratio" not in schema.inputs:  # the model renders at its input image's size
        if request.width or request.height or request.aspect_ratio:
            warnings.append("width/height/aspect_ratio ignored: the model renders at the input image's size")
        return source or ratio_size(schema, "1:1", megapixels)
    default = schema.default("aspect_ratio")
    if request.width is None and request.height is None and request.aspect_ratio is None:
        if source is not None and schema.matches_input:
            out["aspect_ratio"] = MATCH  # sent even where it is the default: sources disagree
            return size_at(source[0] / source[1], megapixels or default_megapixels(schema),
                           schema.size_multiple)
        ratio = default if default and ":" in default else "1:1"
        if default != ratio:  # "match_input_image" with no image, or "Not set"
            out["aspect_ratio"] = ratio
        return ratio_size(schema, ratio, megapixels)
    exact = request.width is not None or request.height is not None
    if not exact:
        ratio = request.aspect_ratio or "1:1"
        if ratio in schema.ratios:
            out["aspect_ratio"] = ratio
            return ratio_size(schema, ratio, megapixels)
        rw, rh = parse_aspect_ratio(ratio)
        if schema.allows_custom:
            width, height = _custom(schema, *size_at(rw / rh, megapixels or 1.0, schema.custom_multiple))
            out.update(aspect_ratio="custom", width=width, height=height)
            return width, height
        chosen = nearest_ratio(rw, rh, schema.ratios)
        out["aspect_ratio"] = chosen
        warnings.append(f"aspect_ratio {ratio} unavailable: using the nearest, {chosen}")
        return ratio_size(schema, chosen, megapixels)

    width, height = request.size(base=1024)
    if schema.allows_custom:
        w, h = _custom(schema, width, height)
        ratio = next((r for r in schema.ratios if ratio_size(schema, r, megapixels) == (w, h)), None)
        out.update({"aspect_ratio": ratio} if ratio else {"aspect_ratio": "custom", "width": w, "height": h})
        if (w, h) != (width, height):
            limits = schema.inputs["width"]
            warnings.append(f"size {width}x{height} unavailable: {w}x{h} (multiples of "
                            f"{schema.custom_multiple}, {int(limits.minimum or 0)}..{int(limits.maximum or 0)} px)")
        return w, h
    chosen = nearest_ratio(width, height, schema.ratios)
    out["aspect_ratio"] = chosen
    rendered = ratio_size(schema, chosen, megapixels)
    if rendered != (width, height):
        warnings.append(f"size {width}x{height} unavailable: the model renders {chosen} at "
                        f"{rendered[0]}x{rendered[1]}")
    return rendered


def _custom(schema: ModelSchema, width: float, height: float) -> tuple[int, int]:
    limits, step = schema.inputs["width"], schema.custom_multiple
    lo, hi = int(limits.minimum or step), int(limits.maximum or 4096)
    return (min(max(round_to(width, step), lo), hi), min(max(round_to(height, step), lo), hi))


def _map_megapixels(request: GenerateRequest, schema: ModelSchema, out: dict,
                    warnings: list[str]) -> float | None:
    """The output megapixels the model is asked for (its preset input), None: its default."""
    wanted = request.output_megapixels
    if wanted is None and request.width and request.height and schema.megapixel_field \
            and not schema.allows_custom:
        wanted = request.width * request.height / MEGAPIXEL  # a preset near the asked size
    field_name, values = schema.megapixel_field, schema.megapixel_values
    if wanted is None or not field_name or not values:
        if request.output_megapixels is not None:
            have = schema.base_megapixels
            if abs(math.log(have / request.output_megapixels)) > 0.1:
                warnings.append(f"output_megapixels {request.output_megapixels:g} unavailable: the "
                                f"model renders about {have:g} MP")
        return None
    chosen = nearest_megapixels(wanted, values)
    if request.output_megapixels is not None and abs(math.log(values[chosen] / wanted)) > 0.05:
        warnings.append(f"output_megapixels {wanted:g} unavailable: using the nearest, "
                        f"{values[chosen]:g} MP ({field_name}={chosen})")
    if chosen != schema.default(field_name):
        out[field_name] = chosen
    return values[chosen]


# -- numbers, format, LoRA --------------------------------------------------------------------


def _map_steps(request: GenerateRequest, schema: ModelSchema, out: dict) -> int | None:
    if schema.steps_field is None:
        return None
    spec = schema.inputs[schema.steps_field]
    if request.steps is None:
        return spec.default
    # check_capabilities already warns about the clamp (the card carries the same range).
    steps = int(_clamp(request.steps, spec.minimum, spec.maximum))
    out[schema.steps_field] = steps
    return steps


def _map_guidance(request: GenerateRequest, schema: ModelSchema, out: dict,
                  warnings: list[str]) -> float | None:
    if schema.guidance_field is None:
        return None  # check_capabilities warns that cfg_scale is ignored
    spec = schema.inputs[schema.guidance_field]
    if request.cfg_scale is None:
        return spec.default
    guidance = _clamp(request.cfg_scale, spec.minimum, spec.maximum)
    if guidance != request.cfg_scale:
        warnings.append(f"cfg_scale {request.cfg_scale:g} clamped to {schema.guidance_field} "
                        f"{guidance:g} (model range {spec.minimum or 0:g}..{spec.maximum or 0:g})")
    out[schema.guidance_field] = guidance
    return guidance


def _map_format(request: GenerateRequest, schema: ModelSchema, card: ModelCard,
                out: dict) -> tuple[str | None, str | None]:
    if "output_format" not in schema.inputs:
        # No format input: the model picks (UNCONFIRMED which); converted after download.
        return None, request.output_format
    name = schema.format_name(request.output_format)
    if name is not None:
        out["output_format"] = name
        return _extension(name), None
    # check_capabilities warns ("converted from" the card's first format); converted after download.
    allowed = schema.inputs["output_format"].enum or ()
    first = schema.format_name(card.capabilities.output_formats[0])
    fallback = str(first if first in allowed else allowed[0])
    out["output_format"] = fallback
    return _extension(fallback), request.output_format


def _extension(name: str) -> str:
    """The file extension of a model's format name (``jpeg`` and ``jpg`` are both ``jpg``)."""
    return "jpg" if name in ("jpg", "jpeg") else name


def _clamp(value: float, lo: float | None, hi: float | None) -> float:
    return min(max(value, lo if lo is not None else value), hi if hi is not None else value)


def _map_loras(request: GenerateRequest, schema: ModelSchema, out: dict, missing: list[str],
               warnings: list[str]) -> None:
    if not request.loras or not schema.lora_slots:
        return  # check_capabilities reports LoRAs on a model without any
    if len(request.loras) > len(schema.lora_slots):
        missing.append(f"takes at most {len(schema.lora_slots)} LoRA(s) "
                       f"(got {len(request.loras)})")
        return
    for lora, (weights_field, scale_field) in zip(request.loras, schema.lora_slots, strict=False):
        if not _fetchable_lora(lora.name):
            missing.append(f"LoRA {lora.name!r} is not a URL or a Replicate, Hugging Face or "
                           "CivitAI reference Replicate can fetch")
            continue
        spec = schema.inputs[scale_field]
        scale = lora.weight
        if spec.minimum is not None and spec.maximum is not None:
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


def _note_unsupported(request: GenerateRequest, schema: ModelSchema, out: dict, warnings: list[str],
                      mapped: set[str]) -> None:
    """What check_capabilities does not already cover and the model cannot honour."""
    if request.vae:
        warnings.append(f"vae {request.vae!r} ignored: the model has its own")
    if request.scheduler and not request.sampler:
        warnings.append(f"scheduler {request.scheduler!r} ignored: the model uses its own")
    supported = set(mapped)
    if "raw" in schema.inputs and request.midjourney is not None and request.midjourney.style == "raw":
        out["raw"] = True  # ultra's raw mode is what `--style raw` asks for
        supported.add("style")
    warnings += unsupported_midjourney_options(request, frozenset(supported))


# -- raw inputs and the split into predictions ----------------------------------------------


def _apply_passthrough(request: GenerateRequest, schema: ModelSchema, card: ModelCard, out: dict,
                       missing: list[str], warnings: list[str]) -> int:
    """Lay ``provider_options["replicate"]`` over the inputs; returns images per prediction."""
    raw = dict(request.provider_options.get("replicate", {}))
    group = 1
    for key, value in raw.items():
        where = f"provider_options.replicate.{key}"
        if key in _MANAGED:
            missing.append(f"{where}: set by {_MANAGED[key]}")
            continue
        spec = schema.inputs.get(key)
        if spec is None:
            missing.append(f"{where}: not an input of {card.model} "
                           f"(inputs: {', '.join(sorted(schema.inputs))})")
            continue
        problem = spec.problem(value)
        if problem:
            missing.append(f"{where} {problem}")
            continue
        if key == schema.count_field:
            group = value
            if value > 1 and request.image_count > 1 and schema.takes_seed:
                warnings.append(f"{where}={value}: up to {value} images per prediction; only the "
                                "first image of each has a reproducible seed")
            continue
        if key == "sequential_image_generation" and value == "auto":
            warnings.append(f"{where}='auto': the model may make several images per prediction and "
                            "bills each; only the images the request asks for are kept")
        if key in out and out[key] != value:
            warnings.append(f"{where}={value!r} overrides the translated {key}={out[key]!r}")
        out[key] = value
    return group


def _split(count: int, group: int, first_seed: int | None, base: dict,
           schema: ModelSchema) -> list[PlannedPrediction]:
    """Image i gets seed s+i: one prediction per image unless several were asked per call."""
    group = max(1, min(group, schema.max_outputs))
    if not schema.takes_seed:
        first_seed = None
    planned = []
    for start in range(0, count, group):
        n = min(group, count - start)
        payload = dict(base)
        seed = None if first_seed is None else first_seed + start
        if seed is not None:
            payload["seed"] = seed
        if n > 1 and schema.count_field:
            payload[schema.count_field] = n
        planned.append(PlannedPrediction(payload, [seed] + [None] * (n - 1), start))
    return planned


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
