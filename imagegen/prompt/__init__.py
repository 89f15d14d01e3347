"""Prompt languages: Midjourney-style text, A1111 weighting and infotext, and the
translation of a request's prompt into each backend's dialect."""

from .a1111 import extract_extra_networks, parse_prompt_attention
from .a1111_schedule import prompt_at_step, prompt_schedule
from .infotext import format_infotext, infotext_from_request, parse_infotext, request_from_infotext
from .midjourney import (
    MidjourneyParams,
    MidjourneyPrompt,
    PromptPart,
    StyleRef,
    expand_midjourney,
    parse_midjourney,
    render_midjourney,
    request_from_midjourney,
    to_midjourney,
)
from .translate import plain_text, split_sd_prompt, to_flux, to_sd, unsupported_midjourney_options

__all__ = [
    "MidjourneyParams", "MidjourneyPrompt", "PromptPart", "StyleRef", "expand_midjourney",
    "extract_extra_networks", "format_infotext", "infotext_from_request", "parse_infotext",
    "parse_midjourney", "parse_prompt_attention", "plain_text", "prompt_at_step", "prompt_schedule",
    "render_midjourney", "request_from_infotext", "request_from_midjourney", "split_sd_prompt",
    "to_flux", "to_midjourney", "to_sd", "unsupported_midjourney_options",
]
