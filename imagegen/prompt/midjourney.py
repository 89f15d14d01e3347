"""Midjourney-style prompts: `[image URLs] text[::weight ...] --param value ...`.

`parse_midjourney` gives a typed `MidjourneyPrompt`, `render_midjourney` writes it back, and
`midjourney_request` turns it into request fields and back (`GenerateRequest.from_midjourney`
builds the request). The parameter table lives in `midjourney_params`.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from ..errors import PromptSyntaxError
from . import midjourney_params as mp
from .midjourney_rules import check_rules
from .permutations import MAX_JOBS, escape_permutation_text, expand_permutations

# A parameter starts with `--` after a space. An em or en dash (what phones and word processors
# make of `--`, alone or before one hyphen: `—ar`, `–-ar`) counts as `--` before a parameter name.
_DASH = "(?:[\u2013\u2014]-?)"
_NAMES = "|".join(sorted(mp.BY_NAME, key=len, reverse=True))
_PARAM_START = re.compile(rf"(?:^|(?<=\s))(?:--(?=[A-Za-z])|{_DASH}(?=(?:{_NAMES})(?:\s|$)))", re.IGNORECASE)
_PARAM_TOKEN = re.compile(rf"(?:--|{_DASH})([A-Za-z][A-Za-z0-9_]*)$")
_PARAM_LIKE = _PARAM_START
# Only `--` counts when glued to a word: an em dash there is ordinary prose ("the end—no more").
_GLUED_PARAM = re.compile(r"--([A-Za-z]+)")
# Discord's `/imagine` command, as prompts copied from it begin.
_IMAGINE = re.compile(r"\s*/imagine\b(?:\s+prompt\b)?(?:\s*:)?", re.IGNORECASE)
# Links Midjourney makes for uploaded images carry no file extension.
_MJ_SHORT_LINK = re.compile(r"https?://s\.mj\.run/\S+", re.IGNORECASE)
_TOKEN = re.compile(r"\S+")
_NUMBER = r"-?(?:\d+\.?\d*|\.\d+)"
_WEIGHT_SEP = re.compile(rf"::({_NUMBER})?")
_INT = re.compile(r"\d+")
_FLOAT = re.compile(r"\d+(?:\.\d*)?|\.\d+")
_RATIO = re.compile(r"(\d+):(\d+)")
_REF = re.compile(rf"(.+?)(?:::({_NUMBER}))?")
_CODE = re.compile(r"[A-Za-z0-9_-]+")
_URL_PREFIX = ("http://", "https://")


@dataclass(frozen=True)
class PromptPart:
    """One `::` part of a multi-prompt. Weights are relative; a negative one steers away."""

    text: str
    weight: float = 1.0


@dataclass(frozen=True)
class StyleRef:
    """One `--sref` value: an image URL, a numeric style code or `random`, with `::weight`."""

    ref: str
    weight: float | None = None


@dataclass(frozen=True)
class MidjourneyParams:
    """Every parameter after the text; ``None``/empty means "not given" (Midjourney's default)."""

    aspect: str | None = None
    chaos: int | None = None
    negative: tuple[str, ...] = ()
    quality: float | None = None
    repeat: int | None = None
    seed: int | None = None
    stop: int | None = None
    style: str | None = None
    stylize: int | None = None
    tile: bool = False
    weird: int | None = None
    image_weight: float | None = None
    cref: tuple[str, ...] = ()
    cw: int | None = None
    sref: tuple[StyleRef, ...] = ()
    sw: int | None = None
    sv: int | None = None
    personalize: tuple[str, ...] | None = None  # () is a bare `--p`
    version: str | None = None
    niji: str | None = None
    draft: bool = False
    exp: int | None = None
    speed: str | None = None  # fast | relax | turbo
    oref: str | None = None
    ow: int | None = None
    video: bool = False
    motion: str | None = None
    loop: bool = False


@dataclass(frozen=True)
class MidjourneyPrompt:
    parts: tuple[PromptPart, ...] = ()
    image_prompts: tuple[str, ...] = ()
    params: MidjourneyParams = field(default_factory=MidjourneyParams)
    # What Midjourney accepts but ignores (`--iw` with no image prompt); not part of equality.
    warnings: tuple[str, ...] = field(default=(), compare=False)


# -- parsing ---------------------------------------------------------------------------


def parse_midjourney(text: str) -> MidjourneyPrompt:
    """Parse one Midjourney-style prompt; permutation groups must leave a single job."""
    text = strip_imagine(text)
    jobs = expand_permutations(text)
    if len(jobs) > 1:
        raise PromptSyntaxError(
            f"the prompt has {len(jobs)} permutations; use expand_midjourney() for several jobs",
            column=text.find("{") + 1,
            token="{",
        )
    return _parse_job(jobs[0], "")


def strip_imagine(text: str) -> str:
    """``text`` without a leading `/imagine prompt:`; blanked rather than cut, so that error
    columns still count from the text as given."""
    match = _IMAGINE.match(text)
    if match is None:
        return text
    return " " * match.end() + text[match.end():]


def _fail(where: str, message: str, column: int | None = None, token: str | None = None) -> PromptSyntaxError:
    return PromptSyntaxError(message + where, column=column, token=token)


def _parse_job(text: str, where: str) -> MidjourneyPrompt:
    start = _PARAM_START.search(text)
    head_end = start.start() if start else len(text)
    images, body_start = _read_image_prompts(text, head_end, where)
    parts = _read_parts(text, body_start, head_end, where)
    if start:
        given = _read_params(text, head_end, where)
    else:
        given = {}
    if not parts and not images:
        raise _fail(where, "the prompt has no text (expected text or image URLs before the parameters)",
                    column=1)
    params, warnings = _check_params(given, parts, images, where)
    return MidjourneyPrompt(parts=parts, image_prompts=images, params=params, warnings=warnings)


def _read_image_prompts(text: str, end: int, where: str) -> tuple[tuple[str, ...], int]:
    images: list[str] = []
    position = 0
    for match in _TOKEN.finditer(text, 0, end):
        token = _unbracket(match.group())
        if not token[:8].lower().startswith(_URL_PREFIX):
            break
        path = token.split("?", 1)[0].split("#", 1)[0].lower()
        if not path.endswith(mp.IMAGE_EXTENSIONS) and not _MJ_SHORT_LINK.fullmatch(token):
            raise _fail(where, f"an image prompt URL must end in {', '.join(mp.IMAGE_EXTENSIONS)} "
                        f"(or be an s.mj.run link); got {match.group()!r}", column=match.start() + 1,
                        token=match.group())
        images.append(token)
        position = match.end()
    return tuple(images), position


def _unbracket(token: str) -> str:
    """`<https://...>`, as Discord shows a link it does not preview, is the bare URL."""
    if len(token) > 2 and token[0] == "<" and token[-1] == ">" and token[1:9].lower().startswith(_URL_PREFIX):
        return token[1:-1]
    return token


def _read_parts(text: str, start: int, end: int, where: str) -> tuple[PromptPart, ...]:
    body = text[start:end]
    if "--" in body:
        for glued in _GLUED_PARAM.finditer(body):
            name = glued.group(1).lower()
            if name in mp.BY_NAME or name in mp.DEPRECATED:
                raise _fail(where, f"parameter {glued.group()!r} must be preceded by a space",
                            column=start + glued.start() + 1, token=glued.group())
    if "::" not in body:
        stripped = body.strip()
        return (PromptPart(stripped),) if stripped else ()
    parts: list[PromptPart] = []
    last = 0
    for match in _WEIGHT_SEP.finditer(body):
        segment = body[last:match.start()].strip()
        if not segment:
            raise _fail(where, "expected prompt text before '::'", column=start + match.start() + 1,
                        token=match.group())
        weight = float(match.group(1)) if match.group(1) else 1.0
        parts.append(PromptPart(segment, weight))
        last = match.end()
    rest = body[last:].strip()
    if rest:
        parts.append(PromptPart(rest))
    total = sum(part.weight for part in parts)
    if total <= 0:
        raise _fail(where, f"the '::' weights add up to {total:g}; their sum must be positive",
                    column=start + body.find("::") + 1, token="::")
    return tuple(parts)


_MERGED = ("negative", "sref", "personalize")


def _read_params(text: str, start: int, where: str) -> dict[str, Any]:
    given: dict[str, Any] = {}
    columns: dict[str, tuple[str, int]] = {}  # field -> (name as written, column)
    bounds = [match.start() for match in _PARAM_START.finditer(text, start)] + [len(text)]
    for begin, end in pairwise(bounds):
        name_token, *values = _TOKEN.finditer(text, begin, end)
        column = name_token.start() + 1
        name_match = _PARAM_TOKEN.match(name_token.group())
        if not name_match:
            raise _fail(where, f"expected a parameter name like --ar, got {name_token.group()!r}",
                        column=column, token=name_token.group())
        written = name_match.group(1).lower()
        spec = _lookup(written, where, column, name_token.group())
        # Midjourney merges repeated --no, --sref and --p (its web app writes one flag per code).
        if spec.field in _MERGED and spec.field in columns and columns[spec.field][0] == written:
            given[spec.field] += _read_value(spec, written, values, column, where)
            continue
        if spec.field in columns:
            previous, previous_column = columns[spec.field]
            what = "repeats" if previous == written else f"conflicts with --{previous}"
            raise _fail(where, f"--{written} {what} (column {previous_column})", column=column,
                        token=name_token.group())
        columns[spec.field] = (written, column)
        given[spec.field] = _read_value(spec, written, values, column, where)
    given["_columns"] = columns
    return given


def _lookup(name: str, where: str, column: int, token: str) -> mp.ParamSpec:
    spec = mp.BY_NAME.get(mp.SPELLINGS.get(name, name))
    if spec is not None:
        return spec
    if name in mp.DEPRECATED:
        raise _fail(where, f"--{name} is no longer supported; use {mp.DEPRECATED[name]} instead",
                    column=column, token=token)
    close = difflib.get_close_matches(name, list(mp.BY_NAME), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join('--' + c for c in close)}?" if close else ""
    raise _fail(where, f"unknown parameter --{name}{hint}", column=column, token=token)


def _describe(spec: mp.ParamSpec) -> str:
    if spec.kind == "int":
        return f"a whole number from {format_number(spec.low)} to {format_number(spec.high)}"
    if spec.kind == "float":
        return f"a number from {format_number(spec.low)} to {format_number(spec.high)}"
    return {
        "ratio": "an aspect ratio W:H of whole numbers, like 16:9",
        "words": "a comma-separated list of things to leave out",
        "refs": "image URLs, numeric style codes or 'random' (each may end in ::weight)",
        "urls": "one or more image URLs",
        "url": "one image URL",
        "version": "a version: " + ", ".join(mp.VERSIONS),
        "niji": "a niji version: " + ", ".join(mp.NIJI_VERSIONS),
        "choice": "one of " + ", ".join(spec.choices) if spec.choices else "a style name",
    }.get(spec.kind, "a value")


def _read_value(spec: mp.ParamSpec, name: str, values: list[re.Match], column: int, where: str) -> Any:
    kind = spec.kind
    if kind == "flag":
        if values:
            raise _fail(where, f"--{name} takes no value, got {values[0].group()!r}",
                        column=values[0].start() + 1, token=values[0].group())
        if spec.field == "style":
            return "raw"
        return name if spec.field == "speed" else True
    if kind == "codes":
        for value in values:
            if not _CODE.fullmatch(value.group()):
                raise _fail(where, f"--{name} expects personalization codes, got {value.group()!r}",
                            column=value.start() + 1, token=value.group())
        return tuple(value.group() for value in values)
    if kind == "niji" and not values:
        return mp.NIJI_DEFAULT
    if not values:
        raise _fail(where, f"--{name} needs a value: {_describe(spec)}", column=column, token="--" + name)
    if kind == "words":
        items = [" ".join(item.split()) for item in " ".join(v.group() for v in values).split(",")]
        items = [item for item in items if item]
        if not items:
            raise _fail(where, f"--{name} needs {_describe(spec)}", column=column, token="--" + name)
        return tuple(items)
    if kind in ("refs", "urls"):
        return tuple(_read_reference(spec, name, value, where) for value in values)
    if len(values) > 1:
        extra = values[1]
        raise _fail(where, f"unexpected {extra.group()!r} after --{name} {values[0].group()}: it takes one "
                    "value, and the prompt text goes before the parameters",
                    column=extra.start() + 1, token=extra.group())
    token, value_column = values[0].group(), values[0].start() + 1

    def bad() -> PromptSyntaxError:
        return _fail(where, f"--{name} expects {_describe(spec)}, got {token!r}", column=value_column, token=token)

    if len(token) > 40 and kind in ("int", "float", "ratio"):  # also keeps int() within its digit limit
        raise bad()
    if kind == "int":
        if not _INT.fullmatch(token) or not spec.low <= int(token) <= spec.high:
            raise bad()
        return int(token)
    if kind == "float":
        if not _FLOAT.fullmatch(token) or not spec.low <= float(token) <= spec.high:
            raise bad()
        return float(token)
    if kind == "ratio":
        ratio = _RATIO.fullmatch(token)
        if not ratio or int(ratio.group(1)) == 0 or int(ratio.group(2)) == 0:
            raise bad()
        return f"{int(ratio.group(1))}:{int(ratio.group(2))}"
    if kind == "url":
        if not token.lower().startswith(_URL_PREFIX):
            raise bad()
        return token
    if kind == "version":
        version = mp.VERSION_ALIASES.get(token, token)
        if version not in mp.VERSIONS:
            raise bad()
        return version
    if kind == "niji":
        if token not in mp.NIJI_VERSIONS:
            raise bad()
        return token
    # choice
    if spec.choices and token.lower() not in spec.choices:
        raise bad()
    if not _CODE.fullmatch(token):
        raise bad()
    return token.lower() if spec.choices or token.lower() in _KNOWN_STYLES else token


_KNOWN_STYLES = {"raw", *mp.STYLE_NIJI5, *mp.STYLE_V4, *mp.STYLE_RANDOM}


def _read_reference(spec: mp.ParamSpec, name: str, value: re.Match, where: str) -> Any:
    token = _unbracket(value.group())
    if spec.kind == "urls":
        if not token.lower().startswith(_URL_PREFIX):
            raise _fail(where, f"--{name} expects {_describe(spec)}, got {token!r}",
                        column=value.start() + 1, token=token)
        return token
    ref = _REF.fullmatch(token)
    target = ref.group(1) if ref else token
    if not (target.lower().startswith(_URL_PREFIX) or target.isdigit() or target.lower() == "random"):
        raise _fail(where, f"--{name} expects {_describe(spec)}, got {token!r}",
                    column=value.start() + 1, token=token)
    weight = float(ref.group(2)) if ref and ref.group(2) else None
    return StyleRef(target.lower() if target.lower() == "random" else target, weight)


# -- rules between parameters ------------------------------------------------------------


def _check_params(
    given: dict[str, Any], parts: tuple[PromptPart, ...], images: tuple[str, ...], where: str
) -> tuple[MidjourneyParams, tuple[str, ...]]:
    if not given:
        return _EMPTY_PARAMS, ()
    columns: dict[str, tuple[str, int]] = given.pop("_columns")

    def fail(field_name: str, message: str) -> PromptSyntaxError:
        written, column = columns[field_name]
        return _fail(where, message, column=column, token="--" + written)

    warnings = check_rules(given, {name: written for name, (written, _) in columns.items()}, fail,
                           has_text=bool(parts), has_images=bool(images))
    return MidjourneyParams(**given), tuple(warning + where for warning in warnings)


_EMPTY_PARAMS = MidjourneyParams()


# -- rendering ---------------------------------------------------------------------------

# (field, canonical spec) in the order parameters are written back.
_RENDER_ORDER = [(spec.field, spec) for spec in mp.PARAMS if spec.name not in ("raw", "relax", "turbo")]


def format_number(value: float) -> str:
    """Shortest text that reads back as the same float, without exponents (`2`, `-0.5`)."""
    text = repr(float(value))
    if "e" in text or "E" in text:
        text = format(value, ".20f").rstrip("0").rstrip(".")
    return text[:-2] if text.endswith(".0") else text


def render_parts(parts: tuple[PromptPart, ...]) -> str:
    if len(parts) == 1 and parts[0].weight == 1:
        return parts[0].text
    out = []
    for index, part in enumerate(parts):
        weight = "" if part.weight == 1 else format_number(part.weight)
        last = index == len(parts) - 1
        # A text ending in ":" would merge into the separator (":::"), so keep them apart;
        # a text starting like a parameter stays glued to the separator before it.
        if index:
            out.append("" if _PARAM_LIKE.match(part.text) else " ")
        separator = " ::" if part.text.endswith(":") else "::"
        out.append(part.text + ("" if last and not weight else separator + weight))
    return "".join(out)


def render_midjourney(prompt: MidjourneyPrompt) -> str:
    """The prompt as Midjourney-style text; `parse_midjourney` reads it back unchanged."""
    pieces = [escape_permutation_text(url) for url in prompt.image_prompts]
    text = render_parts(prompt.parts)
    if text:
        pieces.append(escape_permutation_text(text))
    params = prompt.params
    for field_name, spec in _RENDER_ORDER:
        value = getattr(params, field_name)
        if value is None or value is False or value == ():
            if not (field_name == "personalize" and value == ()):
                continue
        pieces.append(_render_param(spec, value))
    rendered = " ".join(pieces)
    # Text that itself starts with `/imagine` keeps it behind the one prefix a parse strips.
    return "/imagine prompt: " + rendered if _IMAGINE.match(rendered) else rendered


def _render_param(spec: mp.ParamSpec, value: Any) -> str:
    kind = spec.kind
    if spec.field == "speed":
        return "--" + value
    if kind == "flag":
        return "--" + spec.name
    if kind == "codes":
        return " ".join(["--" + spec.name, *value])
    if kind == "float":
        shown = format_number(value)
    elif kind == "words":
        shown = ", ".join(value)
    elif kind == "urls":
        shown = " ".join(value)
    elif kind == "refs":
        shown = " ".join(ref.ref + ("" if ref.weight is None else "::" + format_number(ref.weight))
                         for ref in value)
    else:
        shown = str(value)
    return f"--{spec.name} {escape_permutation_text(shown)}"


def expand_prompts(text: str) -> list[MidjourneyPrompt]:
    """Every job of a permutation prompt, parsed (``--repeat`` is kept, not unrolled)."""
    jobs = expand_permutations(strip_imagine(text))
    if len(jobs) == 1:
        return [_parse_job(jobs[0], "")]
    prompts = [_parse_job(job, f" [in permutation {n + 1}: {job!r}]") for n, job in enumerate(jobs)]
    for prompt in prompts:
        if prompt.params.speed == "relax":
            raise PromptSyntaxError("permutation prompts run only in Fast or Turbo mode, not with --relax",
                                    token="--relax")
    total = sum(prompt.params.repeat or 1 for prompt in prompts)
    if total > MAX_JOBS:
        raise PromptSyntaxError(f"permutations and --repeat make {total} jobs; at most {MAX_JOBS} are allowed",
                                token="--repeat")
    return prompts


__all__ = [
    "MidjourneyParams", "MidjourneyPrompt", "PromptPart", "StyleRef", "expand_prompts",
    "format_number", "parse_midjourney", "render_midjourney", "strip_imagine",
]
