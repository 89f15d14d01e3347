"""A1111 "infotext": the `parameters` text WebUI writes into every image it saves.

`parse_infotext` reads it as A1111's `parse_generation_parameters` does (WebUI 1.10:
`modules/infotext_utils.py`), `format_infotext` writes it as `processing.create_infotext`
does, and `request_from_infotext` / `infotext_from_request` convert to and from requests.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import PromptSyntaxError
from .a1111 import extract_extra_networks, lora_tag, parse_prompt_attention

if TYPE_CHECKING:
    from ..request import GenerateRequest

_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_IMAGE_SIZE = re.compile(r"^(\d+)x(\d+)$")
_NEGATIVE = "Negative prompt:"

# Keys A1111 fills in when an infotext lacks them (parse_generation_parameters, 1.10).
_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("Clip skip", "1"),
    ("Hires resize-1", 0), ("Hires resize-2", 0),
    ("Hires sampler", "Use same sampler"),
    ("Hires schedule type", "Use same scheduler"),
    ("Hires checkpoint", "Use same checkpoint"),
    ("Hires prompt", ""), ("Hires negative prompt", ""),
    ("Mask mode", "Inpaint masked"), ("Masked content", "original"),
    ("Inpaint area", "Whole picture"), ("Masked area padding", 32),
    ("RNG", "GPU"), ("Schedule type", "Automatic"),
    ("Schedule max sigma", 0), ("Schedule min sigma", 0), ("Schedule rho", 0),
    ("VAE Encoder", "Full"), ("VAE Decoder", "Full"),
    ("FP8 weight", "Disable"),
    ("Refiner switch by sampling steps", False),
)


class InfotextParams(dict):
    """The parsed fields, in written order; ``defaults_added`` names the keys A1111 filled in."""

    defaults_added: frozenset[str] = frozenset()


def split_infotext(text: str) -> tuple[str, str, list[tuple[str, str]]]:
    """(prompt, negative prompt, [(key, value)...]) with quoted values unquoted, nothing added."""
    *lines, last = text.strip().split("\n")
    if len(_PARAM.findall(last)) < 3:  # A1111's test for "this line holds the parameters"
        lines.append(last)
        last = ""
    prompt: list[str] = []
    negative: list[str] = []
    in_negative = False
    for line in lines:
        line = line.strip()
        if line.startswith(_NEGATIVE):
            in_negative = True
            line = line[len(_NEGATIVE):].strip()
        (negative if in_negative else prompt).append(line)
    pairs = [(key, _unquote(value)) for key, value in _PARAM.findall(last)]
    return "\n".join(prompt), "\n".join(negative), pairs


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        try:
            return str(json.loads(value))
        except ValueError:
            return value
    return value


def parse_infotext(text: str) -> InfotextParams:
    """The A1111 dict: "Prompt", "Negative prompt", every key (unknown ones kept), `WxH` split
    into "<key>-1"/"<key>-2", and A1111's defaults for missing keys."""
    prompt, negative, pairs = split_infotext(text)
    res = InfotextParams(Prompt=prompt)
    res["Negative prompt"] = negative
    for key, value in pairs:
        size = _IMAGE_SIZE.match(value)
        if size:
            res[f"{key}-1"], res[f"{key}-2"] = size.group(1), size.group(2)
        else:
            res[key] = value
    if "Hypernet" in res:
        res["Prompt"] += f"<hypernet:{res['Hypernet']}:{res.get('Hypernet strength', '1.0')}>"
    added = [key for key, _ in _DEFAULTS if key not in res]
    for key, value in _DEFAULTS:
        res.setdefault(key, value)
    _restore_old_hires_fix(res)
    if res["FP8 weight"] != "Disable" and "Cache FP16 weight for LoRA" not in res:
        res["Cache FP16 weight for LoRA"] = False
        added.append("Cache FP16 weight for LoRA")
    if "Emphasis" not in res and _uses_emphasis(prompt, negative):
        res["Emphasis"] = "Original"
        added.append("Emphasis")
    res.defaults_added = frozenset(added)
    return res


def _uses_emphasis(prompt: str, negative: str) -> bool:
    try:
        fragments = parse_prompt_attention(prompt) + parse_prompt_attention(negative)
    except PromptSyntaxError:
        return True
    return any(weight != 1.0 and piece != "BREAK" for piece, weight in fragments)


def _restore_old_hires_fix(res: InfotextParams) -> None:
    """Pre-1.0 infotexts give `First pass size`; the final size was the hires target."""
    first_w, first_h = res.get("First pass size-1"), res.get("First pass size-2")
    if first_w is None or first_h is None:
        return
    sizes = (res.get("Size-1", 512), res.get("Size-2", 512), first_w, first_h)
    if any(len(str(size)) > 7 for size in sizes):
        return  # not an image size A1111 could have written
    width, height, first_w, first_h = (int(size) for size in sizes)
    if width * height == 0:
        return  # not an image size A1111 could have written
    if first_w == 0 or first_h == 0:  # A1111's old automatic first pass of about 512x512
        scale = math.sqrt(512 * 512 / (width * height))
        first_w, first_h = math.ceil(scale * width / 64) * 64, math.ceil(scale * height / 64) * 64
    res["Size-1"], res["Size-2"] = str(first_w), str(first_h)
    res["Hires resize-1"], res["Hires resize-2"] = str(width), str(height)


def quote(value: Any) -> str:
    """A1111's quoting: values with `,` `:` or a newline become JSON strings. A value that
    starts with `"` is quoted too, so that it cannot read back as a quoted string."""
    text = _value_text(value)
    if "," not in text and "\n" not in text and ":" not in text and not text.startswith('"'):
        return text
    return json.dumps(text, ensure_ascii=False)


def _value_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def format_infotext(
    params: Mapping[str, Any], prompt: str | None = None, negative_prompt: str | None = None
) -> str:
    """Write infotext from fields in the order given (None values skipped).

    ``params`` may be what `parse_infotext` returned: its "Prompt"/"Negative prompt" are used,
    "<key>-1"/"<key>-2" pairs are written back as `key: WxH`, and defaults it added are left out.
    """
    prompt = str(params.get("Prompt", "")) if prompt is None else prompt
    negative = str(params.get("Negative prompt", "")) if negative_prompt is None else negative_prompt
    skip: frozenset[str] = getattr(params, "defaults_added", frozenset())
    pieces = []
    for key, value in params.items():
        if key in ("Prompt", "Negative prompt") or key in skip or value is None:
            continue
        base = key[:-2]
        if key.endswith("-2") and base + "-1" in params:
            continue
        if key.endswith("-1") and base + "-2" in params:
            key, value = base, f"{params[key]}x{params[base + '-2']}"
        pieces.append(key if key == value else f"{key}: {quote(value)}")
    negative_text = f"\n{_NEGATIVE} {negative}" if negative else ""
    return f"{prompt}{negative_text}\n{', '.join(pieces)}".strip()


# -- requests ----------------------------------------------------------------------------


def request_from_infotext(text: str, *, include_model: bool = False, **overrides: Any) -> GenerateRequest:
    """A request that reproduces the image: LoRA tags become `loras`, legacy sampler names
    ("DPM++ 2M Karras") split into sampler + scheduler. The checkpoint and VAE names are only
    used with ``include_model`` (as `local:<name>`), since they rarely exist elsewhere."""
    from ..request import GenerateRequest, HiresFix
    from ..samplers import split_sampler

    res = parse_infotext(text)
    prompt, loras = extract_extra_networks(res["Prompt"])
    fields: dict[str, Any] = {
        "prompt": _tidy(prompt) or res["Prompt"],
        "negative_prompt": res["Negative prompt"],
        "loras": loras,
    }
    read = _Reader(res)
    if "Steps" in res:
        fields["steps"] = read.number("Steps", int)
    if "Sampler" in res:
        try:
            sampler, legacy_schedule = split_sampler(res["Sampler"])
        except ValueError as error:
            raise PromptSyntaxError(f"infotext Sampler: {error}", token=res["Sampler"]) from None
        written = res["Schedule type"]
        schedule = legacy_schedule if written == "Automatic" else written
        fields["sampler"] = sampler
        fields["scheduler"] = None if schedule in (None, "Automatic") else schedule
    if "CFG scale" in res:
        fields["cfg_scale"] = read.number("CFG scale", float)
    if "Seed" in res:
        fields["seed"] = read.number("Seed", int)
    if "Variation seed" in res and "Variation seed strength" in res:
        fields["variation_seed"] = read.number("Variation seed", int)
        fields["variation_strength"] = read.number("Variation seed strength", float)
    if "Size-1" in res:
        fields["width"], fields["height"] = read.number("Size-1", int), read.number("Size-2", int)
    if "Clip skip" not in res.defaults_added:
        fields["clip_skip"] = read.number("Clip skip", int)
    if include_model and res.get("Model"):
        fields["model"] = "local:" + res["Model"]
    if include_model and res.get("VAE"):
        fields["vae"] = res["VAE"]
    hires = _hires(res, read)
    if hires is not None:
        fields["hires"] = HiresFix(**hires)
    fields.update(overrides)
    return GenerateRequest(**fields)


class _Reader:
    """Numbers from infotext fields, with an error naming the field when one is not a number."""

    def __init__(self, res: InfotextParams):
        self.res = res

    def number(self, key: str, kind: type) -> Any:
        value = self.res[key]
        try:
            number = kind(value)
        except (TypeError, ValueError):
            number = None
        if number is None or number != number or number in (float("inf"), float("-inf")):
            what = "a whole number" if kind is int else "a number"
            raise PromptSyntaxError(f"infotext {key}: expected {what}, got {value!r}", token=str(value))
        return number


def _hires(res: InfotextParams, read: _Reader) -> dict[str, Any] | None:
    keys = ("Hires upscale", "Hires steps", "Hires upscaler")
    resized = "Hires resize-1" not in res.defaults_added
    if not resized and not any(key in res for key in keys):
        return None
    hires: dict[str, Any] = {}
    if "Hires upscale" in res:
        hires["scale"] = read.number("Hires upscale", float)
    if resized:
        hires["resize_width"] = read.number("Hires resize-1", int)
        hires["resize_height"] = read.number("Hires resize-2", int)
    if "Hires steps" in res:
        hires["steps"] = read.number("Hires steps", int)
    if "Hires upscaler" in res:
        hires["upscaler"] = res["Hires upscaler"]
    if "Denoising strength" in res:  # with hires fix, this is the second pass's strength
        hires["denoising_strength"] = read.number("Denoising strength", float)
    return hires


def _tidy(text: str) -> str:
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def infotext_from_request(
    request: GenerateRequest,
    *,
    seed: int | None = None,
    width: int | None = None,
    height: int | None = None,
    model_name: str | None = None,
    model_hash: str | None = None,
    vae_name: str | None = None,
    extra: Mapping[str, Any] | None = None,
    version: str | None = None,
) -> str:
    """The infotext A1111 would write for ``request`` (pass the values actually used: the seed
    of this image, its size, the checkpoint's name and hash)."""
    from ..samplers import split_sampler

    tags = " ".join(lora_tag(lora.name, lora.weight) for lora in request.loras
                    if f"<lora:{lora.name}:" not in request.prompt)
    prompt = f"{request.prompt} {tags}" if tags else request.prompt
    sampler = schedule = None
    if request.sampler:
        sampler, schedule = split_sampler(request.sampler)
        schedule = request.scheduler or schedule
    if width is None or height is None:
        if request.width and request.height:
            width, height = request.width, request.height
        elif request.aspect_ratio or request.width or request.height:
            width, height = request.size()
    hires = request.hires
    params: dict[str, Any] = {
        "Steps": request.steps,
        "Sampler": sampler,
        "Schedule type": schedule if sampler else None,
        "CFG scale": request.cfg_scale,
        "Seed": seed if seed is not None else (request.seed if request.seed_fixed else None),
        "Size": f"{width}x{height}" if width and height else None,
        "Model hash": model_hash,
        "Model": model_name,
        "VAE": vae_name,
        "Denoising strength": hires.denoising_strength if hires else request.denoising_strength,
        "Clip skip": request.clip_skip if request.clip_skip and request.clip_skip > 1 else None,
    }
    if hires:
        if hires.resize_width and hires.resize_height:
            params["Hires resize"] = f"{hires.resize_width}x{hires.resize_height}"
        else:
            params["Hires upscale"] = hires.scale
        params["Hires steps"] = hires.steps or None
        params["Hires upscaler"] = hires.upscaler
    params.update(extra or {})
    params["Version"] = version
    return format_infotext(params, prompt, request.negative_prompt)


__all__ = ["InfotextParams", "format_infotext", "infotext_from_request", "parse_infotext", "quote",
           "request_from_infotext", "split_infotext"]
