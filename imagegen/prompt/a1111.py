"""AUTOMATIC1111 prompt syntax: attention weights, `BREAK`, extra-network tags.

Clean-room reimplementation of the rules of A1111 `modules/prompt_parser.py` and
`extra_networks.py` (WebUI 1.10), so weighted prompts mean the same thing here as there.
Prompt editing and alternation schedules are in `a1111_schedule`.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ..errors import PromptSyntaxError

ROUND_MULTIPLIER = 1.1
SQUARE_MULTIPLIER = 1 / 1.1
BREAK = "BREAK"  # the text of the chunk-break marker; its weight is -1

# Tried in order, as in A1111: escapes, brackets, `:weight)`, closers, plain text, lone colon.
_ATTENTION = re.compile(
    r"\\\(|\\\)|\\\[|\\]|\\\\|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|]|[^\\()\[\]:]+|:"
)
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)
_EXTRA_NETWORK = re.compile(r"<(\w+):([^>]+)>")
LORA_KINDS = ("lora", "lyco")
LORA_WEIGHT_RANGE = (-5.0, 5.0)  # LoraRef's accepted range


def parse_prompt_attention(text: str) -> list[tuple[str, float]]:
    """Split ``text`` into (fragment, weight) runs; `BREAK` is ("BREAK", -1.0).

    >>> parse_prompt_attention("a (cat:1.3) [dog]")[1]
    ('cat', 1.3)
    """
    res: list[list] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def multiply(start: int, factor: float) -> None:
        for item in res[start:]:
            item[1] *= factor

    for match in _ATTENTION.finditer(text):
        token, weight = match.group(0), match.group(1)
        if token.startswith("\\"):
            res.append([token[1:], 1.0])
        elif token == "(":
            round_open.append(len(res))
        elif token == "[":
            square_open.append(len(res))
        elif weight is not None and round_open:
            multiply(round_open.pop(), _weight(weight, match))
        elif token == ")" and round_open:
            multiply(round_open.pop(), ROUND_MULTIPLIER)
        elif token == "]" and square_open:
            multiply(square_open.pop(), SQUARE_MULTIPLIER)
        else:
            for index, piece in enumerate(_BREAK.split(token)):
                if index:
                    res.append([BREAK, -1.0])
                res.append([piece, 1.0])
    # Unclosed brackets weigh up to the end of the text.
    for start in round_open:
        multiply(start, ROUND_MULTIPLIER)
    for start in square_open:
        multiply(start, SQUARE_MULTIPLIER)
    if not res:
        return [("", 1.0)]
    merged = [res[0]]
    for item in res[1:]:
        if item[1] == merged[-1][1]:
            merged[-1][0] += item[0]
        else:
            merged.append(item)
    return [(piece, weight) for piece, weight in merged]


def _weight(text: str, match: re.Match) -> float:
    try:
        return float(text)
    except ValueError:
        raise PromptSyntaxError(
            f"expected a number like 1.2 in {match.group(0)!r}", column=match.start() + 1, token=match.group(0)
        ) from None


def escape_attention(text: str) -> str:
    """Plain text that A1111 reads literally: brackets and backslashes escaped."""
    return re.sub(r"([\\()\[\]])", r"\\\1", text)


def format_weighted(text: str, weight: float) -> str:
    """``(text:1.2)``, or the text unchanged at weight 1."""
    if weight == 1:
        return text
    return f"({text}:{_short(weight)})"


def _short(weight: float) -> str:
    return f"{round(weight, 4):g}"


# -- extra networks ----------------------------------------------------------------------


class LoraTag(NamedTuple):
    """A `<lora:name:weight>` tag read from prompt text (a request's `LoraRef` holds the same)."""

    name: str
    weight: float = 1.0


def extract_extra_networks(text: str, warnings: list[str] | None = None) -> tuple[str, list[LoraTag]]:
    """Remove `<lora:name:weight>` / `<lyco:...>` tags (and other extra networks) from ``text``.

    Returns the clean text and the LoRAs. Tags of other kinds (`<hypernet:...>`) are removed as
    A1111 does, and reported in ``warnings`` since nothing here applies them.
    """
    loras: list[LoraTag] = []

    def found(match: re.Match) -> str:
        kind, args = match.group(1).lower(), match.group(2)
        if kind in LORA_KINDS:
            loras.append(_lora(match, args, warnings))
        elif warnings is not None:
            warnings.append(f"extra network {match.group(0)!r} is not supported and was removed from the prompt")
        return ""

    if "<" not in text:
        return text, loras
    return _EXTRA_NETWORK.sub(found, text), loras


def _lora(match: re.Match, args: str, warnings: list[str] | None) -> LoraTag:
    """`<lora:name[:te[:unet[:dyn]]]>`; an item `key=value` is named (`te=`, `unet=`, `dyn=`)."""
    name, te, unet, named = _lora_args(args)
    if not name:
        raise PromptSyntaxError(f"LoRA tag {match.group(0)!r} has no name", column=match.start() + 1,
                                token=match.group(0))
    weight = _tag_number(te, match)
    if unet is not None and _tag_number(unet, match) != weight and warnings is not None:
        warnings.append(f"{match.group(0)!r}: a separate UNet weight is not supported; using {weight:g}")
    unknown = [key for key in named if key not in ("te", "unet", "dyn")]
    if unknown and warnings is not None:
        warnings.append(f"{match.group(0)!r}: {', '.join(k + '=' for k in unknown)} not supported; ignored")
    low, high = LORA_WEIGHT_RANGE
    if not low <= weight <= high:
        raise PromptSyntaxError(f"LoRA weight {weight:g} in {match.group(0)!r} is outside {low:g}..{high:g}",
                                column=match.start() + 1, token=match.group(0))
    return LoraTag(name, weight)


def _lora_args(args: str) -> tuple[str, str, str | None, dict[str, str]]:
    """(name, te weight text, unet weight text or None, named items), as WebUI's
    `ExtraNetworkParams` splits them: an item with exactly one `=` is named."""
    positional: list[str] = []
    named: dict[str, str] = {}
    for item in args.split(":"):
        parts = item.split("=")
        if len(parts) == 2:
            named[parts[0].strip()] = parts[1].strip()
        else:
            positional.append(item)
    # WebUI reads the first item as the name and the second as the weight. A LoRA named by a URL
    # or a Windows path holds ':' itself, so when the second item is no number (where WebUI would
    # fail) the name runs on up to the first item that is one.
    cut = 1
    if len(positional) > 2 and not _is_number(positional[1]):
        cut = next((i for i in range(2, len(positional)) if _is_number(positional[i])), 1)
    name = ":".join(positional[:cut]).strip()
    te = named.get("te", positional[cut] if len(positional) > cut else "1")
    unet = named.get("unet", positional[cut + 1] if len(positional) > cut + 1 else None)
    return name, te, unet, named


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _tag_number(text: str, match: re.Match) -> float:
    try:
        value = float(text)
    except ValueError:
        raise PromptSyntaxError(f"expected a number for the weight in {match.group(0)!r}, got {text!r}",
                                column=match.start() + 1, token=match.group(0)) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise PromptSyntaxError(f"the weight in {match.group(0)!r} must be a finite number",
                                column=match.start() + 1, token=match.group(0))
    return value


def lora_tag(name: str, weight: float) -> str:
    """`<lora:name:weight>`, with the weight written exactly (it reads back as the same float)."""
    text = repr(float(weight))
    return f"<lora:{name}:{text[:-2] if text.endswith('.0') else text}>"
