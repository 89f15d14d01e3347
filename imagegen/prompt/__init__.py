"""Prompt languages: Midjourney-style text, A1111 weighting and infotext, and the
translation of a request's prompt into each backend's dialect.

The grammars here never build a `GenerateRequest`: they give its fields
(`midjourney_fields`, `infotext_fields`) and `GenerateRequest.from_midjourney` /
`from_infotext` build and validate the request, so the request depends on the grammars and not
the other way round.
"""

from .a1111 import LoraTag, extract_extra_networks, parse_prompt_attention
from .a1111_schedule import prompt_at_step, prompt_schedule
from .infotext import format_infotext, infotext_fields, infotext_from_request, parse_infotext
from .midjourney import (
    MidjourneyParams,
    MidjourneyPrompt,
    PromptPart,
    StyleRef,
    parse_midjourney,
    render_midjourney,
)
from .midjourney_request import midjourney_fields, to_midjourney
from .translate import (
    plain_text,
    sd_prompt_text,
    split_sd_prompt,
    to_flux,
    to_sd,
    unsupported_midjourney_options,
)

__all__ = [
    "LoraTag", "MidjourneyParams", "MidjourneyPrompt", "PromptPart", "StyleRef",
    "extract_extra_networks", "format_infotext", "infotext_fields", "infotext_from_request",
    "midjourney_fields", "parse_infotext", "parse_midjourney", "parse_prompt_attention", "plain_text",
    "prompt_at_step", "prompt_schedule", "render_midjourney", "sd_prompt_text", "split_sd_prompt",
    "to_flux", "to_midjourney", "to_sd", "unsupported_midjourney_options",
]
