"""Midjourney-style prompts to and from `GenerateRequest` fields.

Parameters with an A1111 meaning become request fields (`--ar`, `--no`, `--seed`); the rest
are kept typed in `GenerateRequest.midjourney` for the backends that can honour them.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .midjourney import (
    MidjourneyParams,
    MidjourneyPrompt,
    PromptPart,
    StyleRef,
    expand_prompts,
    render_midjourney,
)

if TYPE_CHECKING:
    from ..request import GenerateRequest  # read, never built, here: the request builds itself

# MidjourneyParams fields kept under MidjourneyOptions.extra (no typed field there).
_EXTRA_FIELDS = ("cw", "sw", "sv", "ow", "draft", "exp", "speed", "video", "motion", "loop")
# MidjourneyParams fields copied one-to-one onto MidjourneyOptions.
_OPTION_FIELDS = ("version", "niji", "stylize", "chaos", "weird", "quality", "tile", "style", "stop",
                  "repeat", "image_weight", "cref", "oref")


def expand_jobs(text: str) -> list[tuple[MidjourneyPrompt, int]]:
    """(prompt, k) per job: permutations expanded, ``--repeat N`` unrolled into repeats k = 0..N-1
    (at most 40 jobs), so the request side can vary each repeat's seed."""
    jobs: list[tuple[MidjourneyPrompt, int]] = []
    for prompt in expand_prompts(text):
        single = replace(prompt, params=replace(prompt.params, repeat=None))
        jobs += [(single, k) for k in range(prompt.params.repeat or 1)]
    return jobs


def midjourney_fields(prompt: MidjourneyPrompt) -> dict[str, Any]:
    """`GenerateRequest` fields for one parsed prompt (plain values: the request validates them)."""
    params = prompt.params
    positive = [part for part in prompt.parts if part.weight >= 0]
    negative = [part.text for part in prompt.parts if part.weight < 0]
    text = ", ".join(part.text for part in positive)  # may be empty: only images or `::-w` parts
    options: dict[str, Any] = {name: getattr(params, name) for name in _OPTION_FIELDS}
    options["cref"] = list(params.cref)
    options["image_prompts"] = list(prompt.image_prompts)
    options["sref"] = [_sref_text(ref) for ref in params.sref]
    extra = {name: getattr(params, name) for name in _EXTRA_FIELDS
             if getattr(params, name) not in (None, False)}
    if params.personalize is not None:
        extra["personalize"] = list(params.personalize)
    if len(prompt.parts) > 1 or any(part.weight != 1 for part in prompt.parts):
        extra["multi_prompt"] = [[part.text, part.weight] for part in prompt.parts]
    options["extra"] = extra
    return {
        "prompt": text,
        "negative_prompt": ", ".join([*params.negative, *negative]),
        "aspect_ratio": params.aspect,
        "seed": params.seed,
        "midjourney": options,
    }


def _sref_text(ref: StyleRef) -> str:
    from .midjourney import format_number

    return ref.ref if ref.weight is None else f"{ref.ref}::{format_number(ref.weight)}"


def prompt_from_request(request: GenerateRequest) -> MidjourneyPrompt:
    """The Midjourney-style prompt closest to ``request`` (what cannot be said is left out)."""
    options = request.midjourney
    extra = dict(options.extra) if options else {}
    parts = _parts_from(request, extra.get("multi_prompt"))
    negative = request.negative_prompt
    from_parts = ", ".join(part.text for part in parts if part.weight < 0)
    if from_parts and negative.endswith(from_parts):
        negative = negative[: -len(from_parts)].rstrip().rstrip(",")
    elif from_parts:  # the negative prompt was edited: it wins over the `::-w` parts
        parts = tuple(part for part in parts if part.weight >= 0)
    negatives = tuple(item for item in (" ".join(n.split()) for n in negative.split(",")) if item)
    fields: dict[str, Any] = {
        "aspect": request.aspect_ratio or _ratio(request.width, request.height),
        "negative": negatives,
        "seed": request.seed if request.seed_fixed else None,
    }
    images: tuple[str, ...] = ()
    if options:
        for name in _OPTION_FIELDS:
            fields[name] = getattr(options, name)
        fields["cref"] = tuple(options.cref)
        fields["sref"] = tuple(_sref_from_text(text) for text in options.sref)
        images = tuple(options.image_prompts)
        for name in _EXTRA_FIELDS:
            if name in extra:
                fields[name] = extra[name]
        if "personalize" in extra:
            fields["personalize"] = tuple(extra["personalize"])
    if not parts:
        # Kept verbatim: Midjourney reads brackets as words, so nothing is lost.
        parts = (PromptPart(request.prompt.strip()),)
    return MidjourneyPrompt(parts=parts, image_prompts=images, params=MidjourneyParams(**fields))


def _parts_from(request: GenerateRequest, multi: Any) -> tuple[PromptPart, ...]:
    """The stored `::` parts, if the prompt text still matches them."""
    if not multi:
        return ()
    parts = tuple(PromptPart(str(text), float(weight)) for text, weight in multi)
    if ", ".join(p.text for p in parts if p.weight >= 0) != request.prompt:
        return ()  # the prompt was edited after parsing: trust the prompt
    return parts


def _sref_from_text(text: str) -> StyleRef:
    ref, sep, weight = text.rpartition("::")
    return StyleRef(ref, float(weight)) if sep else StyleRef(text)


def _ratio(width: int | None, height: int | None) -> str | None:
    if not width or not height:
        return None
    divisor = math.gcd(width, height)
    return f"{width // divisor}:{height // divisor}"


def to_midjourney(request: GenerateRequest) -> str:
    """The request as a Midjourney-style prompt string."""
    return render_midjourney(prompt_from_request(request))
