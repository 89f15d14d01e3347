"""A request's prompt in each backend's dialect, with what got lost on the way.

Flux takes plain text (no weights, no negative prompt); local Stable Diffusion takes A1111
weighted text; Midjourney takes its own string. Every loss is reported as a warning.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..errors import PromptSyntaxError
from ..request import LoraRef
from .a1111 import BREAK, extract_extra_networks, format_weighted, parse_prompt_attention
from .a1111_schedule import prompt_schedule
from .midjourney_request import to_midjourney

if TYPE_CHECKING:
    from ..request import GenerateRequest

DEFAULT_STEPS = 20  # A1111's default, to place `[from:to:when]` fractions when steps is unset

_SPACES = re.compile(r"[ \t]+")
_COMMAS = re.compile(r"\s*,(?:\s*,)+")


def multi_prompt_parts(request: GenerateRequest) -> list[tuple[str, float]] | None:
    """The `::` parts of a Midjourney-style prompt, if the request still carries them."""
    options = request.midjourney
    multi = options.extra.get("multi_prompt") if options else None
    if not multi:
        return None
    parts = [(str(text), float(weight)) for text, weight in multi]
    if ", ".join(text for text, weight in parts if weight >= 0) != request.prompt:
        return None  # the prompt was edited after parsing: trust the prompt
    return parts


def plain_text(prompt: str, steps: int | None = None, warnings: list[str] | None = None) -> str:
    """A1111 text as plain words: tags removed, schedules resolved, weights and BREAK dropped."""
    notes: list[str] = [] if warnings is None else warnings
    text, loras = extract_extra_networks(prompt, notes)
    for lora in loras:
        notes.append(f"the <lora:{lora.name}> tag was removed from the prompt text; pass LoRAs in "
                     "`loras` for backends that can apply them")
    schedule = prompt_schedule(text, steps or DEFAULT_STEPS)
    if len(schedule) > 1:
        notes.append("prompt editing/alternation ([a:b:when], [a|b]) is not supported; "
                     "used the prompt of the last step")
    fragments = parse_prompt_attention(schedule[-1][1])
    if any(weight not in (1.0, -1.0) for _, weight in fragments):
        notes.append("prompt weights such as (word:1.2) are not supported and were dropped")
    pieces = []
    for piece, weight in fragments:
        if weight == -1.0 and piece == BREAK:
            notes.append("BREAK is not supported and was replaced by a comma")
            pieces.append(", ")
        else:
            pieces.append(piece)
    flat = _COMMAS.sub(",", _SPACES.sub(" ", "".join(pieces)))
    return flat.strip(" ,") or flat.strip()


def to_flux(request: GenerateRequest) -> tuple[str, list[str]]:
    """Plain prompt text for Flux, and a warning for each thing Flux cannot take."""
    warnings: list[str] = []
    parts = multi_prompt_parts(request)
    if parts is not None:
        text = request.prompt
        if any(weight != 1 for _, weight in parts):
            warnings.append("'::' prompt weights are not supported by Flux and were dropped")
    else:
        text = plain_text(request.prompt, request.steps, warnings)
    if request.negative_prompt.strip():
        warnings.append(f"Flux does not take a negative prompt; ignored: {request.negative_prompt!r}")
    if not text.strip():
        raise PromptSyntaxError("nothing is left of the prompt once A1111 syntax is removed", column=1)
    return text, _unique(warnings)


def to_sd(request: GenerateRequest) -> str:
    """A1111 weighted prompt text (without LoRA tags: those go through `loras`)."""
    return split_sd_prompt(request)[0]


def sd_prompt_text(request: GenerateRequest) -> str:
    """The prompt as A1111 text, LoRA tags kept: Midjourney `::` parts become A1111 weights
    (their `::-w` parts are already in the negative prompt); other prompts are as written."""
    parts = multi_prompt_parts(request)
    if parts is None:
        return request.prompt
    positive = [(text, weight) for text, weight in parts if weight >= 0]
    total = sum(weight for _, weight in positive) or 1.0
    # Midjourney weights are relative; scale them so they average 1 like A1111's.
    scale = len(positive) / total
    return ", ".join(format_weighted(text, weight * scale) for text, weight in positive)


def split_sd_prompt(request: GenerateRequest) -> tuple[str, list[LoraRef], list[str]]:
    """(weighted text, LoRAs from `request.loras` plus prompt tags, warnings) for local SD."""
    warnings: list[str] = []
    text, tagged = extract_extra_networks(sd_prompt_text(request), warnings)
    loras = list(request.loras)
    named = {lora.name for lora in loras}
    for lora in tagged:
        if lora.name in named:
            warnings.append(f"LoRA {lora.name!r} is both in `loras` and in the prompt; using `loras`")
        else:
            loras.append(LoraRef(name=lora.name, weight=lora.weight))
            named.add(lora.name)
    return _SPACES.sub(" ", text).strip(), loras, _unique(warnings)


# Typed MidjourneyOptions fields, and what each asks for, for the warnings below.
_MIDJOURNEY_OPTION_NAMES = {
    "version": "--v", "niji": "--niji", "stylize": "--s", "chaos": "--c", "weird": "--weird",
    "quality": "--q", "tile": "--tile", "style": "--style", "stop": "--stop", "repeat": "--repeat",
    "image_prompts": "image prompts", "image_weight": "--iw", "sref": "--sref", "cref": "--cref",
    "oref": "--oref",
}


def unsupported_midjourney_options(request: GenerateRequest, supported: frozenset[str] = frozenset()) -> list[str]:
    """A warning for each Midjourney-only option set on ``request`` that a backend ignores.

    ``supported`` names the MidjourneyOptions fields (or `extra` keys) the backend honours.
    """
    options = request.midjourney
    if options is None:
        return []
    warnings = []
    for name, shown in _MIDJOURNEY_OPTION_NAMES.items():
        value = getattr(options, name)
        if value not in (None, False, []) and name not in supported:
            warnings.append(_ignored(shown, value))
    for name, value in options.extra.items():
        if name != "multi_prompt" and name not in supported:
            warnings.append(_ignored("--" + name, value))
    return warnings


def _ignored(name: str, value: object) -> str:
    shown = "" if value is True else " ".join(map(str, value)) if isinstance(value, list) else str(value)
    return f"{name} {shown}".rstrip() + " is a Midjourney option this backend ignores"


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


__all__ = ["multi_prompt_parts", "plain_text", "sd_prompt_text", "split_sd_prompt", "to_flux", "to_midjourney",
           "to_sd", "unsupported_midjourney_options"]
