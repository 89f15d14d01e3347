"""A1111 "infotext": the `parameters` text WebUI writes into every image it saves.

`parse_infotext` reads it as A1111's `parse_generation_parameters` does (WebUI 1.10:
`modules/infotext_utils.py`), `format_infotext` writes it as `processing.create_infotext`
does, and `infotext_fields` / `infotext_from_request` convert to and from requests.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import PromptSyntaxError
from .a1111 import LORA_KINDS, extract_extra_networks, lora_tag, parse_prompt_attention

if TYPE_CHECKING:
    from ..request import GenerateRequest

_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_IMAGE_SIZE = re.compile(r"^(\d+)x(\d+)$")
_NEGATIVE = "Negative prompt:"
_EXTRA_NETWORK_TAG = re.compile(r"([ \t]*)(<(\w+):[^>]+>)")

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
    """The parsed fields, in written order; ``defaults_added`` names the keys A1111 filled in,
    ``hypernet_tag`` the tag it appended to the prompt for `Hypernet:`, and ``old_hires_fix``
    whether it moved a pre-1.0 `Size`/`First pass size` to `Size`/`Hires resize`."""

    defaults_added: frozenset[str] = frozenset()
    hypernet_tag: str = ""
    old_hires_fix: bool = False


def split_infotext(text: str) -> tuple[str, str, list[tuple[str, str]]]:
    """(prompt, negative prompt, [(key, value)...]) with quoted values unquoted, nothing added.

    As in WebUI, a key with an empty value (`Clip skip: ,`) is left out, and empty lines before
    any text of the prompt or the negative prompt are dropped."""
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
        target = negative if in_negative else prompt
        if target or line:  # WebUI joins with "\n" only once the text is non-empty
            target.append(line)
    # WebUI reads `v[0]` of each value inside a try, so an empty value is skipped.
    pairs = [(key, _unquote(value)) for key, value in _PARAM.findall(last) if value]
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
    into "<key>-1"/"<key>-2", A1111's defaults for missing keys, and the back-compat flags its
    `Version` implies (WebUI 1.10 `parse_generation_parameters`, with default settings)."""
    prompt, negative, pairs = split_infotext(text)
    res = InfotextParams(Prompt=prompt)
    res["Negative prompt"] = negative
    for key, value in pairs:
        if key in ("Prompt", "Negative prompt"):
            continue  # WebUI sets both from the text above the parameter line, after reading it
        size = _IMAGE_SIZE.match(value)
        if size:
            res[f"{key}-1"], res[f"{key}-2"] = size.group(1), size.group(2)
        else:
            res[key] = value
    added: list[str] = []
    _clear_hires_prompts_equal_to_prompt(res, added)
    if "Hypernet" in res:
        res.hypernet_tag = f"<hypernet:{res['Hypernet']}:{res.get('Hypernet strength', '1.0')}>"
        res["Prompt"] += res.hypernet_tag
    added += [key for key, _ in _DEFAULTS if key not in res]
    for key, value in _DEFAULTS:
        res.setdefault(key, value)
    if _restore_old_hires_fix(res):
        res.old_hires_fix = True
        added = [key for key in added if key not in ("Hires resize-1", "Hires resize-2")]
    if res["FP8 weight"] != "Disable" and "Cache FP16 weight for LoRA" not in res:
        res["Cache FP16 weight for LoRA"] = False
        added.append("Cache FP16 weight for LoRA")
    if "Emphasis" not in res and _uses_emphasis(prompt, negative):
        res["Emphasis"] = "Original"
        added.append("Emphasis")
    _backcompat(res, added)
    res.defaults_added = frozenset(added)
    return res


def _clear_hires_prompts_equal_to_prompt(res: InfotextParams, added: list[str]) -> None:
    """WebUI (after 1.8.0-139, or with no readable version) reads a hires prompt that equals
    the prompt as '' ("use the same prompt"); so for the hires negative prompt."""
    if "Hires prompt" not in res and "Hires negative prompt" not in res:
        return
    version = parse_version(res.get("Version"))
    if version is not None and not version > _V180_HR_STYLES:
        return
    for key, main in (("Hires prompt", "Prompt"), ("Hires negative prompt", "Negative prompt")):
        if key not in res:
            added.append(key)
        res[key] = "" if res.get(key, res[main]) == res[main] else res[key]


# -- Version back-compat (WebUI 1.10 modules/infotext_versions.py) ----------------------------

_PEP440 = re.compile(
    r"v?(?:(?P<epoch>[0-9]+)!)?(?P<release>[0-9]+(?:\.[0-9]+)*)"
    r"(?:[-_.]?(?P<pre_l>alpha|a|beta|b|preview|pre|c|rc)[-_.]?(?P<pre_n>[0-9]+)?)?"
    r"(?:-(?P<post_n1>[0-9]+)|[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>[0-9]+)?)?"
    r"(?:[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>[0-9]+)?)?"
    r"(?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?",
    re.IGNORECASE,
)
_PRE_LETTERS = {"alpha": "a", "a": "a", "beta": "b", "b": "b", "c": "rc", "pre": "rc", "preview": "rc", "rc": "rc"}
_BELOW, _ABOVE = (0,), (2,)  # sort before / after any (1, value)


def parse_version(text: Any) -> tuple | None:
    """A sort key for an infotext `Version` the way WebUI compares them (`packaging.version`
    after cutting `v1.7.0-225-g1234abc` to `v1.7.0-225`), or None when it is not a version."""
    if not isinstance(text, str):
        return None
    cut = re.match(r"([^-]+-[^-]+)-.*", text)
    match = _PEP440.fullmatch((cut.group(1) if cut else text).strip())
    if match is None:
        return None
    release = [int(part) for part in match["release"].split(".")]
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    post_n = match["post_n1"] or match["post_n2"]
    has_post = match["post_n1"] is not None or match["post_l"] is not None
    if match["pre_l"]:
        pre: tuple = (1, _PRE_LETTERS[match["pre_l"].lower()], int(match["pre_n"] or 0))
    elif match["dev_l"] and not has_post:
        pre = _BELOW
    else:
        pre = _ABOVE
    post = (1, int(post_n or 0)) if has_post else _BELOW
    dev = (1, int(match["dev_n"] or 0)) if match["dev_l"] else _ABOVE
    local: tuple = _BELOW
    if match["local"]:
        local = (1, tuple((1, int(p), "") if p.isdigit() else (0, 0, p.lower())
                          for p in re.split(r"[-_.]", match["local"])))
    return (int(match["epoch"] or 0), tuple(release), pre, post, dev, local)


def _known_version(text: str) -> tuple:
    key = parse_version(text)
    assert key is not None
    return key


_V160 = _known_version("1.6.0")
_V170_TSNR = _known_version("v1.7.0-225")
_V180 = _known_version("1.8.0")
_V180_HR_STYLES = _known_version("1.8.0-139")


def _backcompat(res: InfotextParams, added: list[str]) -> None:
    """The settings WebUI turns on to reproduce images of older versions."""
    version = parse_version(res.get("Version"))
    if version is None:
        return
    flags = []
    if version < _V160 and "[" in res.get("Prompt", ""):
        flags.append("Old prompt editing timelines")
    if version < _V160 and res.get("Sampler", "") in ("DDIM", "PLMS"):
        flags.append("Pad conds v0")
    if version < _V170_TSNR:
        flags.append("Downcast alphas_cumprod")
    if version < _V180 and res.get("Refiner"):
        flags.append("Refiner switch by sampling steps")
    for key in flags:
        if key not in res:
            added.append(key)
        res[key] = True


def _uses_emphasis(prompt: str, negative: str) -> bool:
    try:
        fragments = parse_prompt_attention(prompt) + parse_prompt_attention(negative)
    except PromptSyntaxError:
        return True
    return any(weight != 1.0 and piece != "BREAK" for piece, weight in fragments)


def _restore_old_hires_fix(res: InfotextParams) -> bool:
    """Pre-1.0 infotexts give `First pass size`; the final size was the hires target.
    The sizes become ints, as WebUI's `restore_old_hires_fix_params` leaves them.
    Whether it applied."""
    first_w, first_h = res.get("First pass size-1"), res.get("First pass size-2")
    if first_w is None or first_h is None:
        return False
    width, height, first_w, first_h = (
        _size(value) for value in (res.get("Size-1", 512), res.get("Size-2", 512), first_w, first_h))
    if width is None or height is None or first_w is None or first_h is None:
        return False  # not an image size A1111 could have written
    if width * height == 0:
        return False  # not an image size A1111 could have written
    if first_w == 0 or first_h == 0:  # A1111's old automatic first pass of about 512x512
        scale = math.sqrt(512 * 512 / (width * height))
        first_w, first_h = math.ceil(scale * width / 64) * 64, math.ceil(scale * height / 64) * 64
    res["Size-1"], res["Size-2"] = first_w, first_h
    res["Hires resize-1"], res["Hires resize-2"] = width, height
    return True


def _size(value: Any) -> int | None:
    text = str(value)
    return int(text) if len(text) <= 7 and text.isdecimal() else None


def quote(value: Any) -> str:
    """A1111's quoting: values with `,` `:` or a newline become JSON strings. So do values that
    would not read back as written: one that starts with `"`, an empty one (WebUI skips it) and
    one with space at either end (the parameter line drops it). WebUI reads all of them back."""
    text = _value_text(value)
    plain = text and text == text.strip() and not text.startswith('"')
    if plain and "," not in text and "\n" not in text and ":" not in text:
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
    "<key>-1"/"<key>-2" pairs are written back as `key: WxH`, and defaults it added are left out,
    as is what it derived from the text (the `Hypernet:` tag, the pre-1.0 hires sizes), so the
    text reads back the same.
    """
    if prompt is None:
        prompt = str(params.get("Prompt", ""))
        tag = getattr(params, "hypernet_tag", "")
        if tag and prompt.endswith(tag):
            prompt = prompt[:-len(tag)]
    old_hires = getattr(params, "old_hires_fix", False)
    negative = str(params.get("Negative prompt", "")) if negative_prompt is None else negative_prompt
    skip: frozenset[str] = getattr(params, "defaults_added", frozenset())
    pieces = []
    for key, value in params.items():
        if key in ("Prompt", "Negative prompt") or key in skip or value is None:
            continue
        if old_hires and key in ("Hires resize-1", "Hires resize-2"):
            continue  # written as the `Size` it came from
        if old_hires and key == "Size-1" and "Size-2" in params:
            pieces.append(f"Size: {params['Hires resize-1']}x{params['Hires resize-2']}")
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


def infotext_fields(text: str, *, include_model: bool = False) -> dict[str, Any]:
    """`GenerateRequest` fields that reproduce the image (plain values: the request validates
    them): LoRA tags become `loras`, legacy sampler names ("DPM++ 2M Karras") split into
    sampler + scheduler. The checkpoint and VAE names are only used with ``include_model`` (as
    `local:<name>`), since they rarely exist elsewhere."""
    from ..samplers import split_sampler

    res = parse_infotext(text)
    prompt, loras = _without_extra_networks(res["Prompt"])
    fields: dict[str, Any] = {
        "prompt": prompt or res["Prompt"],
        "negative_prompt": res["Negative prompt"],
        "loras": [lora._asdict() for lora in loras],
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
    if "Variation seed" in res:  # WebUI pastes each of the two on its own
        fields["variation_seed"] = read.number("Variation seed", int)
    if "Variation seed strength" in res:
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
        fields["hires"] = hires
    return fields


class _Reader:
    """Numbers from infotext fields, with an error naming the field when one is not a number."""

    def __init__(self, res: InfotextParams):
        self.res = res

    def number(self, key: str, kind: type) -> Any:
        if key not in self.res:  # e.g. `Size-1: 512` written without its `Size-2`
            raise PromptSyntaxError(f"infotext {key}: missing (its pair is given without it)", token=key)
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
    if resized:  # `Hires resize: 1024x0`: WebUI derives the 0 side from the aspect ratio
        hires["resize_width"] = read.number("Hires resize-1", int) or None
        hires["resize_height"] = read.number("Hires resize-2", int) or None
    if "Hires steps" in res:
        hires["steps"] = read.number("Hires steps", int)
    if "Hires upscaler" in res:
        hires["upscaler"] = res["Hires upscaler"]
    if "Denoising strength" in res:  # with hires fix, this is the second pass's strength
        hires["denoising_strength"] = read.number("Denoising strength", float)
    return hires


def _without_extra_networks(text: str) -> tuple[str, list]:
    """The prompt without its `<lora:...>` (and other extra-network) tags, and the LoRAs.

    A tag goes with the spaces before it, so text written as `prompt <lora:a:1>` reads back as
    `prompt`; lines it leaves empty-ended are stripped, the rest of the text is kept as written."""
    loras: list = []

    def found(match: re.Match) -> str:
        loras.extend(extract_extra_networks(match.group(2))[1])
        return ""

    cleaned, count = _EXTRA_NETWORK_TAG.subn(found, text)
    if not count:
        return text, loras
    return "\n".join(line.strip() for line in cleaned.split("\n")).strip(), loras


# What WebUI 1.10 uses when a request leaves a field to the backend: its txt2img defaults.
WEBUI_DEFAULTS: dict[str, Any] = {"Steps": 20, "Sampler": "DPM++ 2M", "Schedule type": "Automatic",
                                  "CFG scale": 7, "Seed": -1}


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
    of this image, its size, the checkpoint's name and hash).

    Like WebUI, it always writes Steps, Sampler, Schedule type, CFG scale, Seed and Size; a
    field the request leaves to the backend is written as WebUI's default (`WEBUI_DEFAULTS`),
    a random seed as -1. LoRAs of ``request.loras`` are written as tags in the prompt: a tag the
    prompt already has for the same LoRA gets the request's weight, the others are appended."""
    from ..samplers import split_sampler

    prompt = _with_lora_tags(request.prompt, request.loras)
    sampler, schedule = WEBUI_DEFAULTS["Sampler"], None
    if request.sampler:
        sampler, schedule = split_sampler(request.sampler)
    schedule = request.scheduler or schedule or WEBUI_DEFAULTS["Schedule type"]
    if width is None or height is None:
        width, height = request.size()
    if seed is None:
        seed = request.seed if request.seed_fixed else WEBUI_DEFAULTS["Seed"]
    variation = request.variation_strength > 0
    variation_seed = request.variation_seed if request.variation_seed is not None else -1
    hires = request.hires
    params: dict[str, Any] = {
        "Steps": request.steps if request.steps is not None else WEBUI_DEFAULTS["Steps"],
        "Sampler": sampler,
        "Schedule type": schedule,
        "CFG scale": request.cfg_scale if request.cfg_scale is not None else WEBUI_DEFAULTS["CFG scale"],
        "Seed": seed,
        "Size": f"{width}x{height}",
        "Model hash": model_hash,
        "Model": model_name,
        "VAE": vae_name,
        "Variation seed": variation_seed if variation else None,
        "Variation seed strength": request.variation_strength if variation else None,
        "Denoising strength": hires.denoising_strength if hires else request.denoising_strength,
        "Clip skip": request.clip_skip if request.clip_skip and request.clip_skip > 1 else None,
    }
    if hires:
        if hires.resize_width or hires.resize_height:
            params["Hires resize"] = f"{hires.resize_width or 0}x{hires.resize_height or 0}"
        else:
            params["Hires upscale"] = hires.scale
        params["Hires steps"] = hires.steps or None
        params["Hires upscaler"] = hires.upscaler
    params.update(extra or {})
    params["Version"] = version
    return format_infotext(params, prompt, request.negative_prompt)


def _with_lora_tags(prompt: str, loras: list) -> str:
    """``prompt`` with a tag for each LoRA: one already in the prompt takes the LoRA's weight."""
    weights = {lora.name: lora.weight for lora in loras}
    present: set[str] = set()

    def reweigh(match: re.Match) -> str:
        if match.group(3).lower() not in LORA_KINDS:
            return match.group(0)
        try:
            tagged = extract_extra_networks(match.group(2))[1]
        except PromptSyntaxError:
            return match.group(0)
        if not tagged or tagged[0].name not in weights:
            return match.group(0)
        present.add(tagged[0].name)
        return match.group(1) + lora_tag(tagged[0].name, weights[tagged[0].name])

    if "<" in prompt:
        prompt = _EXTRA_NETWORK_TAG.sub(reweigh, prompt)
    tags = " ".join(lora_tag(lora.name, lora.weight) for lora in loras if lora.name not in present)
    return f"{prompt} {tags}" if tags else prompt


__all__ = ["WEBUI_DEFAULTS", "InfotextParams", "format_infotext", "infotext_from_request", "parse_infotext",
           "infotext_fields", "parse_version", "quote", "split_infotext"]
